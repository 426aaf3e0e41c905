"""Build time: the Annoy forest and the neighbour table of a model's catalog vectors (the
serve side is epgembed/query/annoy.py and probe.py). Importing it loads neither torch nor
numba: the clustered table (clustered.py) is imported when a catalog needs one.

    build_index(vectors, cfg, path)              # seeded Annoy build, written to `path`
    ids, cos, info = neighbour_table(vectors, cfg)   # exact (model.top_k), or clustered past
                                                     # cfg.neighbours_max_shows titles
    recall = sampled_recall(vectors, ids)        # of a clustered table, against exact search
    clusters = search_clusters(vectors, cfg)     # k-means for the probe search, or None
    files, info = write_search(folder, vectors, clusters, cfg)   # its files (PROBE_FILES)
    files, info = write_indexes(folder, vectors, cfg)    # all of them: a model's IndexWriter
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from epgembed.artifact.folder import IndexInfo
from epgembed.artifact.manifest import PROBE_FILES, NeighbourTableInfo, SearchInfo
from epgembed.artifact.parts import NeighbourTable
from epgembed.config import IndexConfig
from epgembed.query.probe import ClusterProbe, search_method
from epgembed.query.annoy import METRIC
from epgembed.query.vectors import top_k


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


def neighbour_table(vectors: np.ndarray, cfg: IndexConfig,
                    clusters: tuple | None = None) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """(ids, cosines, description) of the neighbour table `cfg` asks for, or None: exact up to
    `neighbours_max_shows` titles, clustered beyond (when `neighbours_probe` > 0; over
    `clusters` when given: those of search_clusters, the same seed)."""
    if not cfg.neighbours:
        return None
    if len(vectors) <= cfg.neighbours_max_shows:
        ids, scores = top_k(vectors, cfg.neighbours, threads=cfg.neighbours_threads)
        return ids, scores, {"method": "exact", "recall_at_10": 1.0}
    if cfg.neighbours_probe <= 0:
        return None
    from epgembed.build.index.clustered import clustered_neighbours, n_clusters   # torch, the compiled merge
    if clusters is not None and len(clusters[0]) != n_clusters(len(vectors)):
        clusters = None                                          # the search's own, finer clusters
    ids, scores = clustered_neighbours(vectors, cfg.neighbours, cfg.neighbours_probe, cfg.seed,
                                       threads=cfg.neighbours_threads, clusters=clusters)
    return ids, scores, {"method": "clustered", "probe": cfg.neighbours_probe,
                         "recall_at_10": round(sampled_recall(vectors, ids), 4)}


def search_clusters(vectors: np.ndarray, cfg: IndexConfig) -> tuple | None:
    """The spherical k-means (centroids, order, bounds) of the probe search, or None when
    the catalog is searched exactly or with Annoy. Seeded; with search_clusters = 4 they
    are the clustered table's clusters (the table then reuses them)."""
    if search_method(len(vectors), cfg) != "probe":
        return None
    from epgembed.build.index.clustered import spherical_kmeans   # torch loads here
    return spherical_kmeans(vectors, cfg.seed, threads=cfg.neighbours_threads,
                            lists=max(1, int(cfg.search_clusters * np.sqrt(len(vectors)))))


def write_search(folder: Path, vectors: np.ndarray, clusters: tuple | None, cfg: IndexConfig,
                 chunk: int = 65536) -> tuple[list[str], dict]:
    """Write the probe search's files into `folder` (none for "exact" / "annoy"); returns
    (file names, the manifest's "search" entry). cluster_vectors.npy = vectors[order] is
    written a chunk of rows at a time (no second [S, D] array in memory)."""
    method = search_method(len(vectors), cfg)
    if method != "probe" or clusters is None:
        return [], {"method": method}
    centroids, order, bounds = clusters
    np.save(folder / "centroids.npy", np.ascontiguousarray(centroids, dtype=np.float32))
    np.save(folder / "order.npy", np.ascontiguousarray(order, dtype=np.int32))
    np.save(folder / "bounds.npy", np.ascontiguousarray(bounds, dtype=np.int32))
    with open(folder / "cluster_vectors.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                                                 "fortran_order": False, "shape": vectors.shape})
        for lo in range(0, len(order), chunk):
            f.write(np.ascontiguousarray(vectors[order[lo: lo + chunk]], dtype=np.float32).tobytes())
    search = ClusterProbe(None, centroids, order, bounds, cfg.search_rows)
    return list(PROBE_FILES), {**search.describe(), "recall_at_10": round(probe_recall(vectors, search), 4)}


def probe_recall(vectors: np.ndarray, search, k: int = 10, samples: int = 200, seed: int = 0) -> float:
    """recall@k of a ClusterProbe for catalog rows taken as queries, each row left out of
    its own truth (held out): the share of the true k nearest other rows (exact search) in
    the clusters the probe scores. Members are scored exactly, so that is the probe's
    recall, counted from the cluster memberships alone (cluster_vectors.npy is not read
    back: its pages would add to the build's resident memory)."""
    sizes = np.diff(search.bounds)
    owner = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)[np.argsort(search.order)]
    n = len(vectors)
    rows = np.random.default_rng(seed).choice(n, size=min(samples, n), replace=False)
    truth, _ = top_k(vectors, k, rows=rows, skip_self=True)
    found = sum(np.isin(owner[t], search.clusters_for(np.asarray(vectors[r], np.float32), k + 1)).sum()
                for r, t in zip(rows.tolist(), truth))
    return float(found / max(1, truth.size))


def write_indexes(folder: Path, vectors: np.ndarray, cfg: IndexConfig) -> tuple[list[str], IndexInfo]:
    """Every index file of a model of `vectors` into `folder`: the probe search's files, the
    neighbour table and the Annoy forest, one after the other (the table and Annoy's build
    never share memory). Returns (file names, what the manifest says of them): the
    IndexWriter of artifact/folder.py write_folder."""
    t0 = time.perf_counter()
    clusters = search_clusters(vectors, cfg)
    files, search_info = write_search(folder, vectors, clusters, cfg)
    search_info["build_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    table = neighbour_table(vectors, cfg, clusters)   # over them when they are the table's own
    del clusters
    n_neighbours, table_info = 0, None
    if table is not None:
        files += NeighbourTable(table[0], table[1]).save(folder)
        n_neighbours = table[0].shape[1]
        table_info = NeighbourTableInfo(**table[2], build_s=round(time.perf_counter() - t0, 2))
    del table
    build_index(vectors, cfg, folder / "index.ann")
    return files + ["index.ann"], IndexInfo(cfg.n_trees, n_neighbours, table_info, SearchInfo(**search_info))
