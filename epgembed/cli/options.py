"""Command-line options from a request type's fields (epgembed.query.requests): the names,
help and defaults the service's parameters have, read back into the type, whose bounds
then hold as they do over HTTP.

    add_fields(parser, Options)                 -k, --min-score, --category, --offset, ...
    options = from_args(Options, args)          QueryError (a ValueError) when out of bounds
"""
from __future__ import annotations

import argparse
from typing import Any

from epgembed.query.contract import build, fields

_TYPES = {"integer": int, "number": float, "string": str}


def flag(name: str) -> str:
    return f"-{name}" if len(name) == 1 else "--" + name.replace("_", "-")


def add_fields(parser: argparse.ArgumentParser | Any, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """An option per field of `cls` (a one-letter field: -k); none is given by default, so the
    type's own default holds."""
    for f in fields(cls):
        if f.name in skip:
            continue
        kind, text = f.schema.get("type"), f.schema.get("description", "")
        if kind == "boolean":
            parser.add_argument(flag(f.name), action="store_true", default=None, help=text)
            continue
        shown = "" if f.default is None else f" (default {f.default})"
        parser.add_argument(flag(f.name), type=_TYPES[kind], dest=f.name, metavar=f.name.upper(),
                            help=text + shown)


def from_args(cls: type, args: argparse.Namespace) -> Any:
    """The `cls` of the options given (the rest: its defaults)."""
    return build(cls, given(cls, args))


def given(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    return {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None}
