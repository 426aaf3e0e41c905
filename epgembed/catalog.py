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
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator, Protocol

import numpy as np

from .config import CatalogConfig
from .normalize import clean_text, fold, normalize_category, split_series, strip_episode, title_key


class ProgrammeLike(Protocol):
    title: str
    sub_title: str | None
    categories: tuple[str, ...]
    channel: str


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

    def to_json(self) -> dict:
        return {"id": self.id, "key": self.key, "title": self.title,
                "categories": self.categories, "airings": self.airings,
                "channels": self.channels, "aliases": self.aliases, "series": self.series,
                "context": self.context}

    @classmethod
    def from_json(cls, d: dict) -> "Show":
        return cls(int(d["id"]), d["key"], d["title"], dict(d["categories"]),
                   int(d["airings"]), list(d["channels"]), list(d.get("aliases", [])),
                   d.get("series"), d.get("context", ""))

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
        aliases: list[tuple[str, int]] = []
        for s in shows:                            # one pass: a lazy catalog parses each line once
            self.keys.append(s.key)
            aliases.extend((a, s.id) for a in s.aliases)
            counts.update(s.categories.keys())
        for alias, i in aliases:
            self.by_key.setdefault(alias, i)
        for i, key in enumerate(self.keys):        # a show's own key wins over another show's alias
            self.by_key[key] = i
        self.category_counts = counts

    def __len__(self) -> int:
        return len(self.shows)

    def lookup(self, title: str) -> int | None:
        """The id of the show a raw title means, or None for a title never seen."""
        exact = fold(clean_text(title)).strip(" -:,|/.")
        if exact in self.by_key:           # a key as spelled (catalogs built without stripping)
            return self.by_key[exact]
        key = title_key(title)
        if key in self.by_key:
            return self.by_key[key]
        split = split_series(key)
        if split is not None and split[0] in self.by_key:
            show = self.shows[self.by_key[split[0]]]
            if show.key == split[0] and show.aliases:  # a known series, a new episode
                return show.id
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

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:
            for line in self._jsonl_lines():
                f.write(line)

    def _jsonl_lines(self) -> Iterator[bytes]:
        for s in self.shows:
            yield (json.dumps(s.to_json(), ensure_ascii=False) + "\n").encode("utf-8")

    def serialized(self) -> "SerializedCatalog":
        """This catalog as the bytes of its catalog.jsonl (a fifth of the memory of the
        objects at 1M shows): what training keeps until the model is written."""
        return SerializedCatalog(b"".join(self._jsonl_lines()), len(self), self.summary())

    @classmethod
    def load(cls, path: Path, lazy: bool | None = None) -> "Catalog":
        """The catalog of a catalog.jsonl file. Lazy (None: when the file is over
        LAZY_BYTES, ~200k shows): the file stays memory-mapped, shared by every process that
        opens it, and a show is parsed from its line when asked for (recent ones kept), so a
        1M-show catalog costs a server worker its key lookup, not a Python object per show."""
        path = Path(path)
        if lazy is None:
            lazy = path.stat().st_size > LAZY_BYTES
        if lazy:
            shows: Sequence[Show] = LazyShows(path)
        else:
            with open(path, encoding="utf-8") as f:
                shows = [Show.from_json(json.loads(line)) for line in f if line.strip()]
        catalog = cls(_in_order(shows, path))
        catalog.shows = shows
        return catalog


LAZY_BYTES = 64 << 20


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
        return Show.from_json(json.loads(self._data[self._starts[i]: self._ends[i]]))

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
    """A catalog reduced to what `bundle.save_model` needs: its catalog.jsonl bytes, size
    and summary (`Catalog.load` of the saved file gives the catalog back)."""

    def __init__(self, jsonl: bytes, n: int, summary: dict):
        self.jsonl: bytes | None = jsonl
        self.n, self._summary = n, summary

    def __len__(self) -> int:
        return self.n

    def summary(self) -> dict:
        return dict(self._summary)

    def save(self, path: Path) -> None:
        """Write the file and let go of the bytes (they exist to be written once, by
        save_model, before the memory-hungry neighbour table and index are built)."""
        if self.jsonl is None:
            raise ValueError("this serialized catalog was already written (save it once)")
        Path(path).write_bytes(self.jsonl)
        self.jsonl = None


@dataclass(slots=True)
class _Acc:
    airings: int = 0
    spellings: Counter = field(default_factory=Counter)
    categories: Counter = field(default_factory=Counter)
    channels: set = field(default_factory=set)
    subtitle_hits: int = 0   # airings whose sub-title is the part after the separator
    descs: Counter = field(default_factory=Counter)

    def context(self, chars: int) -> str:
        out, n = [], 0
        for text, _ in self.descs.most_common():
            if n >= chars:
                break
            out.append(text[: chars - n])
            n += len(out[-1]) + 1
        return " ".join(out)


class _Memo(dict):
    """A bounded memo of a pure function (cleared when full): repeated airings, categories
    and channels are cleaned once, and equal results share one string object."""

    def __init__(self, fn, size: int = 1 << 16):
        super().__init__()
        self.fn, self.size = fn, size

    def __missing__(self, arg):
        if len(self) >= self.size:
            self.clear()
        value = self[arg] = self.fn(arg)
        return value


def _accumulate(programmes: Iterable[ProgrammeLike], strip: bool = True,
                context_chars: int = 0) -> dict[str, _Acc]:
    acc: dict[str, _Acc] = defaultdict(_Acc)

    def title_parts(title: str) -> tuple[str, str]:
        clean = clean_text(title)
        base = strip_episode(clean)[0] if strip else clean
        shown = clean_text(title, keep_dashes=True)   # the feed's own spelling, for display
        return fold(base).strip(" -:,|/."), strip_episode(shown)[0] if strip else shown

    titles = _Memo(title_parts)
    categories = _Memo(normalize_category)
    channels = _Memo(lambda c: c)
    descs = _Memo(clean_text)
    subtitles = _Memo(lambda t: fold(strip_episode(clean_text(t))[0]))
    for p in programmes:
        key, spelling = titles[p.title]
        if not key:
            continue
        a = acc[key]
        a.airings += 1
        a.spellings[spelling] += 1
        for c in p.categories:
            nc = categories[c]
            if nc:
                a.categories[nc] += 1
        if p.channel:
            a.channels.add(channels[p.channel])
        if context_chars:
            desc = getattr(p, "desc", None) or p.sub_title
            if desc and len(a.descs) < 16:
                a.descs[descs[desc[: context_chars * 2]]] += 1
        if p.sub_title:
            split = split_series(key)
            if split and subtitles[p.sub_title] == split[1]:
                a.subtitle_hits += 1
    return acc


def _series_prefixes(acc: dict[str, _Acc], cfg: CatalogConfig) -> dict[str, str]:
    """key -> series prefix, for the keys that are episodes of a series."""
    groups: dict[str, list[str]] = defaultdict(list)
    for key in acc:
        split = split_series(key)
        if split:
            groups[split[0]].append(key)
    series_of: dict[str, str] = {}
    for prefix, keys in groups.items():
        n = len(keys)  # distinct suffixes
        if n < 2:
            continue
        airings = sum(acc[k].airings for k in keys)
        evidence = prefix in acc or any(acc[k].subtitle_hits for k in keys)
        many = n >= cfg.series_min_suffixes and n / airings >= cfg.series_min_suffix_ratio
        if evidence or many:
            for k in keys:
                series_of[k] = prefix
    return series_of


def _display_prefix(spelling: str, prefix_key: str) -> str:
    split = split_series(spelling)
    if split and fold(split[0]) == prefix_key:
        # cut the spelling at the same separator, keeping its case
        for sep in (": ", " - ", " | ", " \u2013 ", " \u2014 "):
            i = spelling.find(sep)
            if i > 0 and fold(spelling[:i].strip()) == prefix_key:
                return spelling[:i].strip()
    return prefix_key


def build_catalog(programmes: Iterable[ProgrammeLike], cfg: CatalogConfig | None = None) -> Catalog:
    """Fold programmes into shows; ids follow the order of the sorted show keys."""
    cfg = cfg or CatalogConfig()
    acc = _accumulate(programmes, cfg.strip_episodes, cfg.context_chars)
    series_of = _series_prefixes(acc, cfg)
    if not cfg.fold_series:
        return _unfolded(acc, series_of, cfg.context_chars)
    merged: dict[str, _Acc] = defaultdict(_Acc)
    aliases: dict[str, set[str]] = defaultdict(set)
    for key in list(acc):      # popped as folded: the accumulators and shows never all coexist
        a = acc.pop(key)
        target = series_of.get(key, key)
        m = merged[target]
        m.airings += a.airings
        m.categories.update(a.categories)
        m.channels |= a.channels
        m.descs.update(a.descs)
        if target == key:
            m.spellings.update(a.spellings)
        else:
            aliases[target].add(key)
            for spelling, c in a.spellings.items():
                m.spellings[_display_prefix(spelling, target)] += c
    shows = []
    for i, key in enumerate(sorted(merged)):
        m = merged.pop(key)
        title = max(m.spellings.items(), key=lambda kv: (kv[1], kv[0]))[0] if m.spellings else key
        shows.append(Show(i, key, title, dict(m.categories), m.airings,
                          sorted(m.channels), sorted(aliases.get(key, ())), None,
                          m.context(cfg.context_chars)))
    return Catalog(shows)


def _unfolded(acc: dict[str, _Acc], series_of: dict[str, str], context_chars: int) -> Catalog:
    """One item per title as aired (episode counters stripped), linked to its series."""
    prefixes = set(series_of.values())
    shows = []
    for i, key in enumerate(sorted(acc)):
        a = acc.pop(key)       # freed as its show is made (peak memory: one of the two)
        title = max(a.spellings.items(), key=lambda kv: (kv[1], kv[0]))[0]
        series = series_of.get(key, key if key in prefixes else None)
        shows.append(Show(i, key, title, dict(a.categories), a.airings, sorted(a.channels),
                          [], series, a.context(context_chars)))
    return Catalog(shows)


def iter_titles(catalog: Catalog) -> Iterator[str]:
    """Texts the tokenizer learns from: every show key and alias."""
    for s in catalog.shows:
        yield s.key
        yield from s.aliases
