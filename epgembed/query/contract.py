"""A request type (epgembed/query/requests.py) read as fields: the one reading of its
declaration that checks values, writes the service's /openapi.json and names the CLI's options.

    fields(RelatedRequest)                    its flat fields, each with its JSON Schema
    fields(RelatedRequest, limits)            ... with a server's limits applied (x-limit)
    violation("k", 0, field.schema)           why a value is refused ("k must be ..."), or None
    build(RelatedRequest, {"title": "Tatort", "k": 5})     the request, its parts filled in

A request is spelled flat: a field holding a Struct (options, context, tuning) stands for
that Struct's fields, so `k` is a parameter of GET /v1/related and a key of the batch body
alike. Bounds are msgspec.Meta's (minimum, maxLength, pattern, ...) and hold for every
caller (`check`, on construction); a bound a server sets is named in the field's schema as
"x-limit": {"maximum": "max_k"}, a RequestLimits attribute, applied by `fields(cls, limits)`.
`ONE_OF` on a request type: branches of fields, exactly one branch given (`one_of`).
"""
from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator

import msgspec

from epgembed.query.errors import QueryError

REF = "#/components/schemas/{name}"
# The patterns of request text, each with the refusal it stands for (violation). They mean
# the same in Python's re and in ECMA-262 (JSON Schema's dialect): NOT_BLANK spells out
# str.isspace()'s characters rather than \s, which the two read differently (U+001C, U+FEFF).
SPACES = "\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK = f"[^{SPACES}]"
LETTER_OR_DIGIT = r"[^\W_]"       # str.isalnum() (Python's \w is Unicode's; ECMA's is ASCII only)
TIME = r"^[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])([01][0-9]|2[0-3])[0-5][0-9]$"
NO_LETTER = "the title has no letter or digit"     # whichever field: "!!!" is no title
REFUSALS = {NOT_BLANK: "{name} is empty", LETTER_OR_DIGIT: NO_LETTER,
            TIME: "{name} {value!r} is not a time YYYYmmddHHMM"}


@dataclass(frozen=True)
class Field:
    """One flat field of a request: its name (a query parameter, a body key, a CLI option)."""
    name: str
    path: tuple[str, ...]     # where it lives in the request: ("options", "k")
    schema: dict              # JSON Schema of a given value (null aside)
    required: bool
    nullable: bool            # Optional in the type: None is "not given"
    type: Any                 # the annotation (msgspec.convert reads nested Structs with it)
    default: Any


def _struct_of(annotation: Any) -> type | None:
    """The Struct type a field holds itself (not in a list), else None."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct) else None


def _unwrap(prop: dict) -> tuple[bool, dict]:
    """(nullable, the schema of a non-null value) of a property msgspec wrote."""
    branches = prop.get("anyOf")
    if not branches or {"type": "null"} not in branches:
        return False, prop
    rest = [b for b in branches if b != {"type": "null"}]
    outer = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    return True, {**outer, **rest[0]} if len(rest) == 1 else {**outer, "anyOf": rest}


def _bound(schema: Any, limits: Any) -> Any:
    """`schema` with every "x-limit" bound set from `limits` (in nested schemas too)."""
    if isinstance(schema, list):
        return [_bound(x, limits) for x in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _bound(v, limits) for k, v in schema.items()}
    for keyword, name in schema.get("x-limit", {}).items():
        out[keyword] = getattr(limits, name)
    return out


@lru_cache(maxsize=None)
def components(cls: type) -> dict[str, dict]:
    """msgspec's JSON Schema components of `cls` and every type it holds, keyed by name."""
    return msgspec.json.schema_components([cls], ref_template=REF)[1]


@lru_cache(maxsize=None)
def fields(cls: type, limits: Any = None) -> tuple[Field, ...]:
    """The flat fields of request type `cls`; with `limits`, their x-limit bounds applied."""
    return tuple(_flat(cls, (), limits))


def _flat(cls: type, prefix: tuple[str, ...], limits: Any) -> Iterator[Field]:
    schema = components(cls)[cls.__name__]
    for info in msgspec.structs.fields(cls):
        part = _struct_of(info.type)
        if part is not None:
            yield from _flat(part, prefix + (info.name,), limits)
            continue
        nullable, value = _unwrap(schema["properties"][info.encode_name])
        if value.get("default", 0) is None:
            value = {k: v for k, v in value.items() if k != "default"}
        default = info.default_factory() if info.default_factory is not msgspec.NODEFAULT else info.default
        yield Field(info.name, prefix + (info.name,), _bound(value, limits) if limits is not None else value,
                    info.required, nullable, info.type, default)


def own_fields(cls: type) -> tuple[Field, ...]:
    """The fields `cls` declares itself (no part's), static bounds: what `check` reads."""
    return tuple(f for f in fields(cls) if len(f.path) == 1)


# ------------------------------------------------------------------ checking values
def violation(name: str, value: Any, schema: dict) -> str | None:
    """Why `value` (a Python value as JSON reads it) breaks `schema`, or None; the schemas
    are the ones requests declare (types, ranges, lengths, patterns, arrays)."""
    kind = schema.get("type")
    if kind == "string":
        return _text(name, value, schema) if isinstance(value, str) else f"{name} must be a string"
    if kind == "boolean":
        return None if isinstance(value, bool) else f"{name} must be true or false"
    if kind in ("integer", "number"):
        ok = isinstance(value, int) if kind == "integer" else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or (isinstance(value, float) and not math.isfinite(value)):
            return f"{name} must be {'an integer' if kind == 'integer' else 'a finite number'}"
        return _range(name, value, schema)
    if kind == "array":
        return _array(name, value, schema)
    return None


def _figure(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _range(name: str, v: float, schema: dict) -> str | None:
    above = schema.get("exclusiveMinimum")
    if above is not None and v <= above:
        return f"{name} must be greater than {_figure(above)}"
    low, high = schema.get("minimum"), schema.get("maximum")
    if (low is None or v >= low) and (high is None or v <= high):
        return None
    if low is not None and high is not None:
        return f"{name} must be between {_figure(low)} and {_figure(high)}"
    return f"{name} must be at least {_figure(low)}" if low is not None else f"{name} must be at most {_figure(high)}"


def _text(name: str, v: str, schema: dict) -> str | None:
    if schema.get("minLength", 0) >= 1 and not v.strip():
        return f"{name} is empty"
    if not v.isascii():
        try:
            v.encode("utf-8")     # a JSON "\ud800" escape decodes to a lone surrogate: no text
        except UnicodeEncodeError:
            return f"{name} is not valid Unicode text (a lone surrogate)"
    longest = schema.get("maxLength")
    if longest is not None and len(v) > longest:
        return f"{name} is longer than {longest} characters"
    pattern = schema.get("pattern")
    if pattern is not None and re.search(pattern, v) is None:
        return REFUSALS.get(pattern, "{name} does not match " + pattern).format(name=name, value=v[:40])
    return None


def _array(name: str, v: Any, schema: dict) -> str | None:
    if not isinstance(v, list) or (schema.get("minItems", 0) >= 1 and not v):
        return f"{name} must be a non-empty array"
    most = schema.get("maxItems")
    if most is not None and len(v) > most:
        return f"{name}: at most {most} items per request (got {len(v)})"
    items = schema.get("items", {})
    if "$ref" in items:
        return None               # a Struct: msgspec.convert reads it with the field's type
    for i, x in enumerate(v):
        why = violation(f"{name}[{i}]", x, items)
        if why:
            return why
    return None


def check(obj: msgspec.Struct) -> None:
    """QueryError unless `obj`'s own fields keep their static bounds and its ONE_OF holds
    (a request type's __post_init__: the Python API and the CLI get the service's refusals)."""
    for f in own_fields(type(obj)):
        value = getattr(obj, f.name)
        if value is None and f.nullable:
            continue
        why = violation(f.name, value, f.schema)
        if why:
            raise QueryError(why)
    if getattr(type(obj), "ONE_OF", None):
        one_of(type(obj), {f.name for f in fields(type(obj)) if _given(obj, f)})


def _given(obj: msgspec.Struct, f: Field) -> bool:
    for step in f.path:
        obj = getattr(obj, step)
    return obj is not None


def members(cls: type, branch: tuple[str, ...]) -> list[str]:
    """The flat field names of a ONE_OF branch (a part, such as `context`, stands for its fields)."""
    return [f.name for f in fields(cls) if f.path[0] in branch]


def one_of(cls: type, given: set[str]) -> None:
    """QueryError unless exactly one branch of cls.ONE_OF is given (its first field), and no
    field of another branch is."""
    branches = cls.ONE_OF
    leads = [b[0] for b in branches]
    chosen = [b for b in branches if b[0] in given]
    if len(chosen) != 1:
        raise QueryError(f"give exactly one of {' or '.join(leads)}")
    for b in branches:
        stray = [name for name in members(cls, b) if name in given and b is not chosen[0]]
        if stray:
            raise QueryError(f"{', '.join(stray)}: only with {b[0]}, not with {chosen[0][0]}")


def build(cls: type, values: dict[str, Any]) -> Any:
    """An instance of `cls` from flat `values` (absent: the default), its parts built too."""
    kw = {}
    for name, part in _layout(cls):
        if part is not None:
            kw[name] = build(part, values)
        elif name in values:
            kw[name] = values[name]
    return cls(**kw)


@lru_cache(maxsize=None)
def _layout(cls: type) -> tuple[tuple[str, type | None], ...]:
    """(field name, its part's type or None) of `cls`, read once per type: msgspec reads a
    Struct's fields by evaluating its annotations, which costs more than answering a query."""
    return tuple((info.name, _struct_of(info.type)) for info in msgspec.structs.fields(cls))
