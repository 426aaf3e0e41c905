"""Operations: liveness, readiness, Prometheus metrics, the OpenAPI document."""
from __future__ import annotations

from flask import Blueprint, Response

from epgembed.query.shapes import convert

from .operation import operation
from .shapes import OK, Status, json_response
from .state import state

bp = Blueprint("ops", __name__)
NOT_READY = ("no valid model loaded, the served folder is missing, or the workers disagree on the "
             "version (reason says why)")


@bp.get("/healthz")
@operation(None, Status)
def healthz():
    """Process alive"""
    return Response(OK, mimetype="application/json")


@bp.get("/readyz")
@operation(None, Status, others=((503, NOT_READY, Status),))
def readyz():
    """Ready: a model is served, by every worker the same

    200 when this worker serves a model whose folder exists and every live worker serves
    the version of the workers' shared decision; else 503 with the reason."""
    ready, details = state().holder.readiness()
    body = convert({"status": "ready" if ready else "not ready", **details}, Status)
    return json_response(body, 200 if ready else 503)


@bp.get("/metrics")
@operation(None, {"type": "string"}, media="text/plain")
def metrics():
    """Prometheus metrics (all workers)"""
    m = state().metrics
    return Response(m.exposition(), mimetype=m.content_type.split(";")[0],
                    headers={"Content-Type": m.content_type})


@bp.get("/openapi.json")
@operation(None, {"type": "object"})
def openapi():
    """This document"""
    return state().spec
