"""Per-app state (held in app.extensions, never in module globals) and the per-request model."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from flask import Flask, current_app, g

from .config import ServiceConfig
from .errors import ApiError
from .holder import ModelHolder
from .metrics import Metrics
from .serving import Serving

KEY = "epgembed"


@dataclass
class ServiceState:
    config: ServiceConfig
    holder: ModelHolder
    metrics: Metrics
    spec: dict = field(default_factory=dict)     # /openapi.json, written once the routes are registered


def state(app: Flask | None = None) -> ServiceState:
    return (app or current_app).extensions[KEY]


def serving() -> Serving:
    """The model this request uses: taken from the holder once, then kept for the whole request."""
    s = g.get("serving")
    if s is None:
        holder = state().holder
        s = holder.get()
        if s is None:
            raise ApiError(503, holder.not_ready_reason() or "no model loaded")
        g.serving = s
    return s


def check_deadline(done: str = "") -> None:
    """504 when this request has used up its time budget (Limits.request_seconds); called
    between units of work (batch titles), so a long request stops at the next one."""
    deadline = g.get("deadline")
    if deadline is not None and time.perf_counter() > deadline:
        budget = state().config.limits.request_seconds
        raise ApiError(504, f"the request ran past its time budget of {budget:g} s"
                            + (f" ({done})" if done else ""))
