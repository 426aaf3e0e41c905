"""Per-app state (held in app.extensions, never in module globals) and the per-request model."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from flask import Flask, current_app, g

from .config import ServiceConfig
from .holder import ModelHolder
from .serving import Serving
from .metrics import Metrics
from .openapi import build_spec
from .schema import ApiError, Param, batch_params, filter_params, related_params, search_params

KEY = "epgembed"


@dataclass(frozen=True)
class Params:
    related: tuple[Param, ...]
    by_id: tuple[Param, ...]
    batch: tuple[Param, ...]
    search: tuple[Param, ...]


@dataclass
class ServiceState:
    config: ServiceConfig
    holder: ModelHolder
    metrics: Metrics
    params: Params = field(init=False)
    spec: dict = field(init=False)

    def __post_init__(self) -> None:
        lim = self.config.limits
        self.params = Params(related_params(lim), filter_params(lim), batch_params(lim), search_params(lim))
        self.spec = build_spec(lim)


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
                            + (f" ({done})" if done else ""), code="deadline_exceeded")
