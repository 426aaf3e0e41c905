"""The OpenAPI 3.1 document of the service, built from the same declarations that validate
requests (schema.py Param) and write answers (the msgspec shapes of epgembed.query.shapes
and service/shapes.py), so the limits and fields it states are the ones served.

Every status an operation can answer is listed with its body schema, and response objects
are closed (additionalProperties: false), so tests/test_service_schema_fuzz.py (schemathesis)
checks real conformance.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from epgembed.query.shapes import schemas

from .config import Limits
from .schema import (MAX_ID, PROGRAMMES, Param, batch_params, context_params, explain_params, explain_text_params,
                     filter_params, related_params, search_params)
from .shapes import SHAPES

ERROR_CODES = {400: "invalid input (message says which), including a query string that is not "
                    "percent-encoded UTF-8",
               404: "unknown id, series (expand) or route", 405: "method not allowed on this route",
               408: "the request body did not arrive in time (gunicorn.conf.py REQUEST_READ_SECONDS)",
               413: "request body too large", 414: "query string too long",
               415: "body is not application/json", 503: "no valid model loaded",
               504: "the request ran past its time budget"}
ALWAYS = (400, 414)          # any route: a malformed or over-long query string


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


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


def _batch_body(limits: Limits) -> dict:
    # null for an optional key means "not given" (its default); exactly one of the two lists
    props = {p.name: {"description": p.description,
                      **(p.openapi_schema() if p.required else {"anyOf": [p.openapi_schema(), {"type": "null"}]})}
             for p in batch_params(limits)}
    props["titles"] = {"description": props["titles"]["description"], **batch_params(limits)[0].openapi_schema()}
    props[PROGRAMMES] = {"description": "whole programmes (everything the guide says about one airing "
                                        "but its categories), answered in order (or `titles`)",
                         "type": "array", "items": ref("ProgrammeQuery"), "minItems": 1,
                         "maxItems": limits.max_batch}
    no_context = {"not": {"anyOf": [{"required": [p.name]} for p in context_params(limits)]}}
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "properties": props, "additionalProperties": False,
        "oneOf": [{"required": ["titles"], "not": {"required": [PROGRAMMES]}},
                  {"required": [PROGRAMMES], "not": {"required": ["titles"]}, **no_context}]}}}}


def build_spec(limits: Limits) -> dict:
    id_param = {"name": "id", "in": "path", "required": True, "description": "catalog id (GET /v1/titles)",
                "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID, "example": 0}}
    explained = responses("per-token contributions of one pair (docs/INSPECT.md)", ref("Explain"), 404, 503)
    not_ready = {"description": "no valid model loaded, the served folder is missing, or the workers "
                                "disagree on the version (reason says why)",
                 "content": {"application/json": {"schema": ref("Status")}}}
    paths = {
        "/v1/related": {
            "get": _op("Related titles for any title text (known or never seen), one row per series",
                       query_params(related_params(limits)),
                       responses("related titles, best first", ref("Related"), 404, 503)),
            "post": _op(f"Batch: related titles for up to {limits.max_batch} titles or whole programmes, "
                        "one result per query in order",
                        [], responses("one result per query; one without tokens gets an error entry",
                                      ref("Batch"), 404, 408, 413, 415, 503, 504),
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
    paths["/v1/titles/{id}/explain"] = {"get": _op(
        "Why is a neighbour related: leave-one-token-out scores, training frequencies, flags",
        [id_param, *query_params(explain_params(limits))], explained)}
    paths["/v1/explain"] = {"get": _op("The same for any text (known or never seen)",
                                       query_params(explain_text_params(limits)), explained)}
    errors = {f"E{c}": {"description": d, "content": {"application/json": {"schema": ref("Error")}}}
              for c, d in ERROR_CODES.items()}
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "epgembed related titles", "version": "1",
                 "description": "Related TV titles from StarSpace-style title embeddings. Every error is JSON "
                                "{\"error\": {status, code, message}}; any route answers 404 for an unknown "
                                "path and 405 for a wrong method. Unknown query parameters are a 400. "
                                f"Limits: k <= {limits.max_k}, k + offset <= {limits.max_answer_rows} answer rows, a batch's "
                                f"titles x (k + offset) <= {limits.max_batch_rows} answer rows, title <= "
                                f"{limits.max_title_chars} characters, batch <= {limits.max_batch} titles, "
                                f"body <= {limits.max_body_bytes} bytes, query string <= "
                                f"{limits.max_query_bytes} bytes, {limits.request_seconds:g} s per request.",
                 "x-limits": asdict(limits)},
        "paths": paths,
        "components": {"schemas": schemas(SHAPES), "responses": errors},
    }
    return json.loads(json.dumps(spec))      # no dict shared between places (STRING, ...)
