"""Why is Y related to X? The explain endpoints and the explorer page, as one blueprint.

    GET /v1/titles/<id>/explain?neighbor=<id>               a catalog pair
    GET /v1/explain?title=TEXT&neighbor_title=TEXT           any text (known or unseen) ...
    GET /v1/explain?title=TEXT&neighbor=<id>                 ... or text against a catalog id
        optional on both: rare_max_count=N, collapse_share=F
    GET /                                                    the explorer page
    GET /explorer/<file>                                     its script and style sheet

The numbers come from epgembed.query.inspect.explain_pair, the same function `epgembed inspect
--json` and the HTML report use. Like the api blueprint, the views take the request's model
from state.serving() and validate with schema.parse_query (errors: ApiError JSON).
Registered in create_app with `app.register_blueprint(explain.bp)`; `openapi_paths(limits)`
describes the two endpoints for /openapi.json.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, request, send_from_directory

from epgembed.query.inspect import InspectConfig, explain_pair
from epgembed.query.related import QueryError

from .config import Limits
from .schema import MAX_ID, ApiError, Param, parse_query, path_id
from .state import serving, state

STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

bp = Blueprint("explain", __name__, static_folder=str(STATIC), static_url_path="/explorer")


def tuning_params() -> tuple[Param, ...]:
    d = InspectConfig()
    return (
        Param("rare_max_count", "integer", "a token is rare when at most this many labelled "
              "training titles use it", default=d.rare_max_count, minimum=0, maximum=MAX_ID),
        Param("collapse_share", "number", "flag a match when one rare token carries at least "
              "this share of its score", default=d.collapse_share, minimum=0.01, maximum=1),
    )


def explain_params(limits: Limits) -> tuple[Param, ...]:
    """GET /v1/titles/<id>/explain (the title's id is in the path)."""
    return (Param("neighbor", "integer", "catalog id of the related title", required=True, minimum=0,
                  maximum=MAX_ID, example=1),
            *tuning_params())


def explain_text_params(limits: Limits) -> tuple[Param, ...]:
    """GET /v1/explain: title text, and the neighbour as text or as a catalog id."""
    return (
        Param("title", "string", "any title text: a catalog title or one never seen", required=True,
              max_length=limits.max_title_chars, example="Football Tonight"),
        Param("neighbor_title", "string", "the related title as text (or give neighbor)",
              max_length=limits.max_title_chars, example="Tennis Tonight"),
        Param("neighbor", "integer", "the related title's catalog id (or give neighbor_title)", minimum=0,
              maximum=MAX_ID),
        *tuning_params(),
    )


def explain(title: str | int, neighbor: str | int, values: dict[str, Any]) -> dict:
    s = serving()
    cfg = InspectConfig(rare_max_count=values["rare_max_count"], collapse_share=values["collapse_share"])
    try:
        result = explain_pair(s.model, title, neighbor, cfg)
    except QueryError as e:
        raise ApiError(404 if str(e).startswith("unknown id") else 400, str(e)) from None
    return {"model": {"version": s.version}, **result}


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
    response = send_from_directory(STATIC, "explorer.html", max_age=0)
    response.headers["Content-Security-Policy"] = CSP      # nothing external, no inline code
    response.headers["X-Frame-Options"] = "DENY"             # frame-ancestors for older browsers
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def openapi_schemas() -> dict:
    """The answer of both endpoints for /openapi.json (closed objects: see openapi.py)."""
    from .openapi import BOOLEAN, INTEGER, NUMBER, STRING, STRINGS, nullable, obj, ref
    side = obj({"text": STRING, "id": nullable(INTEGER), "known": BOOLEAN, "categories": STRINGS,
                "informative_categories": STRINGS})
    token = obj({"position": INTEGER, "id": INTEGER, "token": STRING, "weight": NUMBER, "count": INTEGER,
                 "rare": BOOLEAN, "without": NUMBER, "drop": NUMBER, "share": NUMBER})
    tokens = {"type": "array", "items": ref("ExplainToken")}
    return {"ExplainSide": side, "ExplainToken": token, "Explain": obj({
        "model": obj({"version": STRING}), "title": ref("ExplainSide"), "neighbor": ref("ExplainSide"),
        "score": NUMBER, "shared_categories": STRINGS, "shared_informative_categories": STRINGS,
        "collapse": NUMBER, "carried": NUMBER,
        "flags": {"type": "array", "items": {"type": "string", "enum": ["no_shared_category", "rare_token_match"]}},
        "outlier": BOOLEAN,
        "carrier": obj({"side": {"type": "string", "enum": ["title", "neighbor"]}, "token": STRING, "id": INTEGER,
                        "count": INTEGER, "rare": BOOLEAN, "drop": NUMBER}),
        "tokens": obj({"title": tokens, "neighbor": tokens}),
        "center_share": obj({"title": NUMBER, "neighbor": NUMBER})},
        description="per-token contributions of one pair (docs/INSPECT.md)")}


def openapi_paths(limits: Limits) -> dict:
    """The explain endpoints for /openapi.json: spec["paths"].update(openapi_paths(limits))."""
    from .openapi import query_params, ref, responses
    ok = responses("per-token contributions of one pair (docs/INSPECT.md)", ref("Explain"), 404, 503)
    path_param = {"name": "id", "in": "path", "required": True,
                  "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID, "example": 0}}
    return {
        "/v1/titles/{id}/explain": {"get": {"summary": "why is a neighbour related: leave-one-token-out "
                                            "scores, training frequencies, flags",
                                            "parameters": [path_param, *query_params(explain_params(limits))],
                                            "responses": ok}},
        "/v1/explain": {"get": {"summary": "the same for any text (known or never seen)",
                                "parameters": query_params(explain_text_params(limits)), "responses": ok}},
    }
