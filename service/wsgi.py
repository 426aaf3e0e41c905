"""Entry layer of a gunicorn worker: the app, from the settings of service/settings.py.

    gunicorn -c service/gunicorn.conf.py          (wsgi_app = "service.wsgi:app_from_env()")
    EPGEMBED_MODELS=models/root gunicorn -c service/gunicorn.conf.py

The variables (EPGEMBED_MODELS, EPGEMBED_POLL_SECONDS, the limits, ...) are the table
service/settings.py SETTINGS; docs/SERVICE.md lists them.
"""
from __future__ import annotations

import os
import threading

from flask import Flask

from .app import create_app
from .holder import install_sighup
from .settings import load
from .state import state


def app_from_env() -> Flask:
    """The app for a gunicorn worker: SIGHUP is wired to the model holder before the first load."""
    app = create_app(load(os.environ).service, start=False)
    holder = state(app).holder
    if threading.current_thread() is threading.main_thread():
        install_sighup(holder)
    holder.start()
    return app
