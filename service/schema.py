"""Request parameters: declared once, used both to validate requests and to write /openapi.json.

    params = related_params(limits)
    values = parse_query(params, request.args)   # dict, defaults filled; ApiError(400) otherwise
    values = parse_body(batch_params(limits), request.get_json())
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

from werkzeug.datastructures import MultiDict

from epgembed.config import InspectConfig

from .config import Limits


CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
         413: "payload_too_large",
         414: "uri_too_long", 415: "unsupported_media_type", 431: "headers_too_large",
         500: "internal_error", 503: "no_model", 504: "deadline_exceeded"}


MAX_ID = 2**31 - 1     # a sane upper bound for ids and counts (stated in /openapi.json)

# Numbers in a URL are ASCII: int() and float() would also take "１２" (fullwidth), "٥"
# (Arabic-Indic), "5_0" (an underscore) and " 5 " (spaces).
_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


class ApiError(Exception):
    """An error answered as JSON: {"error": {"status", "code", "message"}}."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or CODES.get(status, "error")


@dataclass(frozen=True)
class Param:
    name: str
    type: str                        # OpenAPI type: string | integer | number | boolean | array
    description: str
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None    # strings: characters; arrays: items
    items: str | None = None         # arrays: item type (string)
    item_max_length: int | None = None   # arrays of strings: characters per item
    example: Any = None              # shown in /openapi.json (and tried first by schemathesis)

    def openapi_schema(self) -> dict:
        s: dict[str, Any] = {"type": self.type}
        for key, value in (("default", self.default), ("minimum", self.minimum), ("maximum", self.maximum),
                           ("example", self.example)):
            if value is not None:
                s[key] = value
        if self.type == "string":
            s["minLength"] = 1
            if self.max_length is not None:
                s["maxLength"] = self.max_length
        if self.type == "array":
            s["items"] = {"type": self.items, "minLength": 1}
            if self.item_max_length is not None:
                s["items"]["maxLength"] = self.item_max_length
            s["minItems"] = 1
            if self.max_length is not None:
                s["maxItems"] = self.max_length
        return s


# ---------------------------------------------------------------------- declarations
def _k(limits: Limits) -> Param:
    return Param("k", "integer", f"number of related titles (k + offset <= {limits.max_answer_rows}; "
                 f"a batch: titles x (k + offset) <= {limits.max_batch_rows})", default=limits.default_k,
                 minimum=1, maximum=limits.max_k)


def filter_params(limits: Limits) -> tuple[Param, ...]:
    """The options of one query, answered one row per series (epgembed.query.related.Options)."""
    return (
        _k(limits),
        Param("min_score", "number", "only answers with at least this cosine", minimum=-1, maximum=1),
        Param("category", "string", "only answers carrying this category (case-insensitive)",
              max_length=limits.max_category_chars),
        Param("offset", "integer", f"skip this many answer rows (paging: rows are series, so a page "
              f"never repeats a series; k + offset <= {limits.max_answer_rows})",
              default=0, minimum=0, maximum=limits.max_answer_rows - 1),
        Param("include_self", "boolean", "let the query's own show be an answer", default=False),
        Param("same_series", "boolean", "also answer with the query's own series (its other "
              "episodes, other spellings of it), one row per title, first: \"more episodes\"; "
              "by default each row is one other series, as its best-scoring title", default=False),
        Param("expand", "string", "a series of an answer (its `series`): list that series' titles, "
              "best first, instead of one row per series (\"N more\")", max_length=3 * limits.max_title_chars,
              example="tennis tonight"),
    )


def context_params(limits: Limits) -> tuple[Param, ...]:
    """A schedule slot a client may send with a title the catalog has never seen."""
    return (
        Param("channel", "string", "context: the channel id (as in the guide) that airs the title",
              max_length=limits.max_category_chars, example="Das Erste"),
        Param("start", "string", "context: its start time, XMLTV style YYYYmmddHHMM (the guide's "
              "clock)", max_length=32, example="202207252015"),
        Param("minutes", "number", "context: its duration in minutes", minimum=1, maximum=1440),
    )


def related_params(limits: Limits) -> tuple[Param, ...]:
    title = Param("title", "string", "any title text: a catalog title or one never seen",
                  required=True, max_length=limits.max_title_chars, example="Football Tonight")
    return (title, *filter_params(limits), *context_params(limits))


def batch_params(limits: Limits) -> tuple[Param, ...]:
    """POST /v1/related: `titles`, or `programmes` (read as query.shapes.ProgrammeQuery, one
    each; not a Param: programme_body says what they are), with the options of every query."""
    titles = Param("titles", "array", "query titles, answered in order (or `programmes`)",
                   max_length=limits.max_batch, items="string",
                   item_max_length=limits.max_title_chars, example=["Football Tonight", "Cooking with Anna"])
    return (titles, *filter_params(limits), *context_params(limits))


PROGRAMMES = "programmes"     # the batch body's other list: whole programmes (ProgrammeQuery)


def search_params(limits: Limits) -> tuple[Param, ...]:
    return (
        Param("q", "string", "prefix or substring of a title (case-insensitive, normalized)",
              required=True, max_length=limits.max_query_chars, example="foot"),
        Param("limit", "integer", "maximum titles returned", default=limits.default_search_limit,
              minimum=1, maximum=limits.max_search_limit),
    )


# ---------------------------------------------------------------------- validation
def check_work(v: Mapping[str, Any], limits: Limits, titles: int = 1) -> None:
    """The work of one request, in answer rows (k + offset per title): at most
    Limits.max_answer_rows per title and Limits.max_batch_rows for all its titles; 400 past either."""
    rows = v["k"] + v["offset"]
    if rows > limits.max_answer_rows:
        raise ApiError(400, f"k + offset is {rows} answer rows: at most {limits.max_answer_rows}")
    if titles * rows > limits.max_batch_rows:
        raise ApiError(400, f"{titles} titles x (k + offset = {rows}) is {titles * rows} answer rows: "
                            f"at most {limits.max_batch_rows} per request")


def _check_range(p: Param, v: float) -> None:
    low, high = p.minimum, p.maximum
    if (low is None or v >= low) and (high is None or v <= high):
        return
    if low is not None and high is not None:
        raise ApiError(400, f"{p.name} must be between {low:g} and {high:g}")
    raise ApiError(400, f"{p.name} must be at least {low:g}" if low is not None else f"{p.name} must be at most {high:g}")


def _check_string(p: Param, v: str) -> str:
    if not v.strip():
        raise ApiError(400, f"{p.name} is empty")
    if not v.isascii():
        try:
            v.encode("utf-8")     # a JSON "\ud800" escape decodes to a lone surrogate: no text
        except UnicodeEncodeError:
            raise ApiError(400, f"{p.name} is not valid Unicode text (a lone surrogate)") from None
    if p.max_length is not None and len(v) > p.max_length:
        raise ApiError(400, f"{p.name} is longer than {p.max_length} characters")
    return v


def _not_a_number(p: Param) -> ApiError:
    return ApiError(400, f"{p.name} must be {'an integer' if p.type == 'integer' else 'a finite number'}")


def path_id(raw: str) -> int:
    """A catalog id from a URL path: ASCII digits only, at most MAX_ID (400 otherwise)."""
    if not (raw.isascii() and raw.isdigit()):
        raise ApiError(400, f"id must be a non-negative integer, got {raw[:40]!r}")
    digits = raw.lstrip("0") or "0"
    if len(digits) > len(str(MAX_ID)) or int(digits) > MAX_ID:
        raise ApiError(400, f"id must be at most {MAX_ID}")
    return int(digits)


def _from_text(p: Param, raw: str) -> Any:
    if p.type == "string":
        return _check_string(p, raw)
    if p.type == "boolean":
        low = raw.strip().lower()
        if low not in ("true", "false", "1", "0"):
            raise ApiError(400, f"{p.name} must be true or false")
        return low in ("true", "1")
    if not (_INTEGER if p.type == "integer" else _NUMBER).fullmatch(raw):
        raise _not_a_number(p)
    try:
        v = int(raw) if p.type == "integer" else float(raw)
    except ValueError:              # more digits than int() converts (4300)
        raise _not_a_number(p) from None
    if p.type == "number" and not math.isfinite(v):
        raise _not_a_number(p)
    _check_range(p, v)
    return v


def _from_json(p: Param, v: Any) -> Any:
    if p.type == "string":
        if not isinstance(v, str):
            raise ApiError(400, f"{p.name} must be a string")
        return _check_string(p, v)
    if p.type == "boolean":
        if not isinstance(v, bool):
            raise ApiError(400, f"{p.name} must be true or false")
        return v
    if p.type == "array":
        return _array(p, v)
    ok = isinstance(v, int) if p.type == "integer" else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or (isinstance(v, float) and not math.isfinite(v)):
        raise _not_a_number(p)
    _check_range(p, v)
    return v


def _array(p: Param, v: Any) -> list[str]:
    if not isinstance(v, list) or not v:
        raise ApiError(400, f"{p.name} must be a non-empty array")
    if p.max_length is not None and len(v) > p.max_length:
        raise ApiError(400, f"{p.name}: at most {p.max_length} items per request (got {len(v)})")
    return [_from_json(Param(f"{p.name}[{i}]", p.items or "string", "", max_length=p.item_max_length), x)
            for i, x in enumerate(v)]


def _fill(params: tuple[Param, ...], given: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for p in params:
        if p.name in given:
            out[p.name] = given[p.name]
        elif p.required:
            raise ApiError(400, f"{p.name} is required")
        else:
            out[p.name] = p.default
    return out


def _unknown(params: tuple[Param, ...], names: set[str]) -> None:
    extra = names - {p.name for p in params}
    if extra:
        allowed = ", ".join(p.name for p in params) or "none"
        raise ApiError(400, f"unknown parameter(s): {', '.join(sorted(extra))} (allowed: {allowed})")


def parse_query(params: tuple[Param, ...], args: MultiDict) -> dict[str, Any]:
    _unknown(params, set(args.keys()))
    given = {}
    for p in params:
        values = args.getlist(p.name)
        if len(values) > 1:
            raise ApiError(400, f"{p.name} is given more than once")
        if values:
            given[p.name] = _from_text(p, values[0])
    return _fill(params, given)


def parse_body(params: tuple[Param, ...], body: Any, extra: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The body's values of `params` (defaults filled); keys in `extra` are the caller's."""
    if not isinstance(body, Mapping):
        raise ApiError(400, "the body must be a JSON object")
    _unknown(params, set(body.keys()) - extra)
    given = {p.name: _from_json(p, body[p.name]) for p in params if p.name in body and body[p.name] is not None}
    return _fill(params, given)


# ---------------------------------------------------------------------- explain endpoints
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
