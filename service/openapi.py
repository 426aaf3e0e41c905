"""The OpenAPI 3.1 document of the service, derived from the app itself: every registered
route with its operation (operation.py), the fields of its request type with the server's
limits (epgembed.query.contract: the schemas the requests are checked against), the msgspec
shapes of its answers and the table of error codes (errors.py). A route without an
operation fails the build, so none is left out; the explorer page and its files are not the API.

What JSON Schema can say is said: bounds, lengths, patterns (a start time YYYYmmddHHMM, a
title's letter or digit), and a request type's ONE_OF as a oneOf (the batch body's titles or
programmes; explain's neighbor or neighbor_title, one query parameter object, style form,
exploded, so its keys are plain query parameters). What it cannot (a key empty once
normalized, k + offset together) is in the operation's description (the type's REFUSES).
Response objects are closed (additionalProperties: false), so tests/test_service_schema_fuzz.py
and tests/test_service_live_schema.py (schemathesis) check real conformance.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict
from functools import lru_cache
from typing import Any, Iterator

import msgspec
from flask import Flask

from epgembed.query.contract import Field, components, fields, members
from epgembed.query.shapes import Error, schemas

from .config import Limits
from .errors import ANY_ROUTE, ERRORS
from .operation import Operation

_PATH_PARAM = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")


@lru_cache(maxsize=256)
def route_label(rule: str) -> str:
    """A Flask route as /openapi.json writes its path, for the metrics' and the access log's
    `endpoint` too: "/v1/titles/<id>/related" -> "/v1/titles/{id}/related"."""
    return _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", rule)


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _is_shape(x: Any) -> bool:
    return isinstance(x, type) and issubclass(x, msgspec.Struct)


def _content(shape: Any, media: str) -> dict:
    return {media: {"schema": ref(shape.__name__) if _is_shape(shape) else shape}}


def _responses(op: Operation) -> dict:
    first = (op.answer.__doc__ or "").strip().split("\n")[0] if _is_shape(op.answer) else op.summary
    out: dict[str, Any] = {"200": {"description": first, "content": _content(op.answer, op.media)}}
    for status in sorted(set(op.errors) | set(ANY_ROUTE)):
        out[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    for status, description, shape in op.others:
        out[str(status)] = {"description": description, "content": _content(shape, "application/json")}
    return out


def _described(f: Field) -> tuple[str, dict]:
    schema = dict(f.schema)
    return schema.pop("description", ""), schema


def _branches(cls: type, body: bool) -> list[dict]:
    """cls.ONE_OF as JSON Schema: a branch's first field given, no field of another branch (in
    a body, a key given null is not given)."""
    out = []
    for branch in cls.ONE_OF:
        others = [m for b in cls.ONE_OF if b is not branch for m in members(cls, b)]
        given = [{"required": [m], "properties": {m: {"not": {"type": "null"}}}} if body else {"required": [m]}
                 for m in others]
        out.append({"required": [branch[0]], "not": {"anyOf": given}})
    return out


def _parameters(cls: type, fs: tuple[Field, ...], path: set[str]) -> list[dict]:
    branches = getattr(cls, "ONE_OF", ())
    chosen = {m for b in branches for m in members(cls, b)}
    out = []
    for f in fs:
        if f.name in chosen:
            continue
        description, schema = _described(f)
        out.append({"name": f.name, "in": "path" if f.name in path else "query",
                    "required": f.required or f.name in path, "description": description, "schema": schema})
    if branches:
        leads = [b[0] for b in branches]
        out.append({"name": "_or_".join(leads), "in": "query", "required": True, "style": "form", "explode": True,
                    "description": f"exactly one of {' or '.join(leads)}, each a query parameter of its own",
                    "schema": {"type": "object", "properties": {f.name: f.schema for f in fs if f.name in chosen},
                               "additionalProperties": False, "oneOf": _branches(cls, body=False)}})
    return out


def _body(cls: type, fs: tuple[Field, ...]) -> dict:
    """A JSON body: the flat fields as keys; null for an optional key means "not given"."""
    leads = {b[0] for b in getattr(cls, "ONE_OF", ())}
    props = {}
    for f in fs:
        description, schema = _described(f)
        if not (f.required or f.name in leads):
            schema = {"anyOf": [schema, {"type": "null"}]}
        props[f.name] = {"description": description, **schema}
    schema = {"type": "object", "properties": props, "additionalProperties": False,
              "required": [f.name for f in fs if f.required]}
    if leads:
        schema["oneOf"] = _branches(cls, body=True)
    return {"required": True, "content": {"application/json": {"schema": schema}}}


class _Limits(dict):
    """A limit's name in a text, as its value ("{max_batch}" -> 64); other braces are kept."""
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _with(text: str, limits: Limits) -> str:
    return text.format_map(_Limits(asdict(limits)))


def _description(cls: type, limits: Limits) -> str:
    text = " ".join((cls.__doc__ or "").split())
    refuses = getattr(cls, "REFUSES", ())
    if refuses:
        text += " Refused although the schema allows it (no JSON Schema says so): " + "; ".join(refuses) + "."
    return _with(text, limits)


def _operation(op: Operation, arguments: set[str], post: bool, limits: Limits) -> dict:
    out: dict[str, Any] = {"summary": _with(op.summary, limits), "parameters": [], "responses": _responses(op)}
    if op.request is not None:
        fs = fields(op.request, limits)
        out["description"] = _description(op.request, limits)
        if post:
            out["requestBody"] = _body(op.request, fs)
        else:
            out["parameters"] = _parameters(op.request, fs, arguments)
    return out


def _refs(x: Any) -> Iterator[str]:
    if isinstance(x, dict):
        if isinstance(x.get("$ref"), str) and x["$ref"].startswith("#/components/schemas/"):
            yield x["$ref"].rsplit("/", 1)[1]
        for v in x.values():
            yield from _refs(v)
    elif isinstance(x, list):
        for v in x:
            yield from _refs(v)


def operations(app: Flask) -> Iterator[tuple[str, str, Operation, set[str]]]:
    """(path, method, operation, path parameters) of every API route of `app`."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions[rule.endpoint]
        if rule.endpoint.rsplit(".", 1)[-1] == "static" or getattr(view, "page", False):
            continue
        op = getattr(view, "operation", None)
        if op is None:
            raise RuntimeError(f"route {rule.rule} ({rule.endpoint}) declares no operation (service/operation.py)")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield route_label(rule.rule), method, op, set(rule.arguments)


def build_spec(app: Flask, limits: Limits) -> dict:
    paths: dict[str, dict] = {}
    shapes: dict[str, Any] = {"Error": Error}
    requests: dict[str, dict] = {}
    for path, method, op, arguments in operations(app):
        paths.setdefault(path, {})[method.lower()] = _operation(op, arguments, method == "POST", limits)
        for shape in (op.answer, *(s for _, _, s in op.others)):
            if _is_shape(shape):
                shapes[shape.__name__] = shape
        if op.request is not None:
            requests.update(components(op.request))
    found = schemas(tuple(shapes.values()))
    wanted = set(_refs(paths))
    while wanted - set(found):                    # the types requests hold (ProgrammeQuery), closed over
        for name in wanted - set(found):
            found[name] = requests[name]
        wanted = set(_refs(found))
    statuses = {int(s) for p in paths.values() for o in p.values() for s in o["responses"] if int(s) in ERRORS}
    errors = {f"E{s}": {"description": ERRORS[s][1], "content": {"application/json": {"schema": ref("Error")}}}
              for s in sorted(statuses)}
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "epgembed related titles", "version": "1",
                 "description": "Related TV titles from StarSpace-style title embeddings. Every error is JSON "
                                "{\"error\": {status, code, message}}; any route answers 404 for an unknown "
                                "path and 405 for a wrong method. Unknown query parameters are a 400. "
                                f"Limits: k <= {limits.max_k}, k + offset <= {limits.max_answer_rows} answer rows, a batch's "
                                f"titles x (k + offset) <= {limits.max_batch_rows} answer rows, title <= "
                                f"{limits.max_title_chars} characters, batch <= {limits.max_batch} titles, "
                                f"{limits.request_seconds:g} s per request; in bytes, which no schema states: "
                                f"body <= {limits.max_body_bytes} (413 above), query string <= "
                                f"{limits.max_query_bytes} (414 above).",
                 "x-limits": asdict(limits)},
        "paths": paths,
        "components": {"schemas": dict(sorted(found.items())), "responses": errors},
    }
    return json.loads(json.dumps(spec))      # no dict shared between places
