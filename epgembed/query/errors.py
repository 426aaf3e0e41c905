"""The query side's refusals, by type: a caller tells them apart with `except`, never by
their message (the HTTP service maps each type to its status in one place, service/errors.py)."""
from __future__ import annotations


class QueryError(ValueError):
    """A request that cannot be answered as asked: a value out of its bounds, a title without
    a letter or digit, two options that exclude each other. The caller's to fix."""


class NotFound(QueryError):
    """An id or a series the model does not have."""
