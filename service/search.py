"""Catalog title search for search boxes: prefix, word-prefix and substring on normalized
keys, case- and accent-insensitive both ways.

Built once per loaded model (in the reload thread, before the swap), queried per request:

    text   "\\0key0\\0key1\\0...\\0"       every key once, one contiguous string
    order  ids sorted by key              prefix matches: binary search, O(log n + limit)
    words  offsets of every non-initial word start in `text`, sorted by the text from
           there to the end of its key    word matches ("tonight" in "football tonight")
    inner  substring anywhere ("ball" in "football"): str.find over `text` in C, one hit
           per key, stopping at `limit`; only when the two indexes gave fewer than `limit`

Memory is about 4 bytes per key in `order`, 4 per word in `words`, plus `text` itself;
no per-entry Python objects are kept. Results: prefix matches, then word matches (each in
key order), then inner matches (in text order); one per show.
"""
from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from epgembed.ingest.catalog import Catalog
from epgembed.text.normalize import title_forms, unaccent

_WORD_START = re.compile(r"(?<=\W)\w")   # a word character after a non-word character
SEP = "\0"


@dataclass(frozen=True)
class Match:
    id: int
    match: str    # "prefix" | "word" | "substring"


def normalize_query(q: str) -> str:
    """The query's search form (normalize.title_forms: folded like the catalog keys, no
    episode stripping, since a box types prefixes), accents dropped on both sides: "zurich"
    finds "Zürich", "zürich" "Zurich"."""
    return title_forms(q).search.replace(SEP, " ")


class TitleIndex:
    def __init__(self, keys: Sequence[str]):
        keys = [unaccent(k).replace(SEP, " ") for k in keys]
        self.n = len(keys)
        self._keys = keys
        self._text = SEP + SEP.join(keys) + SEP
        lengths = np.fromiter((len(k) + 1 for k in keys), dtype=np.int64, count=self.n)
        self._starts = np.concatenate(([1], 1 + np.cumsum(lengths)[:-1])) if self.n else np.zeros(0, np.int64)
        self._order = np.array(sorted(range(self.n), key=keys.__getitem__), dtype=np.int32)
        self._words = self._word_positions()

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> "TitleIndex":
        return cls(list(catalog.keys))

    def __len__(self) -> int:
        return self.n

    def _word_positions(self) -> np.ndarray:
        pos: list[int] = []
        for key, start in zip(self._keys, self._starts.tolist()):
            pos.extend(start + m.start() for m in _WORD_START.finditer(key))
        text, ends = self._text, self._end_of
        pos.sort(key=lambda p: text[p:ends(p)])
        return np.array(pos, dtype=np.int32)

    def _end_of(self, p: int) -> int:
        return self._text.index(SEP, p)

    def _id_at(self, p: int) -> int:
        return int(np.searchsorted(self._starts, p, side="right")) - 1

    # ------------------------------------------------------------------ queries
    def search(self, q: str, limit: int) -> list[Match]:
        q = normalize_query(q)
        if not q or limit < 1 or self.n == 0:
            return []
        out: dict[int, str] = {}
        self._prefix(q, limit, out)
        if len(out) < limit:
            self._word(q, limit, out)
        if len(out) < limit:
            self._inner(q, limit, out)
        return [Match(i, m) for i, m in out.items()]

    def _prefix(self, q: str, limit: int, out: dict[int, str]) -> None:
        keys, n = self._keys, len(q)
        i = bisect_left(self._order, q, key=lambda sid: keys[sid][:n])
        while i < self.n and len(out) < limit:
            sid = int(self._order[i])
            if not keys[sid].startswith(q):
                break
            out.setdefault(sid, "prefix")
            i += 1

    def _word(self, q: str, limit: int, out: dict[int, str]) -> None:
        text, n, words = self._text, len(q), self._words
        i = bisect_left(words, q, key=lambda p: text[p:p + n])
        while i < len(words) and len(out) < limit:
            p = int(words[i])
            if not text.startswith(q, p):
                break
            out.setdefault(self._id_at(p), "word")
            i += 1

    def _inner(self, q: str, limit: int, out: dict[int, str]) -> None:
        text, p = self._text, 0
        while len(out) < limit:
            p = text.find(q, p)
            if p < 0:
                return
            sid = self._id_at(p)
            out.setdefault(sid, "substring")
            p = int(self._starts[sid + 1]) if sid + 1 < self.n else len(text)
