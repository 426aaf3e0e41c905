"""Build time: the Annoy forest and the neighbour table of a model's catalog vectors (the
serve side is index.py). Importing it loads neither torch nor numba (bundle does): the
clustered table (clustered.py) is imported when a catalog needs one.

    build_index(vectors, cfg, path)              # seeded Annoy build, written to `path`
    ids, cos, info = neighbour_table(vectors, cfg)   # exact (model.top_k), or clustered past
                                                     # cfg.neighbours_max_shows titles
    recall = sampled_recall(vectors, ids)        # of a clustered table, against exact search
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from epgembed.config import IndexConfig
from epgembed.index.serve import METRIC
from epgembed.model.vectors import top_k


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


def sampled_recall(vectors: np.ndarray, ids: np.ndarray, k: int = 10, samples: int = 200,
                   seed: int = 0) -> float:
    """Share of the true k nearest other rows (exact search, `top_k`) that a neighbour table
    holds in its first k other entries, over `samples` seeded rows."""
    n = len(vectors)
    rows = np.random.default_rng(seed).choice(n, size=min(samples, n), replace=False)
    truth, _ = top_k(vectors, k, rows=rows, skip_self=True)
    found = sum(len(set(t.tolist()) & set(row[row != r][:k].tolist()))
                for r, t, row in zip(rows, truth, ids[rows]))
    return float(found / max(1, truth.size))


def neighbour_table(vectors: np.ndarray, cfg: IndexConfig) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """(ids, cosines, description) of the neighbour table `cfg` asks for, or None: exact up to
    `neighbours_max_shows` titles, clustered beyond (when `neighbours_probe` > 0)."""
    if not cfg.neighbours:
        return None
    if len(vectors) <= cfg.neighbours_max_shows:
        ids, scores = top_k(vectors, cfg.neighbours, threads=cfg.neighbours_threads)
        return ids, scores, {"method": "exact", "recall_at_10": 1.0}
    if cfg.neighbours_probe <= 0:
        return None
    from epgembed.index.clustered import clustered_neighbours     # torch and the compiled merge load here
    ids, scores = clustered_neighbours(vectors, cfg.neighbours, cfg.neighbours_probe, cfg.seed,
                                       threads=cfg.neighbours_threads)
    return ids, scores, {"method": "clustered", "probe": cfg.neighbours_probe,
                         "recall_at_10": round(sampled_recall(vectors, ids), 4)}
