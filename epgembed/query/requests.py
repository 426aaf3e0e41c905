"""The requests of the query side, declared once: one msgspec Struct per operation.

    RelatedRequest       related titles of any title text, with its schedule context  GET /v1/related
    RelatedByIdRequest   related titles of a catalog id                        GET /v1/titles/{id}/related
    BatchRequest         titles or whole programmes (exactly one), in order    POST /v1/related
    SearchRequest        catalog titles matching a search box's text           GET /v1/titles
    ExplainRequest       why one catalog title is among another's neighbours   GET /v1/titles/{id}/explain
    ExplainTextRequest   the same for any text, the neighbour as text or id    GET /v1/explain

Their parts are what the library takes: `model.related("Tatort", Options(k=5),
context=Context(channel="ch2"))`, `related_to_id(42, Options(...))`, `related_programme(
ProgrammeQuery(...))`, explain's `Tuning`. The service reads a query string or a JSON body
into these types (service/decode.py), the CLI its options (cli/options.py), and
/openapi.json describes them (query/contract.py): each bound is declared here, once. A
value out of bounds is a QueryError on construction (contract.check), whoever builds it.

The bounds a server sets are query/limits.py RequestLimits, named in the fields (x-limit).
`REFUSES` names what a request can break that no JSON Schema can say (the service's
/openapi.json puts it in the operation's description).
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Optional

import msgspec

from epgembed.config import InspectConfig
from epgembed.query.contract import LETTER_OR_DIGIT, NOT_BLANK, TIME, check
from epgembed.query.errors import QueryError
from epgembed.text.features import parse_time
from epgembed.text.normalize import MAX_TITLE_CHARS

MAX_ID = 2**31 - 1     # a sane upper bound for ids and counts (stated in /openapi.json)
_REQUEST = dict(kw_only=True, frozen=True, forbid_unknown_fields=True)


def _meta(description: str, limit: dict[str, str] | None = None, **bounds: Any) -> msgspec.Meta:
    """A field's description and bounds; `limit`: bounds a server sets (RequestLimits names)."""
    return msgspec.Meta(description=description, **bounds,
                        **({"extra_json_schema": {"x-limit": limit}} if limit else {}))


def _text(description: str, limit: str | None = None, pattern: str = NOT_BLANK, **bounds: Any) -> Any:
    return Annotated[str, _meta(description, {"maxLength": limit} if limit else None,
                                min_length=1, pattern=pattern, **bounds)]


def _id(description: str, **more: Any) -> Any:
    return Annotated[int, _meta(description, ge=0, le=MAX_ID, **more)]


Title = _text("any title text: a catalog title or one never seen", "max_title_chars", LETTER_OR_DIGIT,
              examples=["Football Tonight"])
Start = _text("context: its start time, XMLTV style YYYYmmddHHMM (the guide's clock)", pattern=TIME,
              examples=["202207252015"])

# What no JSON Schema can say, named in the operations' descriptions (and by the live
# schemathesis test's list of known refusals, tests/test_service_live_schema.py).
EMPTY_KEY = ("a title with no letter or digit left once normalized (e.g. \u037a, which NFKC turns "
             "into a combining mark): 400")
WORK = "k + offset over max_answer_rows ({max_answer_rows}): 400"
BATCH_WORK = "titles x (k + offset) over max_batch_rows ({max_batch_rows}): 400"
NO_SUCH_DAY = "a start time on a day its month lacks (202302301200): 400"


# ------------------------------------------------------------------ a whole programme
MAX_DESC_CHARS = 4000     # a programme's description (real guides: at most ~1,500); with the
                          # rest, 64 programmes fit the service's body limit (Limits.max_body_bytes)
MAX_CREDITS = 50          # people of a programme (the catalog keeps the first 8 of an airing)
MAX_FIELD_CHARS = 200     # any other text of a programme: a channel id, a name, a rating


def _field(chars: int, description: str = "") -> Any:
    return Annotated[str, msgspec.Meta(max_length=chars, **({"description": description} if description else {}))]


class ProgrammeQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A programme asked about as a whole (`RelatedModel.related_programme`): everything a
    client's guide says about one airing of a title. A title the catalog lacks gets the
    vector a catalog item with this one airing would get (query/programme.py); a title the
    catalog has is answered as that catalog title."""
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TITLE_CHARS, pattern=LETTER_OR_DIGIT,
                                       description="the title as aired (a letter or digit at least)")]
    sub_title: Optional[_field(MAX_FIELD_CHARS)] = None
    desc: Optional[_field(MAX_DESC_CHARS, "the description")] = None
    channel: Optional[_field(MAX_FIELD_CHARS, "the channel id, as in the guide")] = None
    start: Optional[Annotated[str, msgspec.Meta(
        pattern=TIME, description="start, YYYYmmddHHMM, the guide's own clock")]] = None
    duration: Optional[Annotated[float, msgspec.Meta(gt=0, le=1440, description="minutes")]] = None
    credits: Annotated[list[_field(MAX_FIELD_CHARS)], msgspec.Meta(
        max_length=MAX_CREDITS, description="people: actors, directors, presenters, ...")] = []
    year: Optional[Annotated[int, msgspec.Meta(ge=1000, le=9999, description="year of production")]] = None
    country: Optional[_field(MAX_FIELD_CHARS)] = None
    rating: Optional[_field(MAX_FIELD_CHARS, "the rating's value, e.g. 12")] = None
    episode_num: Optional[_field(MAX_FIELD_CHARS, "the guide's episode number, any system (it marks an episode)")] = None

    def __post_init__(self) -> None:
        if self.start is not None and parse_time(self.start) is None:
            raise ValueError(f"`start` {self.start!r} is no date and time YYYYmmddHHMM - at `$.start`")



# ------------------------------------------------------------------ the requests and their parts
class Options(msgspec.Struct, **_REQUEST):
    """How one query is answered: one row per series, best first."""
    k: Annotated[int, _meta("number of related titles (answer rows), best first", {"maximum": "max_k"}, ge=1)] = 10
    min_score: Optional[Annotated[float, _meta("only answers with at least this cosine", ge=-1, le=1)]] = None
    category: Optional[_text("only answers carrying this category (case-insensitive)",
                             "max_category_chars")] = None
    offset: Annotated[int, _meta("skip this many answer rows (paging: rows are series, so a page never "
                                 "repeats a series)", {"maximum": "max_offset"}, ge=0)] = 0
    include_self: Annotated[bool, _meta("let the query's own show be an answer")] = False
    same_series: Annotated[bool, _meta(
        "also answer with the query's own series (its other episodes, other spellings of it), one "
        "row per title, first: \"more episodes\"; by default each row is one other series, as its "
        "best-scoring title")] = False
    expand: Optional[_text("a series of an answer (its `series`): list that series' titles, best first, "
                           "instead of one row per series (\"N more\")", "max_series_chars",
                           examples=["tennis tonight"])] = None

    def __post_init__(self) -> None:
        check(self)


class Context(msgspec.Struct, **_REQUEST):
    """A schedule slot a client may send with a title the catalog has never seen."""
    channel: Optional[_text("context: the channel id (as in the guide) that airs the title",
                            "max_category_chars", examples=["Das Erste"])] = None
    start: Optional[Start] = None
    minutes: Optional[Annotated[float, _meta("context: its duration in minutes", gt=0, le=1440)]] = None

    def __post_init__(self) -> None:
        check(self)
        if self.start is not None and parse_time(self.start) is None:
            raise QueryError(f"start {self.start[:40]!r} is not a time YYYYmmddHHMM")


class RelatedRequest(msgspec.Struct, **_REQUEST):
    """Related titles for any title text (known or never seen), one row per series."""
    REFUSES: ClassVar = (EMPTY_KEY, WORK, NO_SUCH_DAY)
    title: Title
    options: Options = msgspec.field(default_factory=Options)
    context: Context = msgspec.field(default_factory=Context)

    def __post_init__(self) -> None:
        check(self)


class RelatedByIdRequest(msgspec.Struct, **_REQUEST):
    """Related titles for a catalog id (exact neighbours from the model)."""
    REFUSES: ClassVar = (WORK,)
    id: _id("catalog id (GET /v1/titles)", examples=[0])
    options: Options = msgspec.field(default_factory=Options)

    def __post_init__(self) -> None:
        check(self)


class BatchRequest(msgspec.Struct, **_REQUEST):
    """Related titles for up to {max_batch} titles or whole programmes, one result per query in
    order; a query that cannot be answered (no tokens) gets an error entry."""
    ONE_OF: ClassVar = (("titles", "context"), ("programmes",))    # a programme carries its own context
    REFUSES: ClassVar = (WORK, BATCH_WORK, NO_SUCH_DAY)
    titles: Optional[Annotated[list[_text("a query title", "max_title_chars")], _meta(
        "query titles, answered in order (or `programmes`)", {"maxItems": "max_batch"}, min_length=1,
        examples=[["Football Tonight", "Cooking with Anna"]])]] = None
    programmes: Optional[Annotated[list[ProgrammeQuery], _meta(
        "whole programmes (everything the guide says about one airing but its categories), "
        "answered in order (or `titles`)", {"maxItems": "max_batch"}, min_length=1)]] = None
    options: Options = msgspec.field(default_factory=Options)
    context: Context = msgspec.field(default_factory=Context)

    def __post_init__(self) -> None:
        check(self)

    @property
    def queries(self) -> int:
        return len(self.titles or self.programmes or ())


class SearchRequest(msgspec.Struct, **_REQUEST):
    """Find catalog titles by prefix, word prefix, substring or a near match (search boxes)."""
    q: _text("prefix or substring of a title (case-insensitive, normalized)", "max_query_chars",
             examples=["foot"])
    limit: Annotated[int, _meta("maximum titles returned", {"maximum": "max_search_limit"}, ge=1)] = 20

    def __post_init__(self) -> None:
        check(self)


_DEFAULT = InspectConfig()


class Tuning(msgspec.Struct, **_REQUEST):
    """When explain flags a pair (epgembed.config.InspectConfig, whose defaults these are)."""
    rare_max_count: Annotated[int, _meta("a token is rare when at most this many labelled training "
                                         "titles use it", ge=0, le=MAX_ID)] = _DEFAULT.rare_max_count
    collapse_share: Annotated[float, _meta("flag a match when one rare token carries at least this "
                                           "share of its score", ge=0.01, le=1)] = _DEFAULT.collapse_share

    def __post_init__(self) -> None:
        check(self)

    def config(self) -> InspectConfig:
        return InspectConfig(rare_max_count=self.rare_max_count, collapse_share=self.collapse_share)


class ExplainRequest(msgspec.Struct, **_REQUEST):
    """Why is a neighbour related: leave-one-token-out scores, training frequencies, flags."""
    id: _id("catalog id (GET /v1/titles)", examples=[0])
    neighbor: _id("catalog id of the related title", examples=[1])
    tuning: Tuning = msgspec.field(default_factory=Tuning)

    def __post_init__(self) -> None:
        check(self)


class ExplainTextRequest(msgspec.Struct, **_REQUEST):
    """The same for any text (known or never seen), the neighbour as text or as a catalog id."""
    ONE_OF: ClassVar = (("neighbor",), ("neighbor_title",))
    REFUSES: ClassVar = (EMPTY_KEY,)
    title: Title
    neighbor: Optional[_id("the related title's catalog id (or give neighbor_title)")] = None
    neighbor_title: Optional[_text("the related title as text (or give neighbor)", "max_title_chars",
                                   LETTER_OR_DIGIT, examples=["Tennis Tonight"])] = None
    tuning: Tuning = msgspec.field(default_factory=Tuning)

    def __post_init__(self) -> None:
        check(self)
