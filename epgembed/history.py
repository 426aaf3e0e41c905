"""The nightly input history kept in a models root: what past nights' dumps contained.

    ROOT/history/<YYYY-MM-DD>.jsonl.gz   one programme per line:
                                         [channel, start, title, sub_title, [categories], desc]
    ROOT/history/<YYYY-MM-DD>.json       the night's meta: inputs, input statistics

Not copies of the raw dumps: only the fields the catalog uses (titles, categories and
descriptions; no credits, icons, dates, XML). A night counts only once its meta file exists;
both files are written to hidden temporary names, fsynced and renamed, data first, so a
crash leaves either the complete night or nothing (plus a hidden temp file that
`clean_tmp` removes).

A night's date comes from its programmes' start times (the first day that carries a
real share of the listings; a dump starts with a few programmes of the previous evening),
or from the newest input file's mtime when no start time parses.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from pathlib import Path

from .bundle import fsync_dir
from .epg import Programme
from .normalize import normalize_category, title_key

HISTORY = "history"
_NIGHT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_START = re.compile(r"^(\d{4})(\d{2})(\d{2})")


def history_dir(root: Path) -> Path:
    return Path(root) / HISTORY


# ---------------------------------------------------------------- night dates
def parse_night(text: str) -> date:
    if not _NIGHT.match(text):
        raise ValueError(f"night {text!r} is not YYYY-MM-DD")
    return date.fromisoformat(text)


def start_date(start: str) -> date | None:
    """The calendar date of an XMLTV start time ("20220721003300 +0000"), as written."""
    m = _START.match(start or "")
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def night_of(starts: Iterable[str], fallback_mtime: float | None, min_share: float = 0.1) -> date:
    """The earliest day with at least `min_share` of the busiest day's programmes."""
    days = Counter(d for d in map(start_date, starts) if d is not None)
    if days:
        busiest = max(days.values())
        return min(d for d, n in days.items() if n >= min_share * busiest)
    if fallback_mtime is None:
        raise ValueError("no programme start times and no file time to date the night by")
    return date.fromtimestamp(fallback_mtime)


# ---------------------------------------------------------------- statistics
def input_stats(programmes: list[Programme]) -> dict:
    """Counts the input gate compares with recent nights."""
    labelled = sum(1 for p in programmes if p.categories)
    raw = {c for p in programmes for c in p.categories}
    cats = {c for c in map(normalize_category, raw) if c}
    return {"programmes": len(programmes),
            "shows": len({title_key(t) for t in {p.title for p in programmes}}),
            "labelled_share": round(labelled / len(programmes), 4) if programmes else 0.0,
            "categories": len(cats),
            "channels": len({p.channel for p in programmes})}


# ---------------------------------------------------------------- rows
def to_row(p: Programme) -> list:
    return [p.channel, p.start, p.title, p.sub_title, list(p.categories), p.desc]


def from_row(row: list, source: str, line: int) -> Programme:
    channel, start, title, sub_title, cats = row[:5]
    desc = row[5] if len(row) > 5 else None
    return Programme(title=title, sub_title=sub_title, desc=desc, categories=tuple(cats),
                     channel=channel, start=start, source=source, line=line)


def merge(nights: Iterable[Iterable[Programme]]) -> list[Programme]:
    """One programme per airing (channel, start), the latest night's listing winning.

    Consecutive dumps overlap by days; without this an airing listed by three dumps
    would count three times.
    """
    out: dict[tuple[str, str, str], Programme] = {}
    for programmes in nights:
        for p in programmes:
            key = (p.channel, p.start, "" if p.start else p.title)
            out.pop(key, None)  # re-insert: order follows the latest listing
            out[key] = p
    return list(out.values())


# ---------------------------------------------------------------- store
def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_night(root: Path, night: date, programmes: list[Programme], meta: dict) -> Path:
    """Store a night's programmes and meta (data first: the meta file commits the night)."""
    hdir = history_dir(root)
    hdir.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(to_row(p), ensure_ascii=False) + "\n" for p in programmes)
    data_path = hdir / f"{night.isoformat()}.jsonl.gz"
    _write_atomic(data_path, gzip.compress(lines.encode("utf-8"), compresslevel=6, mtime=0))
    meta = {"night": night.isoformat(), "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **meta}
    _write_atomic(hdir / f"{night.isoformat()}.json", json.dumps(meta, indent=1).encode("utf-8"))
    fsync_dir(hdir)
    return data_path


def committed_nights(root: Path) -> list[date]:
    """Nights whose data and meta are both present, oldest first."""
    hdir = history_dir(root)
    if not hdir.is_dir():
        return []
    out = []
    for meta in hdir.glob("*.json"):
        if _NIGHT.match(meta.stem) and (hdir / f"{meta.stem}.jsonl.gz").is_file():
            out.append(date.fromisoformat(meta.stem))
    return sorted(out)


def window(nights: list[date], tonight: date, days: int) -> list[date]:
    """Past nights still inside the window: tonight - days < night < tonight."""
    oldest = tonight - timedelta(days=days)
    return [n for n in nights if oldest < n < tonight]


def read_night(root: Path, night: date) -> Iterator[Programme]:
    path = history_dir(root) / f"{night.isoformat()}.jsonl.gz"
    source = f"{HISTORY}/{path.name}"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                yield from_row(json.loads(line), source, i)


def read_meta(root: Path, night: date) -> dict:
    return json.loads((history_dir(root) / f"{night.isoformat()}.json").read_text(encoding="utf-8"))


def recent_stats(root: Path, tonight: date, n: int) -> list[dict]:
    """Input statistics of the last `n` committed nights before tonight."""
    nights = [d for d in committed_nights(root) if d < tonight][-n:]
    return [read_meta(root, d).get("stats", {}) for d in nights]


def prune_nights(root: Path, tonight: date, days: int) -> list[str]:
    """Delete nights that fell out of the window (meta first: the night stops counting)."""
    oldest = tonight - timedelta(days=days)
    gone = []
    for night in committed_nights(root):
        if night <= oldest:
            hdir = history_dir(root)
            (hdir / f"{night.isoformat()}.json").unlink(missing_ok=True)
            (hdir / f"{night.isoformat()}.jsonl.gz").unlink(missing_ok=True)
            gone.append(night.isoformat())
    return gone


def clean_tmp(root: Path) -> list[str]:
    """Remove hidden temp files and data files without meta (a crash mid-commit)."""
    hdir = history_dir(root)
    if not hdir.is_dir():
        return []
    gone = []
    for p in sorted(hdir.iterdir()):
        orphan = p.name.endswith(".jsonl.gz") and not (hdir / p.name.replace(".jsonl.gz", ".json")).exists()
        if p.name.startswith(".") or orphan:
            p.unlink(missing_ok=True)
            gone.append(f"{HISTORY}/{p.name}")
    return gone
