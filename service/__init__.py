"""The epgembed HTTP service: `create_app(ServiceConfig(models=...))`. See docs/SERVICE.md."""
from .app import create_app
from .config import Limits, ServiceConfig

__all__ = ["create_app", "Limits", "ServiceConfig"]
