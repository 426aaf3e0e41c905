"""/v1: related titles (by text, by id, batch), title search, model description."""
from __future__ import annotations

import json
from typing import Any

import msgspec
from flask import Blueprint, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from epgembed.fsutil import utc
from epgembed.query.related import NotFound, QueryError
from epgembed.query.shapes import Batch, BatchItem, ErrorBody, ModelRef, ProgrammeQuery, Query, convert
from epgembed.text.features import parse_time

from .schema import PROGRAMMES, ApiError, check_work, parse_body, parse_query, path_id
from epgembed.query.search import normalize_query
from .shapes import Found, Model, SearchQuery, TitleSearch, json_response
from .state import check_deadline, serving, state

bp = Blueprint("api", __name__, url_prefix="/v1")


def _filters(v: dict[str, Any], titles: int = 1) -> dict[str, Any]:
    check_work(v, state().config.limits, titles)
    return {"k": v["k"], "min_score": v["min_score"], "category": v["category"],
            "offset": v["offset"], "include_self": v["include_self"],
            "same_series": v["same_series"], "expand": v["expand"]}


def _context(v: dict[str, Any]) -> dict[str, Any]:
    """The optional schedule context of a title query (`context` of RelatedModel.related)."""
    if v["start"] is not None and parse_time(v["start"]) is None:
        raise ApiError(400, f"start {v['start'][:40]!r} is not a time YYYYmmddHHMM")
    ctx = {"channel": v["channel"], "start": v["start"], "minutes": v["minutes"]}
    return {"context": ctx} if any(x is not None for x in ctx.values()) else {}


@bp.get("/related")
def related_by_title():
    v = parse_query(state().params.related, request.args)
    s = serving()
    try:
        r = s.model.related(v["title"], **_filters(v), **_context(v))
    except QueryError as e:
        raise _query_error(e) from None
    return json_response(r)


def _query_error(e: QueryError) -> ApiError:
    """A query the model cannot answer: 404 for an id or series it does not have, else 400."""
    return ApiError(404 if isinstance(e, NotFound) else 400, str(e))


@bp.get("/titles/<show_id>/related")
def related_by_id(show_id: str):
    x = path_id(show_id)      # not <int:show_id>: werkzeug's converter takes "１２" for 12
    v = parse_query(state().params.by_id, request.args)
    s = serving()
    if x >= len(s.model):
        raise ApiError(404, f"unknown id {x} (the catalog has ids 0..{len(s.model) - 1})")
    try:
        r = s.model.related_to_id(x, **_filters(v))
    except QueryError as e:
        raise _query_error(e) from None
    return json_response(r)


def _read_body() -> bytes:
    data = request.get_data(cache=False)     # reading it enforces MAX_CONTENT_LENGTH (413) ...
    limit = state().config.limits.max_body_bytes
    if request.content_length is None and len(data) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()         # ... but a chunked body is silently cut at the limit
    return data


def _json_body() -> Any:
    if not request.is_json:
        raise ApiError(415, "the body must be application/json")
    try:
        data = _read_body()
    except HTTPException:
        raise
    except TimeoutError as e:   # gunicorn.conf.py's RequestReadTimeout: the body stopped arriving
        raise ApiError(408, f"the request body is incomplete: {e}") from None
    except Exception as e:  # noqa: BLE001 - the WSGI server's framing errors, raised by the read:
        # gunicorn's InvalidChunkSize, InvalidChunkExtension, ChunkMissingTerminator, InvalidHeader
        # (a bad trailer) ...; nothing but the client's bytes is involved, so a 400, not a 500
        why = " ".join(str(e).split())[:120]
        raise ApiError(400, f"the request body is malformed: {type(e).__name__}: {why}") from None
    try:
        # json.loads, not get_json(silent=True): that lets a RecursionError (a body nested a
        # few thousand levels deep) through as a 500; bytes: UTF-8/16/32 detected, anything else a 400
        return json.loads(data)
    except (ValueError, RecursionError):
        raise ApiError(400, "the body is not valid JSON") from None


@bp.post("/related")
def related_batch():
    body = _json_body()
    v = parse_body(state().params.batch, body, frozenset({PROGRAMMES}))
    asks = _batch_asks(v, body)
    filters = _filters(v, len(asks))
    s = serving()
    results = []
    for i, (query, answer) in enumerate(asks):
        check_deadline(f"{i} of {len(asks)} queries answered")
        try:
            r = answer(s.model, filters)
            results.append(BatchItem(r.query, r.related))
        except QueryError as e:
            results.append(BatchItem(Query(query, False, None), [], ErrorBody(400, "bad_request", str(e))))
    return json_response(Batch(ModelRef(s.version), results))


def _batch_asks(v: dict[str, Any], body: dict) -> list[tuple[str, Any]]:
    """(the query's text, the call that answers it) per title or per programme of a batch
    body: `titles` (with an optional schedule context) or `programmes`, exactly one."""
    if ("titles" in body) == (PROGRAMMES in body):
        raise ApiError(400, f"the body needs exactly one of titles and {PROGRAMMES}")
    if v["titles"] is None and "titles" in body:
        raise ApiError(400, "titles must be a non-empty array of strings, not null")
    programmes = body.get(PROGRAMMES)
    if v["titles"] is not None:
        ctx = _context(v)
        return [(t, lambda m, f, t=t: m.related(t, **f, **ctx)) for t in v["titles"]]
    if _context(v):
        raise ApiError(400, "channel, start and minutes go with titles: a programme carries its own")
    limits = state().config.limits
    if not isinstance(programmes, list) or not 1 <= len(programmes) <= limits.max_batch:
        raise ApiError(400, f"{PROGRAMMES} must be a list of 1 to {limits.max_batch} programmes")
    try:
        read = convert(programmes, list[ProgrammeQuery])
    except (msgspec.ValidationError, ValueError) as e:
        raise ApiError(400, f"{PROGRAMMES}: {e}".replace("`$[", f"`$.{PROGRAMMES}[")) from None
    return [(p.title, lambda m, f, p=p: m.related_programme(p, **f)) for p in read]


@bp.get("/titles")
def search_titles():
    v = parse_query(state().params.search, request.args)
    s = serving()
    shows = s.model.catalog.shows
    found = [Found(m.id, shows[m.id].title, shows[m.id].category_list(), m.match)
             for m in s.titles.search(v["q"], v["limit"])]
    return json_response(TitleSearch(SearchQuery(v["q"], normalize_query(v["q"])), ModelRef(s.version), found))


@bp.get("/model")
def model_info():
    s = serving()
    m = s.model.manifest
    t = m.training
    return json_response(convert({
        "version": m.version, "created": m.created, "name": s.name, "format_version": m.format_version,
        "shows": m.n_shows, "counts": msgspec.to_builtins(m.counts), "dim": m.dim, "vocab_size": m.vocab_size,
        "metric": m.metric, "n_trees": m.n_trees, "quality": m.quality or None,
        "training": {"epochs_run": t.epochs_run, "best_epoch": t.best_epoch,
                     "val_p_at_10": t.val_p_at_10, "seconds": t.seconds},
        "data": {"programmes": m.data.programmes},
        "loaded_at": utc(s.loaded_at),
        "load_seconds": round(s.load_seconds, 3),
        "reload": state().holder.status(),
    }, Model))
