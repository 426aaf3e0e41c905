"""Annoy index over unit title vectors (angular metric; cosine = 1 - d^2 / 2).

    build_index(vectors, cfg, path)        # seeded build, written to `path`
    idx = open_index(path, dim)            # memory-mapped, read-only
    ids, cos = query_vector(idx, v, k)
    ids, cos = exact_neighbours(vectors, k)   # [S, k] exact table (each title's own row included)
    ids, cos = neighbour_table(vectors, cfg)  # exact, or clustered past cfg.neighbours_max_shows
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from .config import IndexConfig

METRIC = "angular"


def angular_to_cosine(d: np.ndarray | float) -> np.ndarray | float:
    """Annoy's angular distance d = sqrt(2 - 2 cos) -> cos."""
    return 1.0 - np.square(d) / 2.0


def build_index(vectors: np.ndarray, cfg: IndexConfig, path: Path, n_jobs: int = 1) -> None:
    """Write an Annoy index of `vectors` ([n, dim], row i = item i) to `path`."""
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError("need a non-empty [n, dim] array of vectors")
    index = AnnoyIndex(vectors.shape[1], METRIC)
    index.set_seed(cfg.seed)
    for i, v in enumerate(np.asarray(vectors, dtype=np.float32)):
        index.add_item(i, v)
    index.build(cfg.n_trees, n_jobs=n_jobs)
    index.save(str(path))
    index.unload()


def open_index(path: Path, dim: int) -> AnnoyIndex:
    index = AnnoyIndex(dim, METRIC)
    index.load(str(path))  # mmap; raises OSError on a missing or unreadable file
    return index


def query_vector(index: AnnoyIndex, vector: np.ndarray, k: int,
                 search_k: int = -1) -> tuple[list[int], np.ndarray]:
    ids, dist = index.get_nns_by_vector(np.asarray(vector, dtype=np.float32).tolist(), k,
                                        search_k=search_k, include_distances=True)
    return ids, angular_to_cosine(np.asarray(dist, dtype=np.float64))


def query_item(index: AnnoyIndex, item: int, k: int,
               search_k: int = -1) -> tuple[list[int], np.ndarray]:
    ids, dist = index.get_nns_by_item(item, k, search_k=search_k, include_distances=True)
    return ids, angular_to_cosine(np.asarray(dist, dtype=np.float64))


def exact_neighbours(vectors: np.ndarray, k: int, block: int = 512,
                     rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k most cosine-similar rows of every row of unit `vectors` (or of the given
    `rows` only), best first, by exact search (one [block, S] matmul and top-k per block of
    rows; the row itself included, so a row is answered the way Annoy answers an item
    query): ids [R, k'] int32 and cosines [R, k'] float32, k' = min(k, S). Time grows with
    S * R, memory with block * S.
    (torch for its threaded top-k, ~5x numpy's argpartition; imported here, at build time
    only: the service reads the table and never loads torch.)"""
    import torch
    table = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    rows = torch.arange(len(table)) if rows is None else torch.from_numpy(np.asarray(rows))
    k = min(k, len(table))
    ids = np.empty((len(rows), k), dtype=np.int32)
    scores = np.empty((len(rows), k), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(rows), block):
            top = torch.topk(table[rows[start: start + block]] @ table.T, k, dim=1)
            ids[start: start + block] = top.indices.numpy()
            scores[start: start + block] = top.values.numpy()
    return ids, scores


def clustered_neighbours(vectors: np.ndarray, k: int, probe: int, seed: int = 0, iters: int = 6,
                         block: int | None = None, chunk: int = 16384, train_per_list: int = 64,
                         threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """`exact_neighbours` for catalogs too large for an all-pairs search (an inverted-file
    search, as IVF indexes do): the unit rows are grouped into 4 * sqrt(S) clusters
    (spherical k-means trained on a seeded sample of `train_per_list` rows per cluster,
    then every row assigned once), and each row is compared exactly with every row of the
    `probe` clusters whose centres are nearest the row itself. Rows are taken a chunk at a
    time in cluster order; per probed cluster, one matmul scores the chunk's rows that probe
    it, and a compiled merge keeps each row's top k. Memory beyond the [S, k] result: a
    few hundred MB per thread at most (no copy of the vectors). Cosines are exact; a true
    neighbour in a cluster not probed is missed (recall: `sampled_recall`). Time ~ S *
    probe * sqrt(S); `threads` scan chunks in parallel (torch matmuls and the merge release
    the GIL). Rows whose probed clusters hold fewer than k rows get an exact search."""
    import torch
    from .kernels import merge_top_k, sort_top_k
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    x = torch.from_numpy(arr if arr.flags.writeable else arr.copy())   # shared, not copied, when it can be
    n, dim = x.shape
    k = min(k, n)
    lists = max(1, min(n, int(4 * math.sqrt(n))))
    probe = max(1, min(probe, lists))
    # rows per [block, lists] score matrix: 64 MiB, above glibc's largest mmap threshold
    # (32 MiB), so each is given back when freed instead of piling up in the threads' arenas
    block = block or max(1024, (1 << 24) // lists)
    gen = torch.Generator().manual_seed(seed)

    pool = None
    if threads > 1:
        from concurrent.futures import ThreadPoolExecutor
        pool = ThreadPoolExecutor(threads)

    def each(fn, items) -> list:
        return list(pool.map(fn, items) if pool else map(fn, items))

    def assign(rows: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return torch.cat(each(lambda s: (rows[s: s + block] @ c.T).max(1).indices,
                              range(0, len(rows), block)))

    ids = np.full((n, k), -1, dtype=np.int32)
    best = np.full((n, k), -np.inf, dtype=np.float32)
    try:
        with torch.no_grad():
            train = x[torch.randperm(n, generator=gen)[: train_per_list * lists]]
            centres = train[torch.randperm(len(train), generator=gen)[:lists]].clone()
            for _ in range(iters):
                owner = assign(train, centres)
                sums = torch.zeros(lists, dim).index_add_(0, owner, train)
                empty = torch.bincount(owner, minlength=lists) == 0
                sums[empty] = train[torch.randint(0, len(train), (int(empty.sum()),), generator=gen)]
                centres = sums / sums.norm(dim=1, keepdim=True).clamp_min(1e-12)
            del train
            owner = assign(x, centres)
            order = torch.argsort(owner, stable=True)
            bounds = [0] + torch.cumsum(torch.bincount(owner, minlength=lists), 0).tolist()
            del owner
            ids[:, 0] = np.arange(n)                 # each row first in its own list (as exact)
            order_np = order.numpy().astype(np.int32)

            def scan(lo: int) -> None:               # rows lo..lo+chunk in cluster order
                q = x[order[lo: lo + chunk]]
                top = torch.cat([torch.topk(q[s: s + block] @ centres.T, probe, dim=1).indices.int()
                                 for s in range(0, len(q), block)])
                # nearest clusters first: the lists fill with good rows early, so fewer of
                # the later candidates pass a row's current worst score
                for t0, t1 in zip((0, 1, 8), (1, 8, probe)):
                    if t0 < probe:
                        merge_tier(lo, q, top[:, t0: min(t1, probe)])

            def merge_tier(lo: int, q: torch.Tensor, top: torch.Tensor) -> None:
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
                    scores = (q[mine] @ x[order[bounds[c]: bounds[c + 1]]].T).numpy()
                    merge_top_k(scores, order_np[lo + mine.numpy()], order_np[bounds[c]: bounds[c + 1]],
                                ids, best)

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
        ids[short], best[short] = exact_neighbours(arr, k, block=64, rows=short)
    return ids, best


def sampled_recall(vectors: np.ndarray, ids: np.ndarray, k: int = 10, samples: int = 200,
                   seed: int = 0, block: int = 8) -> float:
    """Share of the true k nearest other rows (exact search) that a neighbour table holds in
    its first k other entries, over `samples` seeded rows (exact scores `block` rows at a
    time: [block, S] temporaries, not [samples, S])."""
    n = len(vectors)
    rows = np.random.default_rng(seed).choice(n, size=min(samples, n), replace=False)
    found = total = 0
    for lo in range(0, len(rows), block):
        q = rows[lo: lo + block]
        exact = np.asarray(vectors[q], dtype=np.float32) @ np.asarray(vectors, dtype=np.float32).T
        exact[np.arange(len(q)), q] = -np.inf
        exact *= -1
        truth = np.argpartition(exact, min(k, n - 1) - 1, axis=1)[:, :k]
        for r, t, row in zip(q, truth, ids[q]):
            found += len(set(t.tolist()) & set(row[row != r][:k].tolist()))
            total += len(t)
    return float(found / max(1, total))


def neighbour_table(vectors: np.ndarray, cfg: IndexConfig) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """(ids, cosines, description) of the neighbour table `cfg` asks for, or None: exact up to
    `neighbours_max_shows` titles, clustered beyond (when `neighbours_probe` > 0)."""
    if not cfg.neighbours:
        return None
    if len(vectors) <= cfg.neighbours_max_shows:
        ids, scores = exact_neighbours(vectors, cfg.neighbours)
        return ids, scores, {"method": "exact", "recall_at_10": 1.0}
    if cfg.neighbours_probe <= 0:
        return None
    ids, scores = clustered_neighbours(vectors, cfg.neighbours, cfg.neighbours_probe, cfg.seed,
                                       threads=cfg.neighbours_threads)
    return ids, scores, {"method": "clustered", "probe": cfg.neighbours_probe,
                         "recall_at_10": round(sampled_recall(vectors, ids), 4)}
