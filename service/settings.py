"""The service's settings: one table of environment variables, one loader per process.

    settings = load(os.environ)     # Settings(service=ServiceConfig, server=ServerConfig)

gunicorn.conf.py (in the master) and wsgi.py (in each worker) both call `load`; a worker is
forked from the master after its reading, and `load` keeps its result per environment, so
the worker answers from the master's reading instead of parsing the variables again.
`epgembed serve` has an option for some settings (`flag`) and passes what was given as these
variables to the gunicorn it execs (`to_env`): the environment is the one channel into
gunicorn's processes. Every default is its dataclass field's, written once.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

from .config import Limits, ServiceConfig


@dataclass(frozen=True)
class ServerConfig:
    """gunicorn's own settings (gunicorn.conf.py)."""
    bind: str = "127.0.0.1:8000"      # loopback unless said otherwise
    workers: int = 2
    threads: int = 4
    timeout: int = 30                 # gunicorn replaces a worker whose main loop is silent this long
    log_level: str = "info"
    access_log: str = "-"             # "-" stdout, a file, or "off"
    forwarded_allow_ips: str = "127.0.0.1"   # whose X-Forwarded-Proto gunicorn trusts: a proxy (nginx)
                                             # on this host; a replica behind one elsewhere names it


@dataclass(frozen=True)
class Settings:
    service: ServiceConfig
    server: ServerConfig


@dataclass(frozen=True)
class Setting:
    env: str                          # the variable
    part: str                         # what it sets: "service", "limits" or "server" ...
    field: str                        # ... which field of it (whose default is the default)
    parse: Callable[[str], Any]
    help: str
    flag: str | None = None           # the `epgembed serve` option, if any


def _yes(raw: str) -> bool:
    return raw != "0"


SETTINGS = (
    Setting("EPGEMBED_MODELS", "service", "models", Path, "a models root (versions/<v>/ + current, hot "
            "reload) or one model directory (no reload); required", "--models"),
    Setting("EPGEMBED_POLL_SECONDS", "service", "poll_seconds", float,
            "how often each worker checks the root's `current` (0: only on SIGHUP)", "--poll-seconds"),
    Setting("EPGEMBED_VERIFY", "service", "verify_hashes", _yes, "1: check every file's sha256 before a "
            "model is served; 0: do not"),
    Setting("PROMETHEUS_MULTIPROC_DIR", "service", "metrics_dir", Path, "where workers write their metric "
            "samples (gunicorn.conf.py: a fresh temporary folder when unset)"),
    Setting("EPGEMBED_RUN_DIR", "service", "run_dir", Path, "the workers' shared version decision "
            "(gunicorn.conf.py: a fresh temporary folder when unset)"),
    Setting("EPGEMBED_COMPUTE_SLOTS", "service", "compute_slots", int, "requests a worker computes at "
            "once (the others wait within their time budget; threads beyond it read and write)"),
    Setting("EPGEMBED_MAX_K", "limits", "max_k", int, "answers per query"),
    Setting("EPGEMBED_MAX_BATCH", "limits", "max_batch", int, "titles or programmes per batch"),
    Setting("EPGEMBED_MAX_BODY_BYTES", "limits", "max_body_bytes", int, "request body (413 above)"),
    Setting("EPGEMBED_MAX_TITLE_CHARS", "limits", "max_title_chars", int,
            "characters of a query title (normalize.MAX_TITLE_CHARS: normalization cuts longer titles)"),
    Setting("EPGEMBED_REQUEST_SECONDS", "limits", "request_seconds", float, "time budget of one request (504 past it)"),
    Setting("EPGEMBED_BIND", "server", "bind", str, "address:port (`epgembed serve`: --host and --port)"),
    Setting("EPGEMBED_WORKERS", "server", "workers", int, "gunicorn worker processes", "--workers"),
    Setting("EPGEMBED_THREADS", "server", "threads", int, "threads per worker", "--threads"),
    Setting("EPGEMBED_TIMEOUT", "server", "timeout", int, "gunicorn's worker timeout (seconds)"),
    Setting("EPGEMBED_LOG_LEVEL", "server", "log_level", str, "gunicorn's log level"),
    Setting("EPGEMBED_ACCESS_LOG", "server", "access_log", str, '"-" stdout, a file, or "off"', "--access-log"),
    Setting("EPGEMBED_FORWARDED_ALLOW_IPS", "server", "forwarded_allow_ips", str,
            "the proxies whose X-Forwarded-Proto gunicorn trusts (comma-separated)"),
)
_PARTS = {"service": ServiceConfig, "limits": Limits, "server": ServerConfig}


def default(s: Setting) -> Any:
    f = next(f for f in dataclasses.fields(_PARTS[s.part]) if f.name == s.field)
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def load(env: Mapping[str, str]) -> Settings:
    """The settings the variables of `env` give (the rest: defaults); RuntimeError naming a
    variable that is missing or malformed."""
    return _load(tuple((s.env, env[s.env]) for s in SETTINGS if env.get(s.env)))


@lru_cache(maxsize=8)
def _load(given: tuple[tuple[str, str], ...]) -> Settings:
    by_env = {s.env: s for s in SETTINGS}
    values: dict[str, dict[str, Any]] = {part: {} for part in _PARTS}
    for name, raw in given:
        s = by_env[name]
        try:
            values[s.part][s.field] = s.parse(raw)
        except ValueError as e:
            raise RuntimeError(f"{name}={raw!r}: {e} ({s.help})") from None
    models = values["service"].get("models")
    if models is None:
        raise RuntimeError("EPGEMBED_MODELS is not set: a models root or a model directory")
    if not models.is_dir():
        raise RuntimeError(f"EPGEMBED_MODELS={models}: no such directory")
    try:
        service = ServiceConfig(**values["service"], limits=Limits(**values["limits"]))
    except ValueError as e:
        raise RuntimeError(str(e)) from None
    return Settings(service, ServerConfig(**values["server"]))


def to_env(given: Mapping[str, Any]) -> dict[str, str]:
    """The variables of the settings in `given` (field name -> value; None: not given)."""
    return {s.env: str(given[s.field]) for s in SETTINGS if given.get(s.field) is not None}
