"""The OpenAPI 3 document of the service, built from the same Param declarations that
validate requests (schema.py), so the limits it states are the ones enforced.

Every status an operation can answer is listed with its body schema, and response objects
are closed (additionalProperties: false), so tests/test_service_schema_fuzz.py (schemathesis)
checks real conformance: a field added to an answer without a line here is a failure.
"""
from __future__ import annotations

import json
from typing import Any

from .config import Limits
from .schema import MAX_ID, Param, batch_params, filter_params, related_params, search_params

ERROR_CODES = {400: "invalid input (message says which), including a query string that is not "
                    "percent-encoded UTF-8",
               404: "unknown id or route", 405: "method not allowed on this route",
               413: "request body too large", 414: "query string too long",
               415: "body is not application/json", 503: "no valid model loaded",
               504: "the request ran past its time budget"}
ALWAYS = (400, 414)          # any route: a malformed or over-long query string


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict, required: tuple | list | None = None, **extra: Any) -> dict:
    """A closed object: every property listed, all required unless `required` says which."""
    return {"type": "object", "properties": props,
            "required": list(props if required is None else required), "additionalProperties": False, **extra}


STRING, INTEGER, NUMBER, BOOLEAN = ({"type": t} for t in ("string", "integer", "number", "boolean"))
STRINGS = {"type": "array", "items": STRING}


def nullable(schema: dict) -> dict:
    return {**schema, "nullable": True}


def query_params(params: tuple[Param, ...]) -> list[dict]:
    return [{"name": p.name, "in": "query", "required": p.required, "description": p.description,
             "schema": p.openapi_schema()} for p in params]


def responses(ok: str, ok_schema: dict | None, *errors: int, media: str = "application/json") -> dict:
    out: dict[str, Any] = {}
    if ok_schema is not None:
        out["200"] = {"description": ok, "content": {media: {"schema": ok_schema}}}
    for code in sorted(set(errors) | set(ALWAYS)):
        out[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    return out


def _op(summary: str, params: list[dict], resp: dict, **extra: Any) -> dict:
    return {"summary": summary, "parameters": params, "responses": resp, **extra}


def _schemas() -> dict:
    hit = obj({"id": INTEGER, "title": STRING, "score": {**NUMBER, "description": "cosine similarity"},
               "categories": STRINGS})
    query = obj({"title": STRING, "known": BOOLEAN, "id": nullable(INTEGER)})
    model_ref = obj({"version": STRING})
    related = obj({"query": query, "model": model_ref, "related": {"type": "array", "items": ref("Hit")}})
    item = obj({"query": query, "related": {"type": "array", "items": ref("Hit")}, "error": ref("ErrorBody")},
               ("query", "related"))
    batch = obj({"model": model_ref, "results": {"type": "array", "items": ref("BatchItem")}})
    found = obj({"id": INTEGER, "title": STRING, "categories": STRINGS,
                 "match": {"type": "string", "enum": ["prefix", "word", "substring"]}})
    titles = obj({"query": obj({"q": STRING, "normalized": STRING}), "model": model_ref,
                  "titles": {"type": "array", "items": found}})
    err_body = obj({"status": INTEGER, "code": STRING, "message": STRING})
    counts = {"type": "object", "additionalProperties": INTEGER}
    refused = nullable(obj({"name": STRING, "reason": STRING}))
    decision = obj({"current": nullable({**STRING, "description": "what `current` named when it was resolved"}),
                    "serve": nullable({**STRING, "description": "the version every worker serves"}),
                    "refused": refused, "at": NUMBER, "pid": INTEGER},
                   description="the version decision all workers follow (service/shared.py)")
    reload = obj({"mode": {"type": "string", "enum": ["models_root", "model_dir"]}, "serving": nullable(STRING),
                  "refused": refused,
                  "checked_at": nullable({**NUMBER, "description": "unix time of the last check of `current`"}),
                  "poll_seconds": nullable(NUMBER), "decision": nullable(decision)})
    model = obj({
        "version": STRING, "created": STRING, "name": STRING, "format_version": INTEGER, "shows": INTEGER,
        "counts": counts, "dim": INTEGER, "vocab_size": INTEGER, "metric": STRING, "n_trees": INTEGER,
        "quality": {"type": "object", "description": "the manifest's quality figures"},
        "training": obj({"epochs_run": nullable(INTEGER), "best_epoch": nullable(INTEGER),
                         "val_p_at_10": nullable(NUMBER), "seconds": nullable(NUMBER)}),
        "data": obj({"programmes": nullable(INTEGER)}),
        "loaded_at": STRING, "load_seconds": NUMBER, "reload": reload},
        description="manifest figures of the serving model and the worker's reload status")
    status = obj({"status": {"type": "string", "enum": ["ok", "ready", "not ready"]},
                  "reason": nullable(STRING), "model": model_ref, "current": nullable(STRING),
                  "decision": nullable(decision),
                  "workers": {"type": "object", "additionalProperties": nullable(STRING),
                              "description": "pid -> the version each live worker serves"}}, ("status",))
    return {"Hit": hit, "Query": query, "Related": related, "BatchItem": item, "Batch": batch,
            "TitleSearch": titles, "ErrorBody": err_body, "Error": obj({"error": ref("ErrorBody")}),
            "Model": model, "Status": status}


def _batch_body(limits: Limits) -> dict:
    # null for an optional key means "not given" (its default)
    props = {p.name: {**p.openapi_schema(), "description": p.description, **({} if p.required else {"nullable": True})}
             for p in batch_params(limits)}
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "properties": props, "required": ["titles"], "additionalProperties": False}}}}


def build_spec(limits: Limits) -> dict:
    from .explain import openapi_paths, openapi_schemas
    id_param = {"name": "id", "in": "path", "required": True, "description": "catalog id (GET /v1/titles)",
                "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID, "example": 0}}
    not_ready = {"description": "no valid model loaded, the served folder is missing, or the workers "
                                "disagree on the version (reason says why)",
                 "content": {"application/json": {"schema": ref("Status")}}}
    paths = {
        "/v1/related": {
            "get": _op("Related titles for any title text (known or never seen)", query_params(related_params(limits)),
                       responses("related titles, best first", ref("Related"), 503)),
            "post": _op(f"Batch: related titles for up to {limits.max_batch} titles, one result per title in order",
                        [], responses("one result per title; a title without tokens gets an error entry",
                                      ref("Batch"), 413, 415, 503, 504),
                        requestBody=_batch_body(limits)),
        },
        "/v1/titles/{id}/related": {"get": _op(
            "Related titles for a catalog id (exact neighbours from the model)", [id_param, *query_params(filter_params(limits))],
            responses("related titles, best first", ref("Related"), 404, 503))},
        "/v1/titles": {"get": _op(
            "Find catalog titles by prefix, word prefix or substring (for search boxes)",
            query_params(search_params(limits)), responses("matching titles", ref("TitleSearch"), 503))},
        "/v1/model": {"get": _op("The serving model: version, created, counts, quality; reload status", [],
                                 responses("model description", ref("Model"), 503))},
        "/healthz": {"get": _op("Process alive", [], responses("alive", ref("Status")))},
        "/readyz": {"get": _op("Ready: a model is served, by every worker the same", [],
                               {**responses("ready", ref("Status")), "503": not_ready})},
        "/metrics": {"get": _op("Prometheus metrics (all workers)", [],
                                responses("text exposition format", {"type": "string"}, media="text/plain"))},
        "/openapi.json": {"get": _op("This document", [], responses("OpenAPI 3 document", {"type": "object"}))},
    }
    paths.update(openapi_paths(limits))
    errors = {f"E{c}": {"description": d, "content": {"application/json": {"schema": ref("Error")}}}
              for c, d in ERROR_CODES.items()}
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "epgembed related titles", "version": "1",
                 "description": "Related TV titles from StarSpace-style title embeddings. Every error is JSON "
                                "{\"error\": {status, code, message}}; any route answers 404 for an unknown "
                                "path and 405 for a wrong method. Unknown query parameters are a 400. "
                                f"Limits: k <= {limits.max_k}, offset <= {limits.max_offset}, title <= "
                                f"{limits.max_title_chars} characters, batch <= {limits.max_batch} titles, "
                                f"body <= {limits.max_body_bytes} bytes, query string <= "
                                f"{limits.max_query_bytes} bytes, {limits.request_seconds:g} s per request."},
        "paths": paths,
        "components": {"schemas": {**_schemas(), **openapi_schemas()}, "responses": errors},
    }
    return json.loads(json.dumps(spec))      # no dict shared between places (STRING, ...)
