"""Entry layer: the only place the service reads its environment.

    gunicorn -c service/gunicorn.conf.py          (wsgi_app = "service.wsgi:app_from_env()")
    EPGEMBED_MODELS=models/root gunicorn -c service/gunicorn.conf.py

Environment (all optional but EPGEMBED_MODELS):
    EPGEMBED_MODELS          models root (versions/ + current) or one model directory
    EPGEMBED_POLL_SECONDS    how often workers check `current` (default 5; 0 = only on SIGHUP)
    EPGEMBED_VERIFY          1 (default): check every file's sha256 before serving a model
    EPGEMBED_MAX_K, EPGEMBED_MAX_BATCH, EPGEMBED_MAX_BODY_BYTES, EPGEMBED_MAX_TITLE_CHARS   limits
    EPGEMBED_REQUEST_SECONDS time budget of one request (default 10; 504 past it)
    PROMETHEUS_MULTIPROC_DIR set by gunicorn.conf.py: metrics shared by all workers
    EPGEMBED_RUN_DIR         set by gunicorn.conf.py: the version decision shared by all workers
"""
from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Mapping

from flask import Flask

from .app import create_app
from .config import Limits, ServiceConfig
from .holder import install_sighup
from .state import state

_LIMITS = {"EPGEMBED_MAX_K": "max_k", "EPGEMBED_MAX_BATCH": "max_batch",
           "EPGEMBED_MAX_BODY_BYTES": "max_body_bytes", "EPGEMBED_MAX_TITLE_CHARS": "max_title_chars"}


def config_from_env(env: Mapping[str, str]) -> ServiceConfig:
    models = env.get("EPGEMBED_MODELS")
    if not models:
        raise RuntimeError("EPGEMBED_MODELS is not set: a models root or a model directory")
    if not Path(models).is_dir():
        raise RuntimeError(f"EPGEMBED_MODELS={models}: no such directory")
    limits = replace(Limits(), **{field: int(env[name]) for name, field in _LIMITS.items() if env.get(name)})
    if env.get("EPGEMBED_REQUEST_SECONDS"):
        limits = replace(limits, request_seconds=float(env["EPGEMBED_REQUEST_SECONDS"]))
    metrics_dir = env.get("PROMETHEUS_MULTIPROC_DIR") or None
    run_dir = env.get("EPGEMBED_RUN_DIR") or None
    return ServiceConfig(models=Path(models), poll_seconds=float(env.get("EPGEMBED_POLL_SECONDS", "5")),
                         verify_hashes=env.get("EPGEMBED_VERIFY", "1") != "0",
                         metrics_dir=Path(metrics_dir) if metrics_dir else None,
                         run_dir=Path(run_dir) if run_dir else None, limits=limits)


def app_from_env() -> Flask:
    """The app for a gunicorn worker: SIGHUP is wired to the model holder before the first load."""
    app = create_app(config_from_env(os.environ), start=False)
    holder = state(app).holder
    if threading.current_thread() is threading.main_thread():
        install_sighup(holder)
    holder.start()
    return app
