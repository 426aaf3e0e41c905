"""Operations: liveness, readiness, Prometheus metrics, the OpenAPI document."""
from __future__ import annotations

from flask import Blueprint, Response

from epgembed.query.shapes import convert

from .shapes import OK, Status, json_response
from .state import state

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    return Response(OK, mimetype="application/json")


@bp.get("/readyz")
def readyz():
    """200 when this worker serves a model whose folder exists and every live worker serves
    the version of the workers' shared decision; else 503 with the reason."""
    ready, details = state().holder.readiness()
    body = convert({"status": "ready" if ready else "not ready", **details}, Status)
    return json_response(body, 200 if ready else 503)


@bp.get("/metrics")
def metrics():
    m = state().metrics
    return Response(m.exposition(), mimetype=m.content_type.split(";")[0],
                    headers={"Content-Type": m.content_type})


@bp.get("/openapi.json")
def openapi():
    return state().spec
