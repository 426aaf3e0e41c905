"""Catalog title search for search boxes: prefix, word-prefix and substring on normalized
keys, case- and accent-insensitive both ways, then near matches that forgive typos.

A show is found under its catalog key and, where it differs, under its display title in the
same normalized form as a query (normalize_query): a key loses the episode part ("ugly
americans"), so the title the service shows ("Ugly Americans S2 Ep. 3"), pasted back into
the box, found nothing (issue 26); now it is that show's own entry, first among the prefix
matches. Every entry names its show (`_show`); answers are shows, each once.

Built once per loaded model (in the reload thread, before the swap), queried per request:

    text   "\\0key0\\0key1\\0...\\0"       every key once, one contiguous string
    order  ids sorted by key              prefix matches: binary search, O(log n + limit)
    words  offsets of every non-initial word start in `text`, sorted by the text from
           there to the end of its key    word matches ("tonight" in "football tonight")
    inner  substring anywhere ("ball" in "football"): str.find over `text` in C, one hit
           per key, stopping at `limit`; only when the two indexes gave fewer than `limit`
    grams  key ids per character trigram of the keys (non-word characters read as a space,
           every key padded by one), CSR: sorted 32-bit gram hashes, offsets, int32 ids

Typo matches (only when the stages above gave fewer than `limit`): a key is a near match
when the query is within `typo_budget(len(q))` edits (Damerau, optimal string alignment:
deletion, insertion, substitution, adjacent transposition; 0 under 4 characters, 1 under
9, else 2, like Meilisearch) of the whole key or of a word-aligned span of it (starting at
a word start, ending at a word end: "survivr" finds "survivor: australia"). Candidates:
keys sharing at least (query trigrams - 4 x edits) trigrams with the query (one edit
changes at most 4 of them), at most TYPO_VERIFY of them, most shared first; their distance
by one numpy dynamic programme over all candidates at once (a row per query character).

Memory is about 4 bytes per key in `order`, 4 per word in `words`, 4 per distinct trigram
of each key in `grams`, plus `text` itself; no per-entry Python objects are kept. Results:
prefix matches, then word matches (each in key order), then inner matches (in text order),
then typo matches (fewest edits, then closest in length to the query, then key order); one
per show.
"""
from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from epgembed.artifact.catalog import Catalog
from epgembed.text.normalize import title_forms, unaccent

_WORD_START = re.compile(r"(?<=\W)\w")   # a word character after a non-word character
_WORD = re.compile(r"\w")
SEP = "\0"
SPACE = 32                               # what a non-word character counts as in a trigram
TYPO_VERIFY = 64                         # candidates whose edit distance is computed, at most
TYPO_MAX_LEN = 128                       # longer queries get no typo matches
GRAM_CHUNK = 1 << 16                     # keys per step while the trigram index is built
_H1, _H2, _M32 = 0x9E3779B1, 0x85EBCA77, 0xFFFFFFFF
_FAR = 1 << 12                           # "no alignment" in the distance table (int16)


@dataclass(frozen=True)
class Match:
    id: int
    match: str    # "prefix" | "word" | "substring" | "typo"


def normalize_query(q: str) -> str:
    """The query's search form (normalize.title_forms: folded like the catalog keys, no
    episode stripping, since a box types prefixes), accents dropped on both sides: "zurich"
    finds "Zürich", "zürich" "Zurich"."""
    return title_forms(q).search.replace(SEP, " ")


def typo_budget(length: int) -> int:
    """Edits forgiven in a query of `length` characters: none for 1-3 (a box typing "ab"
    gets no noise), 1 for 4-8, 2 from 9."""
    return 0 if length < 4 else 1 if length < 9 else 2


def _distinct(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values (np.unique hashes, tens of times slower on these arrays)."""
    a = np.sort(a)
    return a[np.r_[True, a[1:] != a[:-1]]] if len(a) else a


def _gram_hash(a, b, c):
    """32-bit hash of a trigram of code points; numpy arrays (uint32, wrapping) or ints."""
    return ((a * _H1 + b) * _H2 + c) & _M32


class TitleIndex:
    def __init__(self, keys: Sequence[str], shows: Sequence[int] | None = None):
        """Index `keys`; entry i finds show `shows[i]` (default: i)."""
        keys = [unaccent(k).replace(SEP, " ") for k in keys]
        self.n = len(keys)
        self._show = np.asarray(range(self.n) if shows is None else shows, dtype=np.int32)
        self._keys = keys
        self._text = SEP + SEP.join(keys) + SEP
        lengths = np.fromiter((len(k) + 1 for k in keys), dtype=np.int64, count=self.n)
        self._starts = np.concatenate(([1], 1 + np.cumsum(lengths)[:-1])) if self.n else np.zeros(0, np.int64)
        self._lens = (lengths - 1).astype(np.int32)
        self._order = np.array(sorted(range(self.n), key=keys.__getitem__), dtype=np.int32)
        self._words = self._word_positions()
        self._build_grams()

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> "TitleIndex":
        """Every key, and every display title whose search form is not its key's."""
        keys, shows = list(catalog.keys), list(range(len(catalog.keys)))
        for i, show in enumerate(catalog.shows):
            shown = normalize_query(show.title)
            if shown and shown != unaccent(keys[i]):
                keys.append(shown)
                shows.append(i)
        return cls(keys, shows)

    def __len__(self) -> int:
        return self.n

    def _word_positions(self) -> np.ndarray:
        pos: list[int] = []
        for key, start in zip(self._keys, self._starts.tolist()):
            pos.extend(start + m.start() for m in _WORD_START.finditer(key))
        text, ends = self._text, self._end_of
        pos.sort(key=lambda p: text[p:ends(p)])
        return np.array(pos, dtype=np.int32)

    def _build_grams(self) -> None:
        """The trigram index (built GRAM_CHUNK keys at a time: bounded transient memory) and
        `_is_word`, a table: code point -> is a word character."""
        self._is_word, seen = np.zeros(0x110000, dtype=bool), set()
        parts = [self._gram_pairs(lo, min(lo + GRAM_CHUNK, self.n), seen) for lo in range(0, self.n, GRAM_CHUNK)]
        pairs = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
        del parts
        pairs.sort(kind="stable")                       # merges the sorted parts: by gram, then key
        grams = (pairs >> np.uint64(32)).astype(np.uint32)
        self._post = (pairs & np.uint64(_M32)).astype(np.int32)
        del pairs
        first = np.flatnonzero(np.r_[True, grams[1:] != grams[:-1]]) if len(grams) else np.zeros(0, np.int64)
        self._gram = grams[first]
        self._gptr = np.r_[first, len(grams)].astype(np.int64)
        self._is_word = self._is_word[: max(seen, default=0) + 1].copy()

    def _gram_pairs(self, lo: int, hi: int, seen: set[int]) -> np.ndarray:
        """Sorted distinct (trigram hash << 32 | key id) of keys lo..hi-1."""
        cps = np.frombuffer((SEP + SEP.join(self._keys[lo:hi]) + SEP).encode("utf-32-le"), dtype=np.uint32)
        for c in _distinct(cps).tolist():
            if c not in seen:
                seen.add(c)
                self._is_word[c] = bool(_WORD.match(chr(c)))
        cls = np.where(self._is_word[cps], cps, np.uint32(SPACE))
        with np.errstate(over="ignore"):
            h = _gram_hash(cls[:-2], cls[1:-1], cls[2:]).astype(np.uint64)
        inside = cps[1:-1] != 0                         # a gram centred on a separator spans two keys
        key = np.cumsum(cps == 0, dtype=np.int64)[1:-1] + (lo - 1)
        return _distinct((h[inside] << np.uint64(32)) | key[inside].astype(np.uint64))

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
        if len(out) < limit:
            self._typo(q, limit, out)
        return [Match(i, m) for i, m in out.items()]

    def _prefix(self, q: str, limit: int, out: dict[int, str]) -> None:
        keys, n = self._keys, len(q)
        i = bisect_left(self._order, q, key=lambda sid: keys[sid][:n])
        while i < self.n and len(out) < limit:
            sid = int(self._order[i])
            if not keys[sid].startswith(q):
                break
            out.setdefault(int(self._show[sid]), "prefix")
            i += 1

    def _word(self, q: str, limit: int, out: dict[int, str]) -> None:
        text, n, words = self._text, len(q), self._words
        i = bisect_left(words, q, key=lambda p: text[p:p + n])
        while i < len(words) and len(out) < limit:
            p = int(words[i])
            if not text.startswith(q, p):
                break
            out.setdefault(int(self._show[self._id_at(p)]), "word")
            i += 1

    def _inner(self, q: str, limit: int, out: dict[int, str]) -> None:
        text, p = self._text, 0
        while len(out) < limit:
            p = text.find(q, p)
            if p < 0:
                return
            sid = self._id_at(p)
            out.setdefault(int(self._show[sid]), "substring")
            p = int(self._starts[sid + 1]) if sid + 1 < self.n else len(text)

    def _typo(self, q: str, limit: int, out: dict[int, str]) -> None:
        """Near keys not in `out` yet: fewest edits, then closest in length to `q`, then id."""
        k = typo_budget(len(q))
        if k == 0 or len(q) > TYPO_MAX_LEN:
            return
        cand = self._typo_candidates(q, k, np.fromiter(out, dtype=np.int64, count=len(out)))
        if not len(cand):
            return
        dist = self._distances(q, cand, k)
        near = dist <= k
        cand, dist = cand[near], dist[near]
        for j in np.lexsort((cand, np.abs(self._lens[cand] - len(q)), dist)).tolist():
            if len(out) >= limit:
                break
            out.setdefault(int(self._show[cand[j]]), "typo")

    def _typo_candidates(self, q: str, k: int, found: np.ndarray) -> np.ndarray:
        """Entries of shows not in `found` sharing enough trigrams with `q` to be within `k` edits of it or of
        a span of theirs (at most TYPO_VERIFY: the most shared trigrams, then the shortest)."""
        pad = [SPACE] + [ord(c) if _WORD.match(c) else SPACE for c in q] + [SPACE]
        hs = _distinct(np.array([_gram_hash(*g) for g in zip(pad, pad[1:], pad[2:])], dtype=np.uint32))
        need = max(1, len(hs) - 4 * k)
        at = np.minimum(np.searchsorted(self._gram, hs), max(len(self._gram) - 1, 0))
        at = at[self._gram[at] == hs] if len(self._gram) else at[:0]
        if len(at) < need:
            return np.zeros(0, np.int64)
        lists = [self._post[a:b] for a, b in zip(self._gptr[at].tolist(), self._gptr[at + 1].tolist())]
        ids, counts = self._shared(lists, need)
        if len(found):
            new = ~np.isin(self._show[ids], found)
            ids, counts = ids[new], counts[new]
        if len(ids) > TYPO_VERIFY:        # one total order: shared trigrams, shorter, smaller id
            lens = np.minimum(self._lens[ids], 0xFFFF).astype(np.int64)
            score = (((counts.astype(np.int64) << 16) - lens) << 32) - ids
            ids = ids[np.argpartition(-score, TYPO_VERIFY)[:TYPO_VERIFY]]
        return ids.astype(np.int64)

    def _shared(self, lists: list[np.ndarray], need: int) -> tuple[np.ndarray, np.ndarray]:
        """Ids on at least `need` of the sorted id `lists`, and on how many: one bincount over
        all lists, or, whichever costs less (in ns, roughly), the union of the len - need + 1
        shortest (a key on `need` lists is on one of them) counted by binary search in every
        list, shortest first, dropping the ids that the lists left can no longer lift to `need`."""
        lists.sort(key=len)
        r = len(lists) - need + 1
        rare, total = sum(map(len, lists[:r])), sum(map(len, lists))
        if 4 * total + 2 * self.n < 3000 * len(lists) + 40 * rare * r:
            counts = np.bincount(np.concatenate(lists), minlength=self.n)
            ids = np.flatnonzero(counts >= need)
            return ids, counts[ids]
        ids = _distinct(np.concatenate(lists[:r]))
        counts = np.zeros(len(ids), np.int64)
        for j, p in enumerate(lists):
            counts += p[np.minimum(np.searchsorted(p, ids), len(p) - 1)] == ids
            if j >= r - 1:
                keep = counts + (len(lists) - 1 - j) >= need
                ids, counts = ids[keep], counts[keep]
                if not len(ids):
                    break
        return ids, counts

    def _distances(self, q: str, cand: np.ndarray, k: int) -> np.ndarray:
        """Fewest edits (optimal string alignment) from `q` to each candidate key or to a
        span of it from a word start to a word end, _FAR when more than `k`: the edit-distance
        table of all candidates at once, a row per query character, a column per position in
        the (padded) keys, each cell kept as its distance minus its column (so "a key's
        character left out" is a running minimum); candidates past `k` are dropped on the way."""
        lens = self._lens[cand]
        width, rows = int(lens.max()), len(cand)
        text = "".join(self._keys[i].ljust(width, SEP) for i in cand.tolist())
        t = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).reshape(rows, width)
        word = np.zeros((rows, width + 2), dtype=bool)
        word[:, 1:-1] = self._is_word[t]
        starts = ~word[:, :-1] & word[:, 1:]           # column j: between characters j-1 and j
        starts[:, 0] = True
        ends = word[:, :-1] & ~word[:, 1:]
        ends[np.arange(rows), lens] = True
        col = np.arange(width + 1, dtype=np.int16 if width < 1 << 14 else np.int32)
        prev = -np.maximum.accumulate(np.where(starts, col, 0), axis=1)      # row 0: skip to a start
        prev2 = hit_prev = None
        live = np.arange(rows)
        for i, c in enumerate(q):
            hit = t == ord(c)
            cur = prev + 1                                                    # q's character left out
            np.minimum(cur[:, 1:], prev[:, :-1] - hit, out=cur[:, 1:])        # match or substitution
            if hit_prev is not None:                                          # adjacent transposition
                swap = hit[:, :-1] & hit_prev[:, 1:]
                if swap.any():
                    np.minimum(cur[:, 2:], np.where(swap, prev2[:, :-2] - 1, _FAR), out=cur[:, 2:])
            np.minimum.accumulate(cur, axis=1, out=cur)                       # key's character left out
            prev2, prev, hit_prev = prev, cur, hit
            if i % 4 == 3:                    # a row's minimum never falls further down the table
                ok = (prev + col).min(axis=1) <= k
                if not ok.any():
                    return np.full(rows, _FAR, dtype=np.int16)
                if not ok.all():
                    t, ends, live, prev, prev2, hit_prev = t[ok], ends[ok], live[ok], prev[ok], prev2[ok], hit_prev[ok]
        out = np.full(rows, _FAR, dtype=np.int16)
        out[live] = np.where(ends, prev + col, _FAR).min(axis=1)
        return out
