"""The shapes of the query side's answers, declared once.

Each shape is a msgspec Struct: the library returns it, `encode` writes its JSON (the HTTP
service and the CLI's `--json` both call it, so they answer in one shape), `convert`
validates a dict built elsewhere against it, and `schemas` gives its part of the service's
/openapi.json (JSON Schema, closed objects: a field added to a shape is in the document).
msgspec rather than pydantic: a 10-title answer is encoded in about 2 us, against 26 us for
building its dict and json.dumps (measured in one run on this project's machines), and its
schema output is made for OpenAPI components.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

import msgspec

from epgembed.text.features import KINDS

Score = Annotated[float, msgspec.Meta(description="cosine similarity")]
_SHAPE = dict(forbid_unknown_fields=True, frozen=True)


class Query(msgspec.Struct, **_SHAPE):
    """The query as understood: its text, and its catalog id when it is a known title."""
    title: str
    known: bool
    id: Optional[int]


class ModelRef(msgspec.Struct, **_SHAPE):
    """The model version that answered."""
    version: str


class Hit(msgspec.Struct, omit_defaults=True, **_SHAPE):
    """One related title: by default the best-scoring title of its series, standing for the
    series (each series answers once)."""
    id: int
    title: str
    score: Score
    categories: list[str]
    series: Annotated[str, msgspec.Meta(
        description="the series this answer stands for (the catalog's series key; a title "
                    "linked to no series is a series of its own): pass it as `expand` to list "
                    "the series' titles")]
    series_titles: Annotated[int, msgspec.Meta(
        ge=1, description="how many titles of that series the catalog holds (1 + the 'more' a client can offer)")]
    refreshed: Annotated[bool, msgspec.Meta(
        description="true when the title is new since the last training: added by a refresh "
                    "(`epgembed refresh`), placed by its words and guide features until the nightly "
                    "trains it in; absent otherwise")] = False


class Related(msgspec.Struct, **_SHAPE):
    """Related titles of one query, best first."""
    query: Query
    model: ModelRef
    related: list[Hit]


class ErrorBody(msgspec.Struct, **_SHAPE):
    status: int
    code: str
    message: str


class Error(msgspec.Struct, **_SHAPE):
    """Every error answer: HTTP 4xx/5xx, and the CLI's `related --json` for a bad title."""
    error: ErrorBody


class BatchItem(msgspec.Struct, omit_defaults=True, **_SHAPE):
    """One title of a batch: its answer, or an error entry (a title without tokens)."""
    query: Query
    related: list[Hit]
    error: Optional[ErrorBody] = None


class Batch(msgspec.Struct, **_SHAPE):
    """One result per title, in order."""
    model: ModelRef
    results: list[BatchItem]


# ------------------------------------------------------------------ explanations
FeatureKind = Literal[KINDS]
Part = Literal["text", "context", FeatureKind]


class ExplainSide(msgspec.Struct, **_SHAPE):
    text: str
    id: Optional[int]
    known: bool
    categories: list[str]
    informative_categories: list[str]
    words: Annotated[list[str], msgspec.Meta(
        description="the words of its normalized text, as its tokens spell them (ExplainToken.word)")]


class ExplainToken(msgspec.Struct, **_SHAPE):
    """One token of a side: its weight in the bag, training count, and what the score
    becomes without it (`without`, `drop` = score - without, `share` of the score)."""
    position: int
    id: int
    token: str
    weight: float
    count: int
    rare: bool
    without: float
    drop: float
    share: float
    kind: Annotated[Literal["piece", "word", "ngram", "context", "feature"], msgspec.Meta(
        description="piece: a tokenizer piece of a word; word: a whole-word token; ngram: a "
                    "character n-gram of a word of a query's text (weight < 1); context: a "
                    "description word (weight < 1); feature: a guide feature (channel, slot, ...)")]
    word: Annotated[Optional[int], msgspec.Meta(
        description="for a piece, word or ngram: which of the side's `words` it is (part of); else null")]
    feature: Annotated[Optional[FeatureKind], msgspec.Meta(
        description="for a feature: its kind; else null")]


class PartShare(msgspec.Struct, **_SHAPE):
    """The summed `share` of one part of the bags on each side: the titles' own words and
    pieces (text), description words (context), or one guide feature kind. A side's parts
    plus its center_share sum to the score."""
    part: Part
    title: float
    neighbor: float


class Carrier(msgspec.Struct, **_SHAPE):
    """The token whose removal lowers the score most."""
    side: Literal["title", "neighbor"]
    token: str
    id: int
    count: int
    rare: bool
    drop: float


class SideTokens(msgspec.Struct, **_SHAPE):
    title: list[ExplainToken]
    neighbor: list[ExplainToken]


class CenterShare(msgspec.Struct, **_SHAPE):
    title: float
    neighbor: float


class Explain(msgspec.Struct, **_SHAPE):
    """Per-token contributions of one pair (docs/INSPECT.md)."""
    model: ModelRef
    title: ExplainSide
    neighbor: ExplainSide
    score: float
    shared_categories: list[str]
    shared_informative_categories: list[str]
    collapse: float
    carried: float
    flags: list[Literal["no_shared_category", "rare_token_match"]]
    outlier: bool
    carrier: Carrier
    tokens: SideTokens
    center_share: CenterShare
    carried_by: list[PartShare]
    feedback: "FeedbackShare"


class FeedbackShare(msgspec.Struct, **_SHAPE):
    """A title never seen is answered by its bag vector moved toward the mean of its nearest
    catalog titles (pseudo-relevance feedback): those titles and their share of the score
    (the tokens' and the center's shares plus this one sum to it). Empty and 0 for a
    catalog title."""
    titles: list[int]
    share: float


_encoder = msgspec.json.Encoder()


def encode(shape: msgspec.Struct) -> bytes:
    """The JSON of a shape (NaN and infinities are written as null)."""
    return _encoder.encode(shape)


def convert(data: Any, shape: type) -> Any:
    """`data` (dicts and lists) as `shape`, or msgspec.ValidationError naming the field."""
    return msgspec.convert(data, shape)


def schemas(shapes: tuple[type, ...]) -> dict[str, dict]:
    """JSON Schema components of `shapes` and everything they contain, keyed by name."""
    _, components = msgspec.json.schema_components(shapes, ref_template="#/components/schemas/{name}")
    return components
