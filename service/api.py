"""/v1: related titles (by text, by id, batch), title search, model description.

Each view takes its request already read and checked (operation.py: the request types of
epgembed.query.requests, with the server's limits); a refusal of the query side is a typed
error the app answers with its status (errors.py).
"""
from __future__ import annotations

import msgspec
from flask import Blueprint

from epgembed.fsutil import utc
from epgembed.query.errors import QueryError
from epgembed.query.requests import BatchRequest, RelatedByIdRequest, RelatedRequest, SearchRequest
from epgembed.query.search import normalize_query
from epgembed.query.shapes import Batch, BatchItem, ModelRef, Query, Related, convert

from .errors import error_body, status_of
from .operation import operation
from .shapes import Found, Model, SearchQuery, TitleSearch, json_response
from .state import check_deadline, serving, state

bp = Blueprint("api", __name__, url_prefix="/v1")


@bp.get("/related")
@operation(RelatedRequest, Related, 404, 503)
def related_by_title(req: RelatedRequest):
    """Related titles for any title text (known or never seen), one row per series"""
    state().config.limits.check_work(req.options)
    return json_response(serving().model.related(req.title, req.options, context=req.context))


@bp.get("/titles/<id>/related")
@operation(RelatedByIdRequest, Related, 404, 503)
def related_by_id(req: RelatedByIdRequest):
    """Related titles for a catalog id (exact neighbours from the model)"""
    state().config.limits.check_work(req.options)
    return json_response(serving().model.related_to_id(req.id, req.options))


@bp.post("/related")
@operation(BatchRequest, Batch, 404, 408, 413, 415, 503, 504)
def related_batch(req: BatchRequest):
    """Batch: related titles for up to {max_batch} titles or whole programmes, one result per query in order"""
    state().config.limits.check_work(req.options, req.queries)
    s = serving()
    if req.titles is not None:
        asks = [(t, lambda t=t: s.model.related(t, req.options, context=req.context)) for t in req.titles]
    else:
        asks = [(p.title, lambda p=p: s.model.related_programme(p, req.options)) for p in req.programmes]
    results = []
    for i, (query, answer) in enumerate(asks):
        check_deadline(f"{i} of {len(asks)} queries answered")
        try:
            r = answer()
            results.append(BatchItem(r.query, r.related))
        except QueryError as e:
            results.append(BatchItem(Query(query, False, None), [], error_body(status_of(e), str(e))))
    return json_response(Batch(ModelRef(s.version), results))


@bp.get("/titles")
@operation(SearchRequest, TitleSearch, 503)
def search_titles(req: SearchRequest):
    """Find catalog titles by prefix, word prefix or substring (for search boxes)"""
    s = serving()
    shows = s.model.catalog.shows
    found = [Found(m.id, shows[m.id].title, shows[m.id].category_list(), m.match)
             for m in s.titles.search(req.q, req.limit)]
    return json_response(TitleSearch(SearchQuery(req.q, normalize_query(req.q)), ModelRef(s.version), found))


@bp.get("/model")
@operation(None, Model, 503)
def model_info():
    """The serving model: version, created, counts, quality; reload status"""
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
