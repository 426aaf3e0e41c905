"""The OpenAPI 3 document of the service, built from the same Param declarations that
validate requests (schema.py), so the limits it states are the ones enforced."""
from __future__ import annotations

from typing import Any

from .config import Limits
from .schema import Param, batch_params, filter_params, related_params, search_params

ERROR_CODES = {400: "invalid input (message says which)", 404: "unknown id or route",
               405: "method not allowed on this route", 413: "request body too large",
               415: "body is not application/json", 503: "no valid model loaded"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(params: tuple[Param, ...]) -> list[dict]:
    return [{"name": p.name, "in": "query", "required": p.required, "description": p.description,
             "schema": p.openapi_schema()} for p in params]


def _responses(ok: str, ok_schema: dict, *errors: int, media: str = "application/json") -> dict:
    out: dict[str, Any] = {"200": {"description": ok, "content": {media: {"schema": ok_schema}}}}
    for code in errors:
        out[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    return out


def _op(summary: str, params: list[dict], responses: dict, **extra: Any) -> dict:
    return {"summary": summary, "parameters": params, "responses": responses, **extra}


def _schemas() -> dict:
    obj = lambda props, req=(): {"type": "object", "properties": props, "required": list(req)}  # noqa: E731
    string, integer, number, boolean = ({"type": t} for t in ("string", "integer", "number", "boolean"))
    hit = obj({"id": integer, "title": string, "score": {**number, "description": "cosine similarity"},
               "categories": {"type": "array", "items": string}}, ("id", "title", "score", "categories"))
    query = obj({"title": string, "known": boolean, "id": {"type": "integer", "nullable": True}},
                ("title", "known", "id"))
    model_ref = obj({"version": string}, ("version",))
    related = obj({"query": query, "model": model_ref, "related": {"type": "array", "items": _ref("Hit")}},
                  ("query", "model", "related"))
    item = obj({"query": query, "related": {"type": "array", "items": _ref("Hit")}, "error": _ref("ErrorBody")},
               ("query", "related"))
    batch = obj({"model": model_ref, "results": {"type": "array", "items": _ref("BatchItem")}},
                ("model", "results"))
    found = obj({"id": integer, "title": string, "categories": {"type": "array", "items": string},
                 "match": {"type": "string", "enum": ["prefix", "word", "substring"]}})
    titles = obj({"query": obj({"q": string, "normalized": string}), "model": model_ref,
                  "titles": {"type": "array", "items": found}}, ("query", "model", "titles"))
    err_body = obj({"status": integer, "code": string, "message": string}, ("status", "code", "message"))
    return {"Hit": hit, "Query": query, "Related": related, "BatchItem": item, "Batch": batch,
            "TitleSearch": titles, "ErrorBody": err_body,
            "Error": obj({"error": _ref("ErrorBody")}, ("error",)),
            "Model": {"type": "object", "description": "manifest figures of the serving model "
                      "(version, created, counts, dims, quality, training) and reload status"},
            "Status": obj({"status": string, "reason": string, "model": model_ref}, ("status",))}


def _batch_body(limits: Limits) -> dict:
    props = {p.name: {**p.openapi_schema(), "description": p.description} for p in batch_params(limits)}
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "properties": props, "required": ["titles"], "additionalProperties": False}}}}


def build_spec(limits: Limits) -> dict:
    id_param = {"name": "id", "in": "path", "required": True, "description": "catalog id (GET /v1/titles)",
                "schema": {"type": "integer", "minimum": 0}}
    paths = {
        "/v1/related": {
            "get": _op("Related titles for any title text (known or never seen)", _query(related_params(limits)),
                       _responses("related titles, best first", _ref("Related"), 400, 503)),
            "post": _op(f"Batch: related titles for up to {limits.max_batch} titles, one result per title in order",
                        [], _responses("one result per title; a title without tokens gets an error entry",
                                       _ref("Batch"), 400, 413, 415, 503),
                        requestBody=_batch_body(limits)),
        },
        "/v1/titles/{id}/related": {"get": _op(
            "Related titles for a catalog id, straight from the index", [id_param, *_query(filter_params(limits))],
            _responses("related titles, best first", _ref("Related"), 400, 404, 503))},
        "/v1/titles": {"get": _op(
            "Find catalog titles by prefix, word prefix or substring (for search boxes)",
            _query(search_params(limits)), _responses("matching titles", _ref("TitleSearch"), 400, 503))},
        "/v1/model": {"get": _op("The serving model: version, created, counts, quality; reload status", [],
                                 _responses("model description", _ref("Model"), 503))},
        "/healthz": {"get": _op("Process alive", [], _responses("alive", _ref("Status")))},
        "/readyz": {"get": _op("Ready: a valid model is loaded", [],
                               _responses("ready", _ref("Status"), 503))},
        "/metrics": {"get": _op("Prometheus metrics (all workers)", [],
                                _responses("text exposition format", {"type": "string"}, media="text/plain"))},
        "/openapi.json": {"get": _op("This document", [], _responses("OpenAPI 3 document", {"type": "object"}))},
    }
    responses = {f"E{c}": {"description": d, "content": {"application/json": {"schema": _ref("Error")}}}
                 for c, d in ERROR_CODES.items()}
    from .explain import openapi_paths
    paths.update(openapi_paths(limits))
    return {
        "openapi": "3.0.3",
        "info": {"title": "epgembed related titles", "version": "1",
                 "description": "Related TV titles from StarSpace-style title embeddings. Every error is JSON "
                                "{\"error\": {status, code, message}}; any route answers 404 for an unknown "
                                "path and 405 for a wrong method. Unknown query parameters are a 400. "
                                f"Limits: k <= {limits.max_k}, offset <= {limits.max_offset}, title <= "
                                f"{limits.max_title_chars} characters, batch <= {limits.max_batch} titles, "
                                f"body <= {limits.max_body_bytes} bytes."},
        "paths": paths,
        "components": {"schemas": _schemas(), "responses": responses},
    }
