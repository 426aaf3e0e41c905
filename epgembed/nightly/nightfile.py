"""A history night's programmes file (ROOT/history/<YYYY-MM-DD>.jsonl.gz), format 2:

    {"format": "epgembed-night", "format_version": 2}          the header line, then
    [channel, start, title, sub_title, [categories], desc, {stop, episode, credits, year,
     country, rating}]                                          one programme per line

Not a copy of the raw dump: only the fields the catalog uses (titles, categories,
descriptions and the guide fields of epgembed/text/features.py; no icons, no XML). A night
of format 1 (no header; rows of 5 to 7 fields) is read through artifact/upgrade.py; another
header is refused, naming the file.
"""
from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from epgembed.artifact import upgrade
from epgembed.build.ingest.epg import Programme

NIGHT_HEADER = {"format": "epgembed-night", "format_version": 2}


class NightFileError(ValueError):
    """A night file that cannot be read; the message names it (and the line)."""


GUIDE_FIELDS = ("stop", "episode", "credits", "year", "country", "rating")


def to_row(p: Programme) -> list:
    """[channel, start, title, sub_title, [categories], desc, {guide fields present}]."""
    guide = {f: getattr(p, f) for f in GUIDE_FIELDS if getattr(p, f)}
    if "credits" in guide:
        guide["credits"] = list(guide["credits"])
    return [p.channel, p.start, p.title, p.sub_title, list(p.categories), p.desc, guide]


def from_row(row: list, source: str, line: int) -> Programme:
    """The programme of a format 2 row (ValueError for anything else)."""
    if not isinstance(row, list) or len(row) != upgrade.NIGHT_ROW_FIELDS or not isinstance(row[6], dict):
        raise ValueError(f"not a programme row of {upgrade.NIGHT_ROW_FIELDS} fields")
    channel, start, title, sub_title, cats, desc, guide = row
    unknown = set(guide) - set(GUIDE_FIELDS)
    if unknown:
        raise ValueError(f"unknown guide field(s) {', '.join(sorted(unknown))}")
    guide = dict(guide)
    if "credits" in guide:
        guide["credits"] = tuple(guide["credits"])
    return Programme(title=title, sub_title=sub_title, desc=desc, categories=tuple(cats),
                     channel=channel, start=start, source=source, line=line, **guide)


def encode_programmes(programmes: Iterable[Programme]) -> bytes:
    """The gzipped file of a night's programmes (the same bytes for the same programmes)."""
    lines = json.dumps(NIGHT_HEADER) + "\n" + "".join(json.dumps(to_row(p), ensure_ascii=False) + "\n"
                                                       for p in programmes)
    return gzip.compress(lines.encode("utf-8"), compresslevel=6, mtime=0)


def read_programmes(path: Path, source: str) -> Iterator[Programme]:
    """The programmes of a night file, each with `source` and its line; NightFileError
    naming `source` (and the line) when it is damaged or of another format."""
    i = 0
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            convert = None
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if convert is None:
                    convert = _row_reader(row)
                    if isinstance(row, dict):
                        continue
                yield from_row(convert(row), source, i)
    except (OSError, EOFError, zlib.error, ValueError, TypeError, KeyError) as e:
        where = f"{source}:{i}" if i else source
        raise NightFileError(f"{where}: unreadable night ({type(e).__name__}: {e})") from None


def _row_reader(first) -> Callable[[list], list]:
    """How a night's rows are read, from its first line: a format 2 header (rows as they
    are), a row (format 1: upgrade.night_row); ValueError for another format."""
    if not isinstance(first, dict):
        return upgrade.night_row
    if first != NIGHT_HEADER:
        raise ValueError(f"not a night of format {NIGHT_HEADER['format_version']}: its header is "
                         f"{json.dumps(first)[:200]}")
    return lambda row: row


