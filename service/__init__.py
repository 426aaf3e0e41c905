"""The epgembed HTTP service: `create_app(ServiceConfig(models=...))`. See docs/SERVICE.md.

Importing the package loads neither Flask nor a model library: gunicorn.conf.py and
`epgembed serve` read the settings (service/settings.py) before any of that is imported.
"""
from .config import Limits, ServiceConfig

__all__ = ["create_app", "Limits", "ServiceConfig"]


def __getattr__(name: str):
    if name == "create_app":
        from .app import create_app
        return create_app
    raise AttributeError(f"module 'service' has no attribute {name!r}")
