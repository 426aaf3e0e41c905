"""Annoy index over unit title vectors (angular metric; cosine = 1 - d^2 / 2).

    build_index(vectors, cfg, path)        # seeded build, written to `path`
    idx = open_index(path, dim)            # memory-mapped, read-only
    ids, cos = query_vector(idx, v, k)
    ids, cos = exact_neighbours(vectors, k)   # [S, k] exact table (each title's own row included)
"""
from __future__ import annotations

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


def exact_neighbours(vectors: np.ndarray, k: int, block: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """The k most cosine-similar rows of every row of unit `vectors`, best first, by exact
    search (one [block, S] matmul and top-k per block of rows; the row itself included, so
    a row is answered the way Annoy answers an item query): ids [S, k'] int32 and cosines
    [S, k'] float32, k' = min(k, S). Time grows with S^2, memory with block * S.
    (torch for its threaded top-k, ~5x numpy's argpartition; imported here, at build time
    only: the service reads the table and never loads torch.)"""
    import torch
    table = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    n = len(table)
    k = min(k, n)
    ids = np.empty((n, k), dtype=np.int32)
    scores = np.empty((n, k), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, n, block):
            top = torch.topk(table[start: start + block] @ table.T, k, dim=1)
            ids[start: start + block] = top.indices.numpy()
            scores[start: start + block] = top.values.numpy()
    return ids, scores
