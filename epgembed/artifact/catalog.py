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
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from epgembed.config import CatalogConfig
from epgembed.fsutil import gc_paused
from epgembed.artifact.show import Show, line_show, read_shows
from epgembed.text.features import kind_of
from epgembed.text.normalize import series_head, squash, title_forms




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
        self._forms: dict[int, tuple[str, str]] = {}

    def __len__(self) -> int:
        return len(self.shows)

    def key_forms(self, i: int) -> tuple[str, str]:
        """(series_head, squash) of title i's key, worked out once: an answer list asks for
        them of every candidate it reads (a dict write is atomic: threads may share it)."""
        forms = self._forms.get(i)
        if forms is None:
            key = self.keys[i]
            forms = self._forms[i] = (series_head(key), squash(key))
        return forms

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
            for line in self.jsonl_lines():
                f.write(line)

    def jsonl_lines(self) -> Iterator[bytes]:
        """The catalog.jsonl line of each show, in order."""
        for s in self.shows:
            yield (json.dumps(s.to_json(), ensure_ascii=False) + "\n").encode("utf-8")

    def serialized(self, spool: BinaryIO | None = None) -> "SerializedCatalog":
        """This catalog as its catalog.jsonl: what training keeps until the model is written.
        In memory (a fifth of the objects' at 1M shows: 0.5 GB), or written line by line into
        `spool`, an open temporary file, where it costs no memory at all."""
        if spool is None:
            return SerializedCatalog(b"".join(self.jsonl_lines()), len(self), self.summary(),
                                     self.feature_kinds())
        for line in self.jsonl_lines():
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
        return line_show(self._data[self._starts[i]: self._ends[i]])

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


class SerializedCatalog:
    """A catalog reduced to what `folder.write_folder` needs: its catalog.jsonl (the bytes, or
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
        write_folder, before the memory-hungry neighbour table and index are built)."""
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
