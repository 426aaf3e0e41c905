"""The neighbour table of catalogs too large for an all-pairs search: an inverted-file
search (as IVF indexes do) in torch, with the compiled top-k merge of kernels.py.

    ids, cos = clustered_neighbours(vectors, k, probe)   # as model.top_k(vectors, k), approximately
    centroids, order, bounds = spherical_kmeans(vectors)   # the clusters alone (numpy, CSR)

The clusters are kept in the model folder for the probe search of query vectors
(probe.py); clustered_neighbours(..., clusters=spherical_kmeans(...)) reuses them.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from epgembed.build.model.kernels import merge_top_k, sort_top_k
from epgembed.query.vectors import top_k


def clustered_neighbours(vectors: np.ndarray, k: int, probe: int, seed: int = 0, iters: int = 6,
                         block: int | None = None, chunk: int = 16384, train_per_list: int = 64,
                         threads: int = 1, clusters: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The neighbour table (as `top_k` gives it) of unit rows grouped into 4 * sqrt(S)
    clusters (`_clusters`): each row is compared exactly with every row of the `probe`
    clusters whose centres are nearest the row itself. Rows are taken a chunk at a time in
    cluster order; per probed cluster, one matmul scores the chunk's rows that probe it, and
    a compiled merge keeps each row's top k. Memory beyond the [S, k] result: a few hundred
    MB per thread at most (no copy of the vectors). Cosines are exact; a true neighbour in a
    cluster not probed is missed (recall: `build.sampled_recall`). Time ~ S * probe *
    sqrt(S); `threads` scan chunks in parallel (torch matmuls and the merge release the
    GIL). Rows whose probed clusters hold fewer than k rows get an exact search. `clusters`:
    (centroids, order, bounds) of `spherical_kmeans` with the same seed, computed once."""
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    x = torch.from_numpy(arr if arr.flags.writeable else arr.copy())   # shared, not copied, when it can be
    n = len(x)
    k = min(k, n)
    lists = n_clusters(n) if clusters is None else len(clusters[0])
    probe = max(1, min(probe, lists))
    block = block or _block(lists)
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    each = _each(pool)
    ids = np.full((n, k), -1, dtype=np.int32)
    best = np.full((n, k), -np.inf, dtype=np.float32)
    try:
        with torch.no_grad():
            if clusters is None:
                centres, order, bounds = _clusters(x, lists, iters, train_per_list,
                                                   torch.Generator().manual_seed(seed), _assign(each, block))
            else:
                centres, order = torch.from_numpy(clusters[0]), torch.from_numpy(clusters[1].astype(np.int64))
                bounds = np.asarray(clusters[2]).tolist()
            ids[:, 0] = np.arange(n)                 # each row first in its own list (as exact)
            scan = _ClusterScan(x, centres, order, bounds, probe, block, chunk, ids, best)
            # chunks own disjoint rows, and each row's merges run in one fixed order: the
            # table is the same for any number of threads
            each(scan, range(0, n, chunk))
    finally:
        if pool:
            pool.shutdown()
    sort_top_k(ids, best)
    best[:, 0] = np.einsum("ij,ij->i", arr, arr)   # no [S, dim] temporary
    short = np.flatnonzero((ids < 0).any(1))     # fewer than k rows in the probed clusters
    if len(short):
        ids[short], best[short] = top_k(arr, k, rows=short)
    return ids, best


def n_clusters(n: int) -> int:
    """4 * sqrt(S) clusters (4,000 at 1M titles), at most one per row."""
    return max(1, min(n, int(4 * math.sqrt(n))))


def _block(lists: int) -> int:
    # rows per [block, lists] score matrix: 64 MiB, above glibc's largest mmap threshold
    # (32 MiB), so each is given back when freed instead of piling up in the threads' arenas
    return max(1024, (1 << 24) // lists)


def _each(pool):
    def each(fn, items) -> list:
        return list(pool.map(fn, items) if pool else map(fn, items))
    return each


def _assign(each, block: int):
    def assign(rows: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return torch.cat(each(lambda s: (rows[s: s + block] @ c.T).max(1).indices,
                              range(0, len(rows), block)))
    return assign


def spherical_kmeans(vectors: np.ndarray, seed: int = 0, iters: int = 6, train_per_list: int = 64,
                     threads: int = 1, lists: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The clusters clustered_neighbours uses (same seed, same clusters; `lists` clusters
    instead of n_clusters(S) when given), as numpy:
    (centroids [C, D] float32 unit rows, order [S] int32: the rows cluster by cluster,
    bounds [C + 1] int32: cluster c is order[bounds[c]:bounds[c + 1]])."""
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    x = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    lists = min(len(x), lists or n_clusters(len(x)))
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        with torch.no_grad():
            centres, order, bounds = _clusters(x, lists, iters, train_per_list,
                                               torch.Generator().manual_seed(seed),
                                               _assign(_each(pool), _block(lists)))
    finally:
        if pool:
            pool.shutdown()
    return (centres.numpy().astype(np.float32), order.numpy().astype(np.int32),
            np.asarray(bounds, dtype=np.int32))


class _ClusterScan:
    """scan(lo): rows lo..lo+chunk of the cluster order, each scored exactly against every
    row of its `probe` nearest clusters, merged into its top list (ids / best, in place)."""

    def __init__(self, x, centres, order, bounds, probe, block, chunk, ids, best):
        self.x, self.centres, self.order, self.bounds = x, centres, order, bounds
        self.order_np = order.numpy().astype(np.int32)
        self.probe, self.block, self.chunk, self.ids, self.best = probe, block, chunk, ids, best

    def __call__(self, lo: int) -> None:
        q = self.x[self.order[lo: lo + self.chunk]]
        top = torch.cat([torch.topk(q[s: s + self.block] @ self.centres.T, self.probe, dim=1).indices.int()
                         for s in range(0, len(q), self.block)])
        # nearest clusters first: the lists fill with good rows early, so fewer of the
        # later candidates pass a row's current worst score
        for t0, t1 in zip((0, 1, 8), (1, 8, self.probe)):
            if t0 < self.probe:
                self.merge_tier(lo, q, top[:, t0: min(t1, self.probe)])

    def merge_tier(self, lo: int, q, top) -> None:
        width = top.shape[1]
        top = top.reshape(-1)
        by_list = torch.argsort(top, stable=True)
        who = torch.div(by_list, width, rounding_mode="floor")
        probed, counts = torch.unique_consecutive(top[by_list], return_counts=True)
        del top, by_list
        start = 0
        for c, m in zip(probed.tolist(), counts.tolist()):
            mine = who[start: start + m]
            start += m
            members = slice(self.bounds[c], self.bounds[c + 1])
            scores = (q[mine] @ self.x[self.order[members]].T).numpy()
            merge_top_k(scores, self.order_np[lo + mine.numpy()], self.order_np[members],
                        self.ids, self.best)


def _clusters(x, lists: int, iters: int, train_per_list: int, gen, assign):
    """Spherical k-means of the rows x (torch [S, D]) into `lists` clusters, trained on a
    seeded sample of `train_per_list` rows per cluster, then every row assigned once by
    `assign(rows, centres)`: (centres [lists, D], the rows in cluster order, cluster bounds)."""
    train = x[torch.randperm(len(x), generator=gen)[: train_per_list * lists]]
    centres = train[torch.randperm(len(train), generator=gen)[:lists]].clone()
    for _ in range(iters):
        owner = assign(train, centres)
        sums = torch.zeros(lists, x.shape[1]).index_add_(0, owner, train)
        empty = torch.bincount(owner, minlength=lists) == 0
        sums[empty] = train[torch.randint(0, len(train), (int(empty.sum()),), generator=gen)]
        centres = sums / sums.norm(dim=1, keepdim=True).clamp_min(1e-12)
    del train
    owner = assign(x, centres)
    order = torch.argsort(owner, stable=True)
    bounds = [0] + torch.cumsum(torch.bincount(owner, minlength=lists), 0).tolist()
    return centres, order, bounds
