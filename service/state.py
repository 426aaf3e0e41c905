"""Per-app state (held in app.extensions, never in module globals) and the per-request model."""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from flask import Flask, current_app, g

from .config import ServiceConfig
from .errors import ApiError
from .holder import ModelHolder
from .metrics import Metrics
from .serving import Serving
from .slots import Slots

KEY = "epgembed"


@dataclass
class ServiceState:
    config: ServiceConfig
    holder: ModelHolder
    metrics: Metrics
    spec: dict = field(default_factory=dict)     # /openapi.json, written once the routes are registered
    slots: Slots = field(init=False)             # ServiceConfig.compute_slots

    def __post_init__(self) -> None:
        self.slots = Slots(self.config.compute_slots)


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
        raise past_budget(done)


def past_budget(done: str = "") -> ApiError:
    budget = state().config.limits.request_seconds
    return ApiError(504, f"the request ran past its time budget of {budget:g} s" + (f" ({done})" if done else ""))


@contextmanager
def compute_slot() -> Iterator[None]:
    """One of the worker's compute slots (ServiceConfig.compute_slots) for this request's
    work, waited for within its time budget: 504 when none comes free in time."""
    slots = state().slots
    deadline = g.get("deadline")
    wait = None if deadline is None else max(0.0, deadline - time.perf_counter())
    if not slots.acquire(timeout=wait):
        raise past_budget("waiting for a compute slot")
    try:
        yield
    finally:
        slots.release()
