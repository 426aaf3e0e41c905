"""Why is Y related to X? The explain endpoints and the explorer page, as one blueprint.

    GET /v1/titles/<id>/explain?neighbor=<id>               a catalog pair
    GET /v1/explain?title=TEXT&neighbor_title=TEXT           any text (known or unseen) ...
    GET /v1/explain?title=TEXT&neighbor=<id>                 ... or text against a catalog id
        optional on both: rare_max_count=N, collapse_share=F
    GET /                                                    the explorer page
    GET /explorer/<file>                                     its script and style sheet

The numbers come from epgembed.inspect.explain.explain_pair, the same function `epgembed inspect
--json` and the HTML report use. Like the api blueprint, the views take the request's model
from state.serving() and validate with schema.parse_query (errors: ApiError JSON).
Registered in create_app with `app.register_blueprint(explain.bp)`; the parameters are
declared in schema.py and the answer's shape in epgembed.query.shapes (Explain), from
which openapi.py describes both endpoints.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, request, send_from_directory

from epgembed.config import InspectConfig
from epgembed.inspect.explain import explain_pair
from epgembed.query.related import QueryError
from epgembed.query.shapes import Explain, convert

from .schema import ApiError, explain_params, explain_text_params, parse_query, path_id
from .shapes import json_response
from .state import serving, state

STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

bp = Blueprint("explain", __name__, static_folder=str(STATIC), static_url_path="/explorer")


def explain(title: str | int, neighbor: str | int, values: dict[str, Any]):
    s = serving()
    cfg = InspectConfig(rare_max_count=values["rare_max_count"], collapse_share=values["collapse_share"])
    try:
        result = explain_pair(s.model, title, neighbor, cfg)
    except QueryError as e:
        raise ApiError(404 if str(e).startswith("unknown id") else 400, str(e)) from None
    return json_response(convert({"model": {"version": s.version}, **result}, Explain))


@bp.get("/v1/titles/<show_id>/explain")
def explain_ids(show_id: str):
    x = path_id(show_id)
    values = parse_query(explain_params(state().config.limits), request.args)
    return explain(x, values["neighbor"], values)


@bp.get("/v1/explain")
def explain_text():
    values = parse_query(explain_text_params(state().config.limits), request.args)
    if (values["neighbor"] is None) == (values["neighbor_title"] is None):
        raise ApiError(400, "give exactly one of neighbor (a catalog id) or neighbor_title (text)")
    neighbor = values["neighbor"] if values["neighbor"] is not None else values["neighbor_title"]
    return explain(values["title"], neighbor, values)


@bp.get("/")
def explorer():
    """The page; its CSP (nothing external, no inline code, frame-ancestors 'none') and
    X-Frame-Options (the same for older browsers) are set on every answer (app.SECURITY_HEADERS)."""
    return send_from_directory(STATIC, "explorer.html", max_age=0)
