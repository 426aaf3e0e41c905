"""The query side: a loaded model answering "titles related to X" (numpy + Annoy only).

    model = epgembed.bundle.load_model("MODEL_DIR")
    model.related("Tatort", k=10)            # known or never-seen title
    model.related_to_id(42, k=10)            # catalog id: the exact neighbour table, else the index
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .catalog import Catalog
from .index import query_item, query_vector
from .tokenize import Tokenizer


class QueryError(ValueError):
    """A query that cannot be answered (empty title, unknown id, bad k)."""


@dataclass
class Hit:
    id: int
    title: str
    score: float
    categories: list[str]


@dataclass
class Related:
    query: str
    known: bool
    id: int | None
    hits: list[Hit] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"query": self.query, "known": self.known, "id": self.id,
                "related": [asdict(h) for h in self.hits]}


def unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return (v / n).astype(np.float32) if n > 0 else np.asarray(v, dtype=np.float32)


def unit_sum(table: np.ndarray, ids: list[int], weights: list[float] | None = None) -> np.ndarray:
    """Normalized (weighted) sum of rows `ids` of `table` (numpy twin of model.title_vectors)."""
    rows = np.asarray(table[np.asarray(ids, dtype=np.int64)], dtype=np.float64)
    if weights is not None:
        rows = rows * np.asarray(weights, dtype=np.float64)[:, None]
    return unit(rows.sum(axis=0))


def center_vectors(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit rows of vectors - mean, mean): the catalog's shared direction removed."""
    center = vectors.mean(axis=0, dtype=np.float64).astype(np.float32)
    if vectors.dtype != np.float32:   # float64 input: float64 arithmetic, then float32
        out = vectors - center
        return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32), center
    out = vectors - center            # float32: one [S, D] array, divided in place
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out, center


def query_vector_of(table: np.ndarray, ids: list[int], center: np.ndarray | None,
                    weights: list[float] | None = None) -> np.ndarray:
    """A title's vector from its tokens: unit (weighted) sum, centered like the catalog."""
    v = unit_sum(table, ids, weights)
    return v if center is None else unit(v.astype(np.float64) - center)


class RelatedModel:
    def __init__(self, path: Path, manifest: dict, tokenizer: Tokenizer, catalog: Catalog,
                 embeddings: np.ndarray, vectors: np.ndarray, index, token_counts: np.ndarray,
                 center: np.ndarray | None = None,
                 neighbours: tuple[np.ndarray, np.ndarray] | None = None):
        self.path = Path(path)
        self.manifest = manifest
        self.tokenizer = tokenizer
        self.catalog = catalog
        self.embeddings = embeddings
        self.vectors = vectors
        self.index = index
        self.token_counts = token_counts
        self.center = center if center is not None and np.any(center) else None
        self.search_k = int(manifest.get("config", {}).get("index", {}).get("search_k", -1))
        self.n_trees = int(manifest.get("n_trees", 0) or 0)
        self.neighbours = neighbours   # (ids [S, K], cosines [S, K]): exact, for catalog titles

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def __len__(self) -> int:
        return len(self.catalog)

    # ------------------------------------------------------------------ embedding
    def embed(self, title: str) -> np.ndarray:
        ids = self.tokenizer.encode(title)
        if not ids:
            raise QueryError("title has no tokens after normalization")
        return query_vector_of(self.embeddings, ids, self.center)

    def item_tokens(self, show_id: int) -> list[tuple[int, str, float]]:
        """(token id, surface, weight) that make up catalog title `show_id`'s stored vector:
        its title tokens (weight 1) and description words (lower weight)."""
        show = self.catalog.shows[show_id]
        return self.tokenizer.item_tokens(show.key, show.context)

    def vector_of(self, ids: list[int], weights: list[float] | None = None) -> np.ndarray:
        """The vector a bag of (weighted) tokens gets; vector_of(item tokens) == vectors[i]."""
        return query_vector_of(self.embeddings, ids, self.center, weights)

    def resolve(self, title: str) -> int | None:
        return self.catalog.lookup(title)

    # ------------------------------------------------------------------ queries
    def related(self, title: str, k: int = 10, *, include_self: bool = False,
                min_score: float | None = None, category: str | None = None,
                offset: int = 0) -> Related:
        show_id = self.resolve(title)
        if show_id is not None:
            return self._related(title, show_id, None, k, include_self, min_score, category, offset)
        return self._related(title, None, self.embed(title), k, include_self, min_score, category, offset)

    def related_to_id(self, show_id: int, k: int = 10, **kw) -> Related:
        if not 0 <= show_id < len(self.catalog):
            raise QueryError(f"unknown id {show_id}")
        title = self.catalog.shows[show_id].title
        return self._related(title, show_id, None, k, kw.get("include_self", False),
                             kw.get("min_score"), kw.get("category"), kw.get("offset", 0))

    def related_titles(self, titles: list[str], k: int) -> list[list[str]]:
        """Display titles only, best first (what the evaluation protocol consumes)."""
        out = []
        for t in titles:
            try:
                out.append([h.title for h in self.related(t, k).hits])
            except QueryError:
                out.append([])
        return out

    def _search_k(self, fetch: int) -> int:
        """The configured search budget, never below Annoy's own default for `fetch` results."""
        return -1 if self.search_k < 0 else max(self.search_k, self.n_trees * fetch)

    def _related(self, title, show_id, vector, k, include_self, min_score, category, offset) -> Related:
        if k < 1:
            raise QueryError("k must be >= 1")
        n = len(self.catalog)
        want = k + offset + 1
        cat = category.casefold().strip() if category else None
        fetch = want if cat is None and min_score is None else max(want * 4, 50)
        while True:
            fetch = min(fetch, n)
            if vector is None and self.neighbours is not None and fetch <= self.neighbours[0].shape[1]:
                ids, scores = self.neighbours[0][show_id, :fetch].tolist(), self.neighbours[1][show_id, :fetch]
            elif vector is None:
                ids, scores = query_item(self.index, show_id, fetch, self._search_k(fetch))
            else:
                ids, scores = query_vector(self.index, vector, fetch, self._search_k(fetch))
            hits = []
            for i, s in zip(ids, scores):
                if i == show_id and not include_self:
                    continue
                if min_score is not None and s < min_score:
                    break  # best first: nothing after this passes either
                show = self.catalog.shows[i]
                if cat is not None and cat not in show.categories:
                    continue
                hits.append(Hit(int(i), show.title, round(float(s), 6), show.category_list()))
            exhausted = fetch >= n or (min_score is not None and len(scores) and scores[-1] < min_score)
            if len(hits) >= k + offset or exhausted:
                break
            fetch *= 4
        return Related(title, show_id is not None, show_id, hits[offset: offset + k])
