"""Operations: liveness, readiness, Prometheus metrics, the OpenAPI document."""
from __future__ import annotations

from flask import Blueprint, Response

from .state import state

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    holder = state().holder
    s = holder.get()
    if s is None:
        return {"status": "not ready", "reason": holder.not_ready_reason()}, 503
    return {"status": "ready", "model": {"version": s.version}}


@bp.get("/metrics")
def metrics():
    m = state().metrics
    return Response(m.exposition(), mimetype=m.content_type.split(";")[0],
                    headers={"Content-Type": m.content_type})


@bp.get("/openapi.json")
def openapi():
    return state().spec
