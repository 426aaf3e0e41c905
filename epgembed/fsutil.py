"""The file-system habits every writer shares: atomic writes, fsync of a folder, UTC times.

    atomic_write(path, data)     hidden temp sibling, fsynced, renamed over `path`
    fsync_dir(path)              make a rename inside `path` durable
    utc(t=None)                  ISO 8601 UTC, second resolution ("2026-12-01T09:24:28Z")
    gc_paused()                  no cyclic garbage collection inside (bulk loads of acyclic objects)
"""
from __future__ import annotations

import gc
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc(t: float | None = None) -> str:
    return time.strftime(UTC_FORMAT, time.gmtime(t))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_sibling(path: Path) -> Path:
    """A hidden name beside `path` (".<name>.tmp-<random>"), which cleaners recognise."""
    path = Path(path)
    return path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"


def write_synced(path: Path, data: bytes) -> None:
    """Write `data` to `path` and fsync it (no rename: the caller commits it)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write(path: Path, data: bytes) -> None:
    """`path` holds `data` completely or keeps what it held: never a half-written file and
    never a stray temp file (the temp sibling is removed on any failure)."""
    tmp = temp_sibling(path)
    try:
        write_synced(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

@contextmanager
def gc_paused() -> Iterator[None]:
    """Cyclic garbage collection off inside (restored after): the imports and the model
    load of a query command make a few hundred thousand objects and no garbage cycles,
    and the collector's passes over them cost the command 5-10% of its time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def escape_name(name: str) -> str:
    """``name`` with every unprintable character escaped (``\\n``, ``\\x1b``, ``\\u200b``);
    a byte that is not UTF-8 (surrogate-escaped by the OS layer) is shown as ``\\xff``."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else _escape_char(c) for c in name)


def _escape_char(c: str) -> str:
    if 0xDC80 <= ord(c) <= 0xDCFF:
        return f"\\x{ord(c) - 0xDC00:02x}"
    return c.encode("unicode_escape").decode("ascii")
