"""The catalog: one row per show, built from programmes.

A show is what a viewer would call one title: episode markers are stripped
(normalize.strip_episode) and "Series: Episode" titles are folded into their series when
the data says the prefix is a series (it recurs with many different suffixes, the suffix
is the programme's sub-title, or the prefix also airs alone). "CSI: Miami", always
shown with the same suffix, stays whole. Nothing here knows about any provider.
"""
from __future__ import annotations

import json
import mmap
import operator
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from epgembed.config import CatalogConfig
from epgembed.fsutil import gc_paused
from epgembed.ingest.dumpfiles import ReadLimits
from epgembed.text.features import channel_feature, kind_of
from epgembed.text.normalize import MAX_TITLE_CHARS, title_forms




@dataclass(frozen=True)
class FieldLimits:
    """The largest fields one show may have: a catalog breaking them is refused when it is
    loaded (the model with it); a build never makes one (the reader skips a programme that
    alone breaks them, catalog_build caps what a show gathers). Far above real catalogs
    (longest title 121 characters, 7 categories, 40 channels, 136 aliases, a 5.5 kB line);
    a 50 MB line was served before, costing each worker 62 MB and every answer listing the
    show 52 MB."""
    title_chars: int = ReadLimits().max_title_chars   # the ingest limit (normalize cuts at 500)
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


class Catalog:
    """Shows with ids 0..n-1, a key/alias lookup and the category statistics."""

    def __init__(self, shows: Sequence[Show]):
        self.shows = shows
        self.by_key: dict[str, int] = {}
        self.keys: list[str] = []                  # key of every id (a lazy catalog keeps no shows)
        counts: Counter[str] = Counter()
        categories: list[str] = []                 # counted a block at a time (Counter's C loop)
        aliases: list[tuple[str, int]] = []
        self.series_keys: set[str] = set()         # keys that name a series of other items
        series: list[str] = []                     # every id's series: its link, else its own key
        for s in shows:                            # one pass: a lazy catalog parses each line once
            self.keys.append(s.key)
            series.append(s.series or s.key)
            if s.aliases:
                aliases.extend((a, s.id) for a in s.aliases)
            categories.extend(s.categories)
            if len(categories) > 65536:
                counts.update(categories)
                categories.clear()
            if s.series and s.series != s.key:
                self.series_keys.add(s.series)
        counts.update(categories)
        for alias, i in aliases:
            self.by_key.setdefault(alias, i)
        for i, key in enumerate(self.keys):        # a show's own key wins over another show's alias
            self.by_key[key] = i
        self.category_counts = counts
        self.groups = SeriesGroups(series)

    def __len__(self) -> int:
        return len(self.shows)

    def lookup(self, title: str) -> int | None:
        """The id of the show a raw title means, or None for a title never seen."""
        forms = title_forms(title)
        if forms.exact in self.by_key:     # a key as spelled (catalogs built without stripping)
            return self.by_key[forms.exact]
        if forms.key in self.by_key:
            return self.by_key[forms.key]
        series = forms.series
        if series is not None and series in self.by_key:   # a known series, a new episode
            show_id = self.by_key[series]
            if self.keys[show_id] == series and (series in self.series_keys
                                                 or self.shows[show_id].aliases):
                return show_id
        return None

    def broad_categories(self, max_share: float) -> set[str]:
        n = max(len(self.shows), 1)
        return {c for c, k in self.category_counts.items() if k / n > max_share}

    def supervision(self, cfg: CatalogConfig) -> tuple[list[str], list[list[int]]]:
        """Categories usable as supervision (not broad, >= min shows) and, per show, their ids."""
        broad = self.broad_categories(cfg.max_category_share)
        usable = sorted(c for c, k in self.category_counts.items()
                        if c not in broad and k >= cfg.min_category_shows)
        cat_id = {c: i for i, c in enumerate(usable)}
        own = [{cat_id[c] for c in s.categories if c in cat_id} for s in self.shows]
        if cfg.series_labels:
            pooled: dict[str, set[int]] = defaultdict(set)
            for s, cats in zip(self.shows, own):
                if s.series:
                    pooled[s.series] |= cats
            own = [cats | pooled.get(s.series, set()) if s.series else cats
                   for s, cats in zip(self.shows, own)]
        return usable, [sorted(c) for c in own]

    def summary(self) -> dict:
        labelled = sum(1 for s in self.shows if s.categories)
        return {"shows": len(self.shows), "labelled_shows": labelled,
                "categories": len(self.category_counts),
                "airings": sum(s.airings for s in self.shows)}

    def feature_kinds(self) -> dict[str, int]:
        """The shows carrying each kind of guide feature (a kind the input lacks is absent:
        e.g. slot, day and duration when no start time parses)."""
        kinds = Counter(kind for s in self.shows for kind in {kind_of(f) for f in s.features})
        return dict(sorted(kinds.items()))

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:
            for line in self._jsonl_lines():
                f.write(line)

    def _jsonl_lines(self) -> Iterator[bytes]:
        for s in self.shows:
            yield (json.dumps(s.to_json(), ensure_ascii=False) + "\n").encode("utf-8")

    def serialized(self, spool: BinaryIO | None = None) -> "SerializedCatalog":
        """This catalog as its catalog.jsonl: what training keeps until the model is written.
        In memory (a fifth of the objects' at 1M shows: 0.5 GB), or written line by line into
        `spool`, an open temporary file, where it costs no memory at all."""
        if spool is None:
            return SerializedCatalog(b"".join(self._jsonl_lines()), len(self), self.summary(),
                                     self.feature_kinds())
        for line in self._jsonl_lines():
            spool.write(line)
        spool.flush()
        return SerializedCatalog(spool, len(self), self.summary(), self.feature_kinds())

    @classmethod
    def load(cls, path: Path, lazy: bool | None = None) -> "Catalog":
        """The catalog of a catalog.jsonl file. Lazy (None: when the file is over
        LAZY_BYTES, ~200k shows): the file stays memory-mapped, shared by every process that
        opens it, and a show is parsed from its line when asked for (recent ones kept), so a
        1M-show catalog costs a server worker its key lookup, not a Python object per show."""
        path = Path(path)
        if lazy is None:
            lazy = path.stat().st_size > LAZY_BYTES
        with gc_paused():   # tens of thousands of new objects, no cycle among them
            shows: Sequence[Show] = LazyShows(path) if lazy else read_shows(path.read_bytes())
            catalog = cls(_in_order(shows, path))
        catalog.shows = shows
        return catalog


LAZY_BYTES = 64 << 20


class SeriesGroups:
    """The catalog's series as groups of ids: an answer list shows each group once. A title
    linked to a series (Show.series, decided from the data by catalog_build) is in that
    series' group; any other title is a group of its own. Arrays, not objects: at 1M titles
    the groups cost 12 bytes a title."""

    def __init__(self, series: list[str]):
        self.names: list[str] = []                 # group id -> series key
        index: dict[str, int] = {}
        of = np.empty(len(series), dtype=np.int32)
        for i, key in enumerate(series):
            g = index.get(key)
            if g is None:
                g = index[key] = len(self.names)
                self.names.append(key)
            of[i] = g
        self.of = of                               # id -> group id
        self.index = index                         # series key -> group id
        self.sizes = np.bincount(of, minlength=len(self.names)).astype(np.int32)
        self._order: np.ndarray | None = None      # ids sorted by group, made when first asked

    def members(self, group: int) -> np.ndarray:
        """The ids of one group, ascending."""
        if self._order is None:
            self._order = np.argsort(self.of, kind="stable").astype(np.int32)
            self._starts = np.concatenate(([0], np.cumsum(self.sizes))).astype(np.int64)
        return self._order[self._starts[group]: self._starts[group + 1]]


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


def _in_order(shows: Sequence[Show], path: Path) -> Iterator[Show]:
    for i, s in enumerate(shows):
        if s.id != i:
            raise ValueError(f"{path}: line {i + 1}: show id {s.id} out of order")
        yield s


class LazyShows(Sequence):
    """The shows of a catalog.jsonl, memory-mapped: show i is parsed from line i on access
    (the most recently used `cache` shows are kept); iteration parses without keeping."""

    def __init__(self, path: Path, cache: int = 1 << 16):
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self._data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        ends = np.flatnonzero(np.frombuffer(self._data, dtype=np.uint8) == 10) + 1
        if size and (not len(ends) or ends[-1] != size):
            ends = np.append(ends, size)           # a last line without its newline
        starts = np.concatenate(([0], ends[:-1])).astype(np.int64)
        keep = ends - starts > 1                    # blank lines are not shows (as in the eager load)
        self._starts, self._ends = starts[keep], ends[keep]
        self._get = lru_cache(maxsize=cache)(self._parse)

    def _parse(self, i: int) -> Show:
        return _line_show(self._data[self._starts[i]: self._ends[i]])

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = operator.index(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("show id out of range")
        return self._get(i)

    def __iter__(self) -> Iterator[Show]:
        return (self._parse(i) for i in range(len(self)))


def _line_show(line: bytes) -> Show:
    """The show of one catalog.jsonl line, checked (read_shows for one line)."""
    msgspec, decoder = _show_decoder()
    try:
        show = decoder.decode(line)
    except msgspec.DecodeError:
        return Show.from_json(json.loads(line))
    return show.checked() if len(line) > _safe_line_bytes() else show


class SerializedCatalog:
    """A catalog reduced to what `bundle.save_model` needs: its catalog.jsonl (the bytes, or
    a temporary file holding them), size, summary and feature kinds (`Catalog.load` of the
    saved file gives the catalog back)."""

    def __init__(self, jsonl: bytes | BinaryIO, n: int, summary: dict, kinds: dict[str, int]):
        self.jsonl: bytes | BinaryIO | None = jsonl
        self.n, self._summary, self._kinds = n, summary, kinds

    def __len__(self) -> int:
        return self.n

    def summary(self) -> dict:
        return dict(self._summary)

    def feature_kinds(self) -> dict[str, int]:
        return dict(self._kinds)

    def save(self, path: Path) -> None:
        """Write the file and let go of the bytes (they exist to be written once, by
        save_model, before the memory-hungry neighbour table and index are built)."""
        if self.jsonl is None:
            raise ValueError("this serialized catalog was already written (save it once)")
        if isinstance(self.jsonl, bytes):
            Path(path).write_bytes(self.jsonl)
        else:
            self.jsonl.seek(0)
            with open(path, "wb") as f:
                shutil.copyfileobj(self.jsonl, f, 1 << 20)
            self.jsonl.close()
        self.jsonl = None
