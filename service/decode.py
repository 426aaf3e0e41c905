"""Reading a request into the request type of its operation (epgembed.query.requests): the
query string and the path's parameters, or a JSON body, with the server's limits applied.

    from_query(RelatedRequest, request.args, request.view_args, limits)
    from_json(BatchRequest, json_body(limits.max_body_bytes), limits)

Each field's bounds come from contract.fields(cls, limits), the schemas /openapi.json states;
a value that breaks one is a QueryError naming the field (a 400). Only the spelling is the
web's: numbers in a URL are ASCII digits, booleans true/false/1/0; in a body an integer may
be written 178.0 (JSON Schema's integer), and null is a key not given (but for the fields a
ONE_OF chooses between).
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping

import msgspec
from flask import request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from epgembed.query.contract import Field, build, components, fields, violation
from epgembed.query.errors import QueryError

from .errors import ApiError

# Numbers in a URL are ASCII: int() and float() would also take "１２" (fullwidth), "٥"
# (Arabic-Indic), "5_0" (an underscore) and " 5 " (spaces).
_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _refuse(why: str | None) -> None:
    if why:
        raise QueryError(why)


def _unknown(fs: tuple[Field, ...], names: set[str], path: Mapping[str, str]) -> None:
    allowed = [f.name for f in fs if f.name not in path]
    extra = names - set(allowed)
    if extra:
        raise QueryError(f"unknown parameter(s): {', '.join(sorted(extra))} (allowed: {', '.join(allowed) or 'none'})")


def _not_a_number(f: Field) -> QueryError:
    return QueryError(f"{f.name} must be {'an integer' if f.schema.get('type') == 'integer' else 'a finite number'}")


def _from_text(f: Field, raw: str) -> Any:
    kind = f.schema.get("type")
    if kind == "boolean":
        low = raw.strip().lower()
        if low not in ("true", "false", "1", "0"):
            raise QueryError(f"{f.name} must be true or false")
        return low in ("true", "1")
    if kind in ("integer", "number"):
        if not (_INTEGER if kind == "integer" else _NUMBER).fullmatch(raw):
            raise _not_a_number(f)
        try:
            value = int(raw) if kind == "integer" else float(raw)
        except ValueError:              # more digits than int() converts (4300)
            raise _not_a_number(f) from None
        if kind == "number" and not math.isfinite(value):
            raise _not_a_number(f)
        _refuse(violation(f.name, value, f.schema))
        return value
    _refuse(violation(f.name, raw, f.schema))
    return raw


def _from_path(f: Field, raw: str) -> int:
    """A catalog id from a URL path: ASCII digits only (not <int:id>: werkzeug's converter
    takes "１２" for 12), within the field's bounds."""
    if not (raw.isascii() and raw.isdigit()):
        raise QueryError(f"{f.name} must be a non-negative integer, got {raw[:40]!r}")
    digits = raw.lstrip("0") or "0"
    value = int(digits) if len(digits) <= 18 else 10**18
    if value > f.schema.get("maximum", value):      # digits: never below the minimum of 0
        raise QueryError(f"{f.name} must be at most {f.schema['maximum']}")
    _refuse(violation(f.name, value, f.schema))
    return value


def from_query(cls: type, args: MultiDict, path: Mapping[str, str], limits: Any) -> Any:
    """A request of type `cls` from the query string `args` and the path's parameters."""
    fs = fields(cls, limits)
    _unknown(fs, set(args.keys()), path)
    values = {}
    for f in fs:
        if f.name in path:
            values[f.name] = _from_path(f, path[f.name])
            continue
        given = args.getlist(f.name)
        if len(given) > 1:
            raise QueryError(f"{f.name} is given more than once")
        if given:
            values[f.name] = _from_text(f, given[0])
    return _complete(cls, fs, values)


def from_json(cls: type, body: Any, limits: Any) -> Any:
    """A request of type `cls` from a JSON body (an object, its keys the flat fields)."""
    if not isinstance(body, Mapping):
        raise QueryError("the body must be a JSON object")
    fs = fields(cls, limits)
    _unknown(fs, set(body.keys()), {})
    chosen = {b[0] for b in getattr(cls, "ONE_OF", ())}
    values = {}
    for f in fs:
        if f.name not in body:
            continue
        value = body[f.name]
        if value is None:
            if f.name in chosen:
                raise QueryError(f"{f.name} must be {_kind(f.schema)}, not null")
            continue
        value = integral(value, f.schema, components(cls))
        _refuse(violation(f.name, value, f.schema))
        if "$ref" in f.schema.get("items", {}):
            try:
                value = msgspec.convert(value, f.type)
            except (msgspec.ValidationError, ValueError) as e:
                raise QueryError(f"{f.name}: {e}".replace("`$[", f"`$.{f.name}[")) from None
        values[f.name] = value
    return _complete(cls, fs, values)


def integral(value: Any, schema: dict, named: dict[str, dict]) -> Any:
    """`value` with every float where `schema` wants an integer and that is one (178.0) as an
    int: JSON Schema's integer is a number without a fraction, however written."""
    if "$ref" in schema:
        schema = named[schema["$ref"].rsplit("/", 1)[1]]
    for branch in schema.get("anyOf", ()):
        value = integral(value, branch, named)
    if isinstance(value, float) and schema.get("type") == "integer" and value.is_integer():
        return int(value)
    if isinstance(value, list) and "items" in schema:
        return [integral(x, schema["items"], named) for x in value]
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        return {k: integral(v, props[k], named) if k in props else v for k, v in value.items()}
    return value


def _kind(schema: dict) -> str:
    return "a non-empty array" if schema.get("type") == "array" else f"a {schema.get('type', 'value')}"


def _complete(cls: type, fs: tuple[Field, ...], values: dict[str, Any]) -> Any:
    for f in fs:
        if f.required and f.name not in values:
            raise QueryError(f"{f.name} is required")
    return build(cls, values)


# ------------------------------------------------------------------ the body
def _read_body(limit: int) -> bytes:
    data = request.get_data(cache=False)     # reading it enforces MAX_CONTENT_LENGTH (413) ...
    if request.content_length is None and len(data) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()         # ... but a chunked body is silently cut at the limit
    return data


def json_body(limit: int) -> Any:
    """The request's JSON body (at most `limit` bytes), or the 4xx that says why not."""
    if not request.is_json:
        raise ApiError(415, "the body must be application/json")
    try:
        data = _read_body(limit)
    except HTTPException:
        raise
    except TimeoutError as e:   # worker.py's RequestReadTimeout: the body stopped arriving
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
