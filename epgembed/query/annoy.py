"""The Annoy index at serve time: open a built index, ask it for neighbours (numpy + Annoy
only; the build side is epgembed/build/index/build.py).

    idx = open_index(path, dim)            # memory-mapped, read-only
    ids, cos = query_vector(idx, v, k)     # a vector's nearest items
    ids, cos = query_item(idx, i, k)       # an item's nearest items (itself included)

Unit title vectors, angular metric: cosine = 1 - d^2 / 2.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from epgembed.artifact.manifest import METRIC


def angular_to_cosine(d: np.ndarray | float) -> np.ndarray | float:
    """Annoy's angular distance d = sqrt(2 - 2 cos) -> cos."""
    return 1.0 - np.square(d) / 2.0


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
