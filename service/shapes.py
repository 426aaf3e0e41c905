"""The service's own answer shapes (title search, model description, health), declared once
as msgspec Structs like the query answers of epgembed.query.shapes: each gives the JSON
(`json_response`) and its part of /openapi.json (openapi.py: the shapes the operations answer).
The version decision's are shared.py's, which writes them to its file."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

import msgspec
from flask import Response

from epgembed.query.shapes import ModelRef, encode

from .shared import Decision, Refused

_SHAPE = dict(forbid_unknown_fields=True, frozen=True)
Time = Annotated[str, msgspec.Meta(description="UTC, ISO 8601")]


class SearchQuery(msgspec.Struct, **_SHAPE):
    q: str
    normalized: str


class Found(msgspec.Struct, **_SHAPE):
    id: int
    title: str
    categories: list[str]
    match: Literal["prefix", "word", "substring", "typo"]


class TitleSearch(msgspec.Struct, **_SHAPE):
    """Catalog titles matching a search box's text: prefixes first, then words, substrings, typos."""
    query: SearchQuery
    model: ModelRef
    titles: list[Found]


class Reload(msgspec.Struct, **_SHAPE):
    mode: Literal["models_root", "model_dir"]
    serving: Optional[str]
    refused: Optional[Refused]
    checked_at: Annotated[Optional[Time], msgspec.Meta(description="the last check of `current`")]
    poll_seconds: Optional[float]
    decision: Optional[Decision]


class Training(msgspec.Struct, **_SHAPE):
    epochs_run: Optional[int]
    best_epoch: Optional[int]
    val_p_at_10: Annotated[Optional[float], msgspec.Meta(
        description="P@10 on the training run's validation titles (null: too few to hold out)")]
    seconds: Optional[float]


class Data(msgspec.Struct, **_SHAPE):
    programmes: Optional[int]


class Model(msgspec.Struct, **_SHAPE):
    """Manifest figures of the serving model and the worker's reload status."""
    version: str
    created: Time
    name: str
    format_version: int
    shows: int
    counts: dict[str, int]
    dim: int
    vocab_size: int
    metric: str
    n_trees: int
    quality: Annotated[Optional[dict[str, Any]], msgspec.Meta(
        description="held-out figures of the nightly run that published the model; null for a "
                    "model built by `epgembed train` (see training.val_p_at_10)")]
    training: Training
    data: Data
    loaded_at: Time
    load_seconds: float
    reload: Reload


class Status(msgspec.Struct, omit_defaults=True, **_SHAPE):
    status: Literal["ok", "ready", "not ready"]
    reason: Optional[str] = None
    model: Optional[ModelRef] = None
    current: Annotated[Optional[str], msgspec.Meta(
        description="the version `current` named at the last check of the models root")] = None
    decision: Optional[Decision] = None
    workers: Annotated[Optional[dict[str, Optional[str]]], msgspec.Meta(
        description="pid -> the version each live worker serves")] = None
    root_checked_at: Annotated[Optional[str], msgspec.Meta(
        description="when this worker last finished a check of the models root (ISO 8601); "
                    "readiness answers from it and never reads the root itself")] = None


OK = encode(Status("ok"))


def json_response(shape: msgspec.Struct, status: int = 200) -> Response:
    return Response(encode(shape), status=status, mimetype="application/json")
