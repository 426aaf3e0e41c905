"""Searches for vectors that are no catalog row (unseen titles, pages past the neighbour
table), numpy only (the query side never loads torch):

    search = ExactSearch(vectors)                                  # small catalogs: every row
    search = ClusterProbe(ordered, centroids, order, bounds, rows)   # large ones: an IVF probe
    ids, cos = search(v, k)           # best first (cosine desc, then id), as query_vector gives

ClusterProbe scores the query against every centroid (one [C, D] x [D] product: 0.8 Mflop
at C = 8,000), takes the clusters with the highest scores until they hold `rows` titles,
and scores those titles exactly: one [m, D] x [D] product per cluster over a
cluster-ordered copy of the vectors, where each cluster is a contiguous slice. A true
neighbour in a cluster not probed is missed; everything returned carries its exact cosine.
The clusters are the spherical k-means of the build (clustered.spherical_kmeans), stored in
the model folder as PROBE_FILES (artifact/manifest.py; docs/SCALE.md).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from epgembed.artifact.manifest import PROBE_FILES
from epgembed.config import IndexConfig


def search_method(n: int, cfg: IndexConfig) -> str:
    """How a catalog of n titles answers vectors that are no catalog row: "exact", "probe"
    (cluster probe, files written at build) or "annoy"."""
    if cfg.search == "annoy":
        return "annoy"
    return "exact" if n <= cfg.search_exact_max_shows else "probe"


def _best(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores, best first (ties: lower position first)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    return top[np.lexsort((top, -scores[top]))]


class ExactSearch:
    """Every row scored: exact, and fast while the catalog is small (12k x 100: ~0.1 ms)."""

    method = "exact"

    def __init__(self, vectors: np.ndarray):
        self.vectors = vectors

    def __call__(self, vector: np.ndarray, k: int) -> tuple[list[int], np.ndarray]:
        scores = np.asarray(self.vectors @ np.asarray(vector, dtype=np.float32))
        top = _best(scores, k)
        return top.tolist(), scores[top].astype(np.float64)

    def describe(self) -> dict:
        return {"method": self.method}


class ClusterProbe:
    """The clusters whose centroids score highest against the query, taken in that order
    until they hold `rows` titles (at least; and at least k), every member scored exactly.
    A budget in rows rather than in clusters keeps a query's cost steady (cluster sizes vary
    tenfold) and the same at any catalog size. `ordered` is the catalog's vectors in cluster
    order (vectors[order]): a cluster is one contiguous slice, read in one product (gathering
    scattered rows costs ~3x as much)."""

    method = "probe"

    def __init__(self, ordered: np.ndarray | None, centroids: np.ndarray, order: np.ndarray,
                 bounds: np.ndarray, rows: int):
        self.ordered, self.centroids = ordered, np.asarray(centroids, dtype=np.float32)
        self.order, self.bounds = order, np.asarray(bounds, dtype=np.int64)
        self.sizes = np.diff(self.bounds)
        self.rows = max(1, int(rows))
        # clusters looked at before sorting: twice what an average cluster size predicts
        self.first = int(min(len(self.centroids), 2 * self.rows / max(1.0, self.sizes.mean()) + 16))

    def clusters_for(self, vector: np.ndarray, k: int) -> np.ndarray:
        """The clusters to score for one query, in ascending order (the slices read forward)."""
        cs = self.centroids @ vector
        want, m = max(self.rows, k), self.first
        top = np.argpartition(-cs, m - 1)[:m] if m < len(cs) else np.arange(len(cs))
        top = top[np.argsort(-cs[top], kind="stable")]
        cum = np.cumsum(self.sizes[top])
        if cum[-1] < want and m < len(cs):                 # large budget or deep page: all ranked
            top = np.argsort(-cs, kind="stable")
            cum = np.cumsum(self.sizes[top])
        return np.sort(top[: int(np.searchsorted(cum, want)) + 1])

    def __call__(self, vector: np.ndarray, k: int) -> tuple[list[int], np.ndarray]:
        v = np.asarray(vector, dtype=np.float32)
        clusters = self.clusters_for(v, k)
        lo, hi = self.bounds[clusters], self.bounds[clusters + 1]
        scores = np.concatenate([self.ordered[a: b] @ v for a, b in zip(lo.tolist(), hi.tolist())])
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        # position in `scores` -> position in the cluster order -> catalog id
        starts = np.cumsum(hi - lo) - (hi - lo)
        which = np.searchsorted(starts, top, side="right") - 1
        ids = np.asarray(self.order[lo[which] + (top - starts[which])], dtype=np.int64)
        best = np.lexsort((ids, -scores[top]))            # cosine desc, then id (as ExactSearch)
        return ids[best].tolist(), scores[top][best].astype(np.float64)

    def describe(self) -> dict:
        return {"method": self.method, "clusters": int(len(self.centroids)), "rows": self.rows}


def open_probe(folder: Path, rows: int, n: int, dim: int) -> ClusterProbe:
    """The ClusterProbe of a model folder scoring `rows` titles a query (its manifest's
    search entry; files mmapped but the small centroids and bounds); ValueError when the
    files do not fit the catalog."""
    centroids, order, bounds, ordered = (np.load(folder / name, mmap_mode=mode, allow_pickle=False)
                                         for name, mode in zip(PROBE_FILES, (None, "r", None, "r")))
    why = check_clusters(centroids, order, bounds, n, dim)
    if why is None and (ordered.shape != (n, dim) or ordered.dtype != np.float32):
        why = f"cluster_vectors {ordered.shape} {ordered.dtype} != ({n}, {dim}) float32"
    if why:
        raise ValueError(why)
    return ClusterProbe(ordered, centroids, order, bounds, int(rows))


def check_clusters(centroids: np.ndarray, order: np.ndarray, bounds: np.ndarray,
                   n: int, dim: int) -> str | None:
    """Why stored clusters do not fit a catalog of n rows of `dim`, or None when they do
    (shapes and dtypes, bounds from 0 to n ascending; order a permutation is checked on a
    sample: a full check would read all of order.npy at load)."""
    c = len(centroids)
    if centroids.ndim != 2 or centroids.shape[1] != dim or centroids.dtype != np.float32:
        return f"centroids {centroids.shape} {centroids.dtype} != (C, {dim}) float32"
    if order.shape != (n,) or order.dtype != np.int32:
        return f"order {order.shape} {order.dtype} != ({n},) int32"
    if bounds.shape != (c + 1,) or bounds.dtype != np.int32:
        return f"bounds {bounds.shape} {bounds.dtype} != ({c + 1},) int32"
    b = np.asarray(bounds)
    if b[0] != 0 or b[-1] != n or np.any(np.diff(b) < 0):
        return "bounds do not run from 0 to the catalog size in ascending order"
    sample = np.asarray(order[:: max(1, n // 4096)])
    if sample.min() < 0 or sample.max() >= n:
        return "order holds ids outside the catalog"
    return None


def check_search(search, vectors: np.ndarray, items: list[int]) -> str | None:
    """Content check of a loaded search (load.py's self-test): for the given catalog items,
    the cluster-ordered copy holds their vectors where order says, and a search for an
    item's vector finds a row at cosine 1 (itself, or an identical title). An exact search
    reads vectors.npy itself, which the self-test checks already: nothing more to check (and
    nothing to spend on a query command's model load)."""
    if not isinstance(search, ClusterProbe):
        return None
    position = np.asarray(items, dtype=np.int64)          # sampled positions of the order
    rows = np.asarray(search.order[position], dtype=np.int64)
    if not np.allclose(np.asarray(search.ordered[position]), np.asarray(vectors[rows]), atol=1e-6):
        return "cluster_vectors.npy does not hold vectors.npy in cluster order (another model's files?)"
    for i in items:
        v = np.asarray(vectors[i], dtype=np.float32)
        if np.linalg.norm(v) > 0:
            _, cos = search(v, 1)
            if not len(cos) or cos[0] < 1 - 1e-4:
                return f"the {search.method} search does not find item {i}"
    return None
