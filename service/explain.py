"""Why is Y related to X? The explain endpoints and the explorer page, as one blueprint.

    GET /v1/titles/<id>/explain?neighbor=<id>               a catalog pair
    GET /v1/explain?title=TEXT&neighbor_title=TEXT           any text (known or unseen) ...
    GET /v1/explain?title=TEXT&neighbor=<id>                 ... or text against a catalog id
        optional on both: rare_max_count=N, collapse_share=F
    GET /                                                    the explorer page
    GET /explorer/<file>                                     its script and style sheet

The numbers come from epgembed.inspect.explain.explain_pair, the same function `epgembed inspect
--json` and the HTML report use. Like the api blueprint, the views take the request's model
from state.serving() and their request read and checked (operation.py). Registered in
create_app with `app.register_blueprint(explain.bp)`; the requests are declared in
epgembed.query.requests (ExplainRequest, ExplainTextRequest) and the answer's shape in
epgembed.query.shapes (Explain), from which openapi.py describes both endpoints.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_from_directory

from epgembed.inspect.explain import explain_pair
from epgembed.query.requests import ExplainRequest, ExplainTextRequest, Tuning
from epgembed.query.shapes import Explain, convert

from .operation import operation, page
from .shapes import json_response
from .state import serving

STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

bp = Blueprint("explain", __name__, static_folder=str(STATIC), static_url_path="/explorer")


def explain(title: str | int, neighbor: str | int, tuning: Tuning):
    s = serving()
    result = explain_pair(s.model, title, neighbor, tuning.config())    # NotFound: a 404, else a 400
    return json_response(convert({"model": {"version": s.version}, **result}, Explain))


@bp.get("/v1/titles/<id>/explain")
@operation(ExplainRequest, Explain, 404, 503)
def explain_ids(req: ExplainRequest):
    """Why is a neighbour related: leave-one-token-out scores, training frequencies, flags"""
    return explain(req.id, req.neighbor, req.tuning)


@bp.get("/v1/explain")
@operation(ExplainTextRequest, Explain, 404, 503)
def explain_text(req: ExplainTextRequest):
    """The same for any text (known or never seen)"""
    return explain(req.title, req.neighbor if req.neighbor is not None else req.neighbor_title, req.tuning)


@bp.get("/")
@page
def explorer():
    """The page; its CSP (nothing external, no inline code, frame-ancestors 'none') and
    X-Frame-Options (the same for older browsers) are set on every answer (app.SECURITY_HEADERS)."""
    return send_from_directory(STATIC, "explorer.html", max_age=0)
