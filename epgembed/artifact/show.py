"""One show of the catalog (a row of catalog.jsonl): its fields, the limits they must keep,
and reading shows from catalog.jsonl lines, checked against those limits.

    Show.from_json(d)            one line's show (ValueError when it breaks FIELD_LIMITS)
    read_shows(data)             every show of a catalog.jsonl's bytes (one typed decode)
    programme_problem(...)       why one programme would break the limits in any show
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from epgembed.fsutil import gc_paused
from epgembed.text.features import channel_feature
from epgembed.text.normalize import MAX_RAW_TITLE_CHARS, MAX_TITLE_CHARS


@dataclass(frozen=True)
class FieldLimits:
    """The largest fields one show may have: a catalog breaking them is refused when it is
    loaded (the model with it); a build never makes one (the reader skips a programme that
    alone breaks them, catalog_build caps what a show gathers). Far above real catalogs
    (longest title 121 characters, 7 categories, 40 channels, 136 aliases, a 5.5 kB line);
    a 50 MB line was served before, costing each worker 62 MB and every answer listing the
    show 52 MB."""
    title_chars: int = MAX_RAW_TITLE_CHARS   # the ingest limit (normalize cuts at 500)
    key_chars: int = 3 * MAX_TITLE_CHARS   # key, series, an alias: case folding can triple a title
    name_chars: int = 1000                 # a category (normalize keeps 100) or a channel id
    context_chars: int = 1 << 16
    categories: int = 256
    channels: int = 10_000
    aliases: int = 50_000
    show_chars: int = 1 << 20              # all the text of one show


FIELD_LIMITS = FieldLimits()
SKIP_CATEGORIES = "too many categories"
SKIP_CHANNEL = "channel id too long"


def programme_problem(categories: int, channel: str, lim: FieldLimits = FIELD_LIMITS) -> str | None:
    """Why one programme (`categories` of them, aired on `channel`) would break `lim` in any
    show it joined: the reader skips it with its line (like a programme without a title).
    What a show gathers over many programmes is capped instead (catalog_build)."""
    if categories > lim.categories:
        return f"{SKIP_CATEGORIES} ({categories:,}, limit {lim.categories:,})"
    feature = len(channel_feature(channel))     # the channel is a feature name too
    if feature > lim.name_chars:
        return (f"{SKIP_CHANNEL} ({len(channel):,} characters, "
                f"limit {lim.name_chars - (feature - len(channel)):,})")
    return None


@dataclass(slots=True)
class Show:
    id: int
    key: str
    title: str                               # display title: most frequent spelling
    categories: dict[str, int]               # normalized category -> airings carrying it
    airings: int
    channels: list[str]
    aliases: list[str] = field(default_factory=list)   # other keys that mean this show
    series: str | None = None                          # series key, when titles are not folded
    context: str = ""                                  # description text (catalog.context_chars)
    features: dict[str, float] = field(default_factory=dict)  # guide feature -> share of airings

    def to_json(self) -> dict:
        return {"id": self.id, "key": self.key, "title": self.title,
                "categories": self.categories, "airings": self.airings,
                "channels": self.channels, "aliases": self.aliases, "series": self.series,
                "context": self.context, "features": self.features}

    @classmethod
    def from_json(cls, d: dict) -> "Show":
        """The show of one catalog.jsonl line; ValueError when it breaks FIELD_LIMITS."""
        return cls(int(d["id"]), d["key"], d["title"], dict(d["categories"]),
                   int(d["airings"]), list(d["channels"]), list(d.get("aliases", [])),
                   d.get("series"), d.get("context", ""), dict(d.get("features", {}))).checked()

    def checked(self) -> "Show":
        """This show; ValueError when its fields break FIELD_LIMITS."""
        why = self.problem()
        if why:
            key = f" {self.key[:60]!r}" if isinstance(self.key, str) else ""
            raise ValueError(f"show {self.id}{key}: {why}")
        return self

    def problem(self, lim: FieldLimits = FIELD_LIMITS) -> str | None:
        """Why this show's fields break `lim`, or None."""
        total = 0
        for name, values, most, chars in (
                ("title", (self.title,), 1, lim.title_chars), ("key", (self.key,), 1, lim.key_chars),
                ("series", (self.series or "",), 1, lim.key_chars),
                ("aliases", self.aliases, lim.aliases, lim.key_chars),
                ("categories", self.categories, lim.categories, lim.name_chars),
                ("channels", self.channels, lim.channels, lim.name_chars),
                ("features", tuple(self.features), lim.channels, lim.name_chars),
                ("context", (self.context,), 1, lim.context_chars)):
            if len(values) > most:
                return f"{len(values):,} {name} (at most {most:,})"
            for v in values:
                if not isinstance(v, str):
                    return f"{name}: {type(v).__name__}, not text"
                if len(v) > chars:
                    return f"{name} of {len(v):,} characters (at most {chars:,})"
                total += len(v)
        if total > lim.show_chars:
            return f"{total:,} characters of text (at most {lim.show_chars:,})"
        return None

    def category_list(self) -> list[str]:
        """Categories, most frequent first."""
        return [c for c, _ in sorted(self.categories.items(), key=lambda kv: (-kv[1], kv[0]))]


def _safe_line_bytes(lim: FieldLimits = FIELD_LIMITS) -> int:
    """The longest catalog.jsonl line that cannot break `lim`, whatever it holds: every
    character of a value takes at least a byte of the line, a list item at least 3 ("",)
    and a mapping entry at least 5 ("":0,), so a line of N bytes has no text over N
    characters, no list over (N + 1) / 3 items and no mapping over (N + 1) / 5 entries."""
    return min(lim.title_chars, lim.key_chars, lim.name_chars, lim.context_chars, lim.show_chars,
               2 * lim.channels, 2 * lim.aliases, 4 * lim.categories, 4 * lim.channels)


@lru_cache(maxsize=1)
def _show_decoder():
    import msgspec   # the query side loads it anyway (query.shapes)
    return msgspec, msgspec.json.Decoder(Show)




def read_shows(data: bytes) -> list[Show]:
    """The shows of catalog.jsonl bytes, each checked as Show.from_json checks it (the
    same Show objects, several times faster): one typed decode of every line, and the
    FIELD_LIMITS check for lines long enough to break one. Bytes the typed decode refuses
    (a value of another type, malformed JSON) are read line by line with json.loads and
    Show.from_json, which say what is wrong where."""
    msgspec, decoder = _show_decoder()
    try:
        with gc_paused():
            shows = decoder.decode_lines(data)
    except msgspec.DecodeError:
        return [Show.from_json(json.loads(line)) for line in data.splitlines() if line.strip()]
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.append(np.flatnonzero(buf == 10), len(buf))
    lengths = np.diff(ends, prepend=-1) - 1                 # bytes of each line, newline excluded
    lengths = lengths[lengths > 0]
    if len(lengths) != len(shows):                           # whitespace-only lines: check them all
        lengths = np.full(len(shows), len(data))
    for i in np.flatnonzero(lengths > _safe_line_bytes()).tolist():
        shows[i].checked()
    return shows


def line_show(line: bytes) -> Show:
    """The show of one catalog.jsonl line, checked (read_shows for one line)."""
    msgspec, decoder = _show_decoder()
    try:
        show = decoder.decode(line)
    except msgspec.DecodeError:
        return Show.from_json(json.loads(line))
    return show.checked() if len(line) > _safe_line_bytes() else show
