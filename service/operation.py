"""An operation of the HTTP API, declared on its view: the request type it reads, the shape
it answers, the error statuses it can give. openapi.py writes /openapi.json from the app's
registered routes and these declarations, so a route cannot be left out of the document.

    @bp.get("/related")
    @operation(RelatedRequest, Related, 404, 503)
    def related_by_title(req: RelatedRequest): ...      # req read and checked before the view runs

The page and its files (the explorer) are marked `page`: HTML, JavaScript and CSS, not the API.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

from flask import request

from .decode import from_json, from_query, json_body
from .state import compute_slot, state


@dataclass(frozen=True)
class Operation:
    request: type | None        # read before the view runs (decode.py); None: no parameters
    answer: Any                 # the 200 answer: a shape (msgspec Struct) or a JSON Schema
    errors: tuple[int, ...]     # the statuses it answers besides 200 and errors.ANY_ROUTE
    summary: str                # the view's docstring, first line
    media: str = "application/json"
    others: tuple[tuple[int, str, Any], ...] = ()   # (status, description, shape): other answers


def operation(req: type | None, answer: Any, *errors: int, media: str = "application/json",
              others: tuple[tuple[int, str, Any], ...] = ()) -> Callable:
    def declare(view: Callable) -> Callable:
        statuses = errors if req is None or 504 in errors else (*errors, 504)   # no compute slot in time
        op = Operation(req, answer, statuses, (view.__doc__ or "").strip().split("\n")[0], media, others)
        if req is None:
            view.operation = op
            return view

        @functools.wraps(view)
        def read_first(**_path: str) -> Any:
            parsed = read(req)          # the body read outside the slot: a slow sender holds none
            with compute_slot():
                return view(parsed)
        read_first.operation = op
        return read_first
    return declare


def read(cls: type) -> Any:
    """This request as a `cls`: its JSON body (POST), else its query string and path."""
    limits = state().config.limits
    if request.method == "POST":
        return from_json(cls, json_body(limits.max_body_bytes), limits)
    return from_query(cls, request.args, request.view_args or {}, limits)


def page(view: Callable) -> Callable:
    view.page = True
    return view
