"""The query side: a loaded model answering "titles related to X" (numpy + Annoy only).

    model = epgembed.artifact.bundle.load_model("MODEL_DIR")
    model.related("Tatort", k=10)            # known or never-seen title
    model.related_to_id(42, k=10)            # catalog id: the exact neighbour table, else the index

By default an answer list holds distinct shows of other series: the query's own episodes
("Der Bergdoktor: ..." for "Der Bergdoktor"), the query's own show under another spelling
and repeats are left out; `same_series=True` keeps them ("more episodes").
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from epgembed.config import Config
from epgembed.ingest.catalog import Catalog
from epgembed.text.features import context_features
from epgembed.index.serve import query_item, query_vector
from epgembed.model.vectors import title_vectors
from epgembed.query.programme import programme_vector
from epgembed.query.shapes import Hit, ModelRef, ProgrammeQuery, Query, Related
from epgembed.text.normalize import series_head, squash, title_forms
from epgembed.text.tokenize import Tokenizer


class QueryError(ValueError):
    """A query that cannot be answered (empty title, unknown id, bad k)."""


class RelatedModel:
    def __init__(self, path: Path, manifest: dict, tokenizer: Tokenizer, catalog: Catalog,
                 embeddings: np.ndarray, vectors: np.ndarray, index, token_counts: np.ndarray,
                 center: np.ndarray | None = None,
                 neighbours: tuple[np.ndarray, np.ndarray] | None = None, search=None):
        self.path = Path(path)
        self.manifest = manifest
        self.tokenizer = tokenizer
        self.catalog = catalog
        self.embeddings = embeddings
        self.vectors = vectors
        self.index = index
        self.token_counts = token_counts
        self.center = center if center is not None and np.any(center) else None
        self.config = Config.from_manifest(manifest.get("config", {}))   # as built
        self.search_k = self.config.index.search_k
        self.n_trees = int(manifest.get("n_trees", 0) or 0)
        self.neighbours = neighbours   # (ids [S, K], cosines [S, K]): exact, for catalog titles
        self.search = search           # index/probe.py: exact or cluster probe; None: Annoy

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def __len__(self) -> int:
        return len(self.catalog)

    # ------------------------------------------------------------------ embedding
    def embed(self, title: str, context: dict | None = None) -> np.ndarray:
        """A never-seen title's vector from its text, plus the guide features of an optional
        schedule `context` (channel, start "YYYYmmddHHMM", minutes)."""
        check_title(title)
        ids = self.tokenizer.encode(title)
        if not ids:
            raise QueryError("title has no tokens after normalization")
        extra = self.tokenizer.feature_tokens(dict.fromkeys(context_features(**context), 1.0)
                                              if context else None)
        weights = [1.0] * len(ids) + [w for _, w in extra] if extra else None
        return self.vector_of(ids + [i for i, _ in extra], weights)

    def item_tokens(self, show_id: int) -> list[tuple[int, str, float]]:
        """(token id, surface, weight) that make up catalog title `show_id`'s stored vector:
        its title tokens (weight 1), description words and guide features (lower weights)."""
        show = self.catalog.shows[show_id]
        return self.tokenizer.item_tokens(show.key, show.context, show.features)

    def vector_of(self, ids: list[int], weights: list[float] | None = None) -> np.ndarray:
        """The vector a bag of (weighted) tokens gets (model.title_vectors, centred like the
        catalog); vector_of(item tokens) == vectors[i]."""
        return title_vectors(self.embeddings, ids, weights, self.center)

    def resolve(self, title: str) -> int | None:
        return self.catalog.lookup(title)

    # ------------------------------------------------------------------ queries
    def related(self, title: str, k: int = 10, *, include_self: bool = False,
                min_score: float | None = None, category: str | None = None,
                offset: int = 0, same_series: bool = False, context: dict | None = None) -> Related:
        """Titles related to `title` (a catalog title: its stored vector; else its text and
        the optional schedule `context`)."""
        check_title(title)
        opts = Options(k, include_self, min_score, category, offset, same_series)
        show_id = self.resolve(title)
        if show_id is not None:
            return self._related(title, show_id, None, opts)
        return self._related(title, None, self.embed(title, context), opts)

    def related_programme(self, programme: ProgrammeQuery, k: int = 10, **options) -> Related:
        """Titles related to a whole programme: a catalog title as `related` answers it, else
        the vector a catalog item with this one airing gets (query/programme.py)."""
        check_title(programme.title)
        if self.resolve(programme.title) is not None:
            return self.related(programme.title, k, **options)
        vector = programme_vector(self, programme)
        if vector is None:
            raise QueryError("the programme has no tokens after normalization")
        return self._related(programme.title, None, vector, Options(k, **options))

    def related_to_id(self, show_id: int, k: int = 10, *, include_self: bool = False,
                      min_score: float | None = None, category: str | None = None,
                      offset: int = 0, same_series: bool = False) -> Related:
        if not 0 <= show_id < len(self.catalog):
            raise QueryError(f"unknown id {show_id}")
        return self._related(self.catalog.shows[show_id].title, show_id, None,
                             Options(k, include_self, min_score, category, offset, same_series))

    def related_titles(self, titles: list[str], k: int) -> list[list[str]]:
        """Display titles only, best first (what the evaluation protocol consumes)."""
        out = []
        for t in titles:
            try:
                out.append([h.title for h in self.related(t, k).related])
            except QueryError:
                out.append([])
        return out

    def _search_k(self, fetch: int) -> int:
        """The configured search budget, never below Annoy's own default for `fetch` results."""
        return -1 if self.search_k < 0 else max(self.search_k, self.n_trees * fetch)

    def _search(self, vector, show_id: int | None, fetch: int) -> tuple[list[int], np.ndarray]:
        """The `fetch` nearest titles of an unseen title's vector, or of catalog title
        `show_id` past its table row: the model's exact or cluster-probe search (exact
        cosines; index/probe.py), else Annoy."""
        if self.search is not None:
            return self.search(self.vectors[show_id] if vector is None else vector, fetch)
        if vector is None:
            return query_item(self.index, show_id, fetch, self._search_k(fetch))
        return query_vector(self.index, vector, fetch, self._search_k(fetch))

    def _related(self, title: str, show_id: int | None, vector, o: "Options") -> Related:
        k, offset, min_score = o.k, o.offset, o.min_score
        if k < 1:
            raise QueryError("k must be >= 1")
        n = len(self.catalog)
        want = k + offset + 1
        cat = o.category.casefold().strip() if o.category else None
        keep = _Distinct(self.catalog.keys[show_id] if show_id is not None else title_forms(title).key,
                         o.same_series)
        filtered = cat is not None or min_score is not None or not o.same_series
        fetch = max(want * 4, 50) if filtered else want
        while True:
            fetch = min(fetch, n)
            if vector is None and self.neighbours is not None and fetch <= self.neighbours[0].shape[1]:
                ids, scores = self.neighbours[0][show_id, :fetch].tolist(), self.neighbours[1][show_id, :fetch]
            else:
                ids, scores = self._search(vector, show_id, fetch)
            hits = []
            keep.reset()
            for i, s in zip(ids, scores):
                if i == show_id:
                    if o.include_self:
                        show = self.catalog.shows[i]
                        hits.append(Hit(int(i), show.title, round(float(s), 6), show.category_list()))
                    continue
                if min_score is not None and s < min_score:
                    break  # best first: nothing after this passes either
                if not keep(self.catalog.keys[i]):
                    continue
                show = self.catalog.shows[i]
                if cat is not None and cat not in show.categories:
                    continue
                hits.append(Hit(int(i), show.title, round(float(s), 6), show.category_list()))
                if len(hits) >= k + offset:
                    break
            exhausted = fetch >= n or (min_score is not None and len(scores) and scores[-1] < min_score)
            if len(hits) >= k + offset or exhausted:
                break
            fetch *= 4
        return Related(Query(title, show_id is not None, show_id), ModelRef(self.version),
                       hits[offset: offset + k])


@dataclass(frozen=True)
class Options:
    """How one query is answered (an unknown option is a TypeError, never ignored)."""
    k: int = 10
    include_self: bool = False
    min_score: float | None = None
    category: str | None = None
    offset: int = 0
    same_series: bool = False


def check_title(title: str) -> None:
    """A query title needs a letter or a digit ("!!!" is no title)."""
    if not any(c.isalnum() for c in title or "") or not any(c.isalnum() for c in title_forms(title).key):
        raise QueryError("the title has no letter or digit")


class _Distinct:
    """The answer filter: with `same_series` False, answers of the query's own series
    (same part before ":" / " - ", or the query's key followed by one) and answers that
    repeat the query or an earlier answer once punctuation and spacing are dropped are
    left out: an editor's list of distinct shows of other series."""

    def __init__(self, query_key: str, same_series: bool):
        self.same_series = same_series
        self.key, self.head, self.squashed = query_key, series_head(query_key), squash(query_key)
        self.seen: set[str] = set()

    def reset(self) -> None:
        self.seen = {self.squashed} if self.squashed else set()

    def __call__(self, key: str) -> bool:
        if self.same_series:
            return True
        if series_head(key) == self.head or key.startswith((self.key + ":", self.key + " - ")):
            return False
        s = squash(key)
        if s in self.seen:
            return False
        if s:
            self.seen.add(s)
        return True
