"""Annoy index over unit title vectors (angular metric; cosine = 1 - d^2 / 2).

    build_index(vectors, cfg, path)        # seeded build, written to `path`
    idx = open_index(path, dim)            # memory-mapped, read-only
    ids, cos = query_vector(idx, v, k)
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
