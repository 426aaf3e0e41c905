"""The index files of a model folder with titles appended (a refresh: nightly/refresh.py;
artifact/extend.py writes the rest of the folder). Only what the new titles change is
computed again:

- the neighbour table: the new titles' rows (exact: each against every title) are appended,
  and each old row that a new title enters (a cosine above the row's last) is merged with
  it; every other old row keeps its bytes. A table narrower than IndexConfig.neighbours (a
  catalog smaller than that) is computed again whole: it widens.
- the search for vectors that are no catalog row: nothing below search_exact_max_shows
  titles (exact: it reads vectors.npy); above, the cluster probe: each new title joins the
  cluster of its nearest centroid (the centroids stay), order, bounds and the
  cluster-ordered vectors are written again; a catalog that crosses the threshold gets its
  clusters (write_search).
- the Annoy forest, built again over every vector: Annoy cannot add an item to a built
  index, and a rebuild is cheap at the sizes a refresh is for (docs/DEPLOY.md, "Refreshes":
  0.2 s at the daily feed's 12k titles, about 6 s at 100k; 250 s at 1M, where only the
  self-test and `index.search = "annoy"` read it).

    files, info = extend_indexes(folder, base=old_folder, vectors=all_vectors, cfg=cfg.index)
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from epgembed.artifact.folder import IndexInfo, ModelFolder
from epgembed.artifact.manifest import PROBE_FILES, NeighbourTableInfo, SearchInfo
from epgembed.artifact.parts import NeighbourTable, extend_npy
from epgembed.build.index.build import build_index, neighbour_table, search_clusters, write_search
from epgembed.config import IndexConfig
from epgembed.fsutil import clone_file
from epgembed.query.probe import search_method
from epgembed.query.vectors import SCORE_FLOATS, top_k


def changed_rows(vectors: np.ndarray, ids: np.ndarray, scores: np.ndarray, n_old: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(old ids whose rows the new titles (ids n_old..) enter, those rows [c, K] and their
    cosines): a new title enters a row when its cosine is above the row's last; the row is
    then the best K of both, by cosine, ties to the lower id (as top_k orders them)."""
    fresh = np.asarray(vectors[n_old:], dtype=np.float32)
    new_ids = np.arange(n_old, len(vectors), dtype=np.int32)
    k, at, rows, cos = ids.shape[1], [], [], []
    block = max(1, SCORE_FLOATS // max(1, len(fresh)))
    for lo in range(0, n_old, block):
        s = np.asarray(vectors[lo: min(n_old, lo + block)], dtype=np.float32) @ fresh.T
        enter = np.flatnonzero((s > np.asarray(scores[lo: lo + len(s), -1])[:, None]).any(axis=1))
        if not len(enter):
            continue
        both_ids = np.concatenate([np.asarray(ids[lo + enter]), np.broadcast_to(new_ids, (len(enter), len(new_ids)))], 1)
        both_cos = np.concatenate([np.asarray(scores[lo + enter]), s[enter]], 1)
        best = np.lexsort((both_ids, -both_cos), axis=1)[:, :k]
        at.append(lo + enter)
        rows.append(np.take_along_axis(both_ids, best, 1))
        cos.append(np.take_along_axis(both_cos, best, 1))
    if not at:
        return np.zeros(0, np.int64), np.zeros((0, k), np.int32), np.zeros((0, k), np.float32)
    return np.concatenate(at), np.concatenate(rows), np.concatenate(cos)


def extend_table(folder: Path, base: ModelFolder, vectors: np.ndarray, cfg: IndexConfig,
                 stats: dict) -> tuple[list[str], int, NeighbourTableInfo | None]:
    """The neighbour table of the extended catalog into `folder`: (files, columns, info)."""
    t0 = time.perf_counter()
    old, info = base.neighbours, base.manifest.neighbour_table
    if old is None:
        return [], 0, None
    n_old, width = len(base.catalog), old.ids.shape[1]
    if width < min(len(vectors), cfg.neighbours):        # a small catalog: the table widens
        table = neighbour_table(vectors, cfg)
        files = NeighbourTable(table[0], table[1]).save(folder)
        stats["written"].update({f: (folder / f).stat().st_size for f in files})
        return files, table[0].shape[1], NeighbourTableInfo(**table[2], build_s=round(time.perf_counter() - t0, 2))
    new_ids, new_cos = top_k(vectors, width, rows=np.arange(n_old, len(vectors)), threads=cfg.neighbours_threads)
    at, rows, cos = changed_rows(vectors, old.ids, old.scores, n_old)
    files = list(NeighbourTable.files())
    for name, new, changed in zip(files, (new_ids, new_cos), (rows, cos)):
        stats["written"][name] = extend_npy(base.path / name, folder / name, new, at, changed)
    stats["rows_changed"] = int(len(at))
    return files, width, NeighbourTableInfo(method=info.method, recall_at_10=info.recall_at_10,
                                            build_s=round(time.perf_counter() - t0, 2), probe=info.probe)


def extend_probe(folder: Path, base: ModelFolder, vectors: np.ndarray, cfg: IndexConfig,
                 stats: dict) -> tuple[list[str], dict]:
    """The search files of the extended catalog into `folder` (none for "exact" and
    "annoy"); returns (files, the manifest's "search" entry)."""
    t0 = time.perf_counter()
    if search_method(len(vectors), cfg) != "probe":
        return [], {"method": search_method(len(vectors), cfg)}
    if base.manifest.search.method != "probe":              # crossed the exact search's limit
        files, entry = write_search(folder, vectors, search_clusters(vectors, cfg), cfg)
        stats["written"].update({f: (folder / f).stat().st_size for f in files})
        return files, {**entry, "build_s": round(time.perf_counter() - t0, 2)}
    centroids_file, order_file, bounds_file, ordered_file = PROBE_FILES
    centroids = np.load(base.path / centroids_file, allow_pickle=False)
    order = np.load(base.path / order_file, allow_pickle=False)
    bounds = np.load(base.path / bounds_file, allow_pickle=False).astype(np.int64)
    n_old = len(order)
    fresh = np.asarray(vectors[n_old:], dtype=np.float32)
    home = np.argmax(fresh @ centroids.T, axis=1)
    joined = np.bincount(home, minlength=len(centroids))
    # every old member moves down by the new titles of the clusters before its own; the new
    # titles of a cluster follow its old members, in id order
    new_bounds = bounds + np.concatenate(([0], np.cumsum(joined)))
    shift = np.repeat(new_bounds[:-1] - bounds[:-1], np.diff(bounds))
    by_cluster = np.argsort(home, kind="stable")
    rank = np.arange(len(home)) - np.repeat(np.cumsum(joined) - joined, joined)
    where = np.empty(len(home), np.int64)
    where[by_cluster] = new_bounds[home[by_cluster] + 1] - joined[home[by_cluster]] + rank
    new_order = np.empty(len(vectors), np.int32)
    new_order[np.arange(n_old) + shift] = order
    new_order[where] = np.arange(n_old, len(vectors), dtype=np.int32)
    shared = clone_file(base.path / centroids_file, folder / centroids_file)
    np.save(folder / order_file, new_order)
    np.save(folder / bounds_file, new_bounds.astype(np.int32))
    _write_ordered(folder / ordered_file, np.load(base.path / ordered_file, mmap_mode="r"),
                   fresh[by_cluster], where[by_cluster])
    stats["written"].update({f: 0 if f == centroids_file and shared else (folder / f).stat().st_size
                             for f in PROBE_FILES})
    entry = base.manifest.search
    return list(PROBE_FILES), {"method": "probe", "clusters": entry.clusters, "rows": entry.rows,
                               "recall_at_10": entry.recall_at_10, "build_s": round(time.perf_counter() - t0, 2)}


def _write_ordered(path: Path, old: np.ndarray, fresh: np.ndarray, where: np.ndarray) -> None:
    """cluster_vectors.npy of the extended catalog: the old cluster-ordered rows with the
    new rows `fresh` put at positions `where` (ascending), in one sequential write."""
    n, dim = len(old) + len(fresh), old.shape[1]
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                                                 "fortran_order": False, "shape": (n, dim)})
        done = 0                                           # old rows written
        for j, pos in enumerate(where.tolist()):
            upto = pos - j                                 # old rows before this new one
            f.write(np.ascontiguousarray(old[done: upto]).tobytes())
            f.write(fresh[j].tobytes())
            done = upto
        f.write(np.ascontiguousarray(old[done:]).tobytes())


def extend_indexes(folder: Path, base: ModelFolder, vectors: np.ndarray, cfg: IndexConfig,
                   stats: dict | None = None) -> tuple[list[str], IndexInfo]:
    """Every index file of the base folder's catalog with the titles of `vectors`' last rows
    appended into `folder` (an IndexWriter of artifact/extend.py extend_folder, given `base`,
    `vectors` (all of them, old rows first) and `cfg`). `stats` receives "written" (the
    bytes of the blocks written per file), "rows_changed" (the old rows of the neighbour
    table a new title entered) and "seconds" (per index)."""
    stats = {} if stats is None else stats
    stats.setdefault("written", {})
    seconds = stats.setdefault("seconds", {})
    t0 = time.perf_counter()
    files, search = extend_probe(folder, base, vectors, cfg, stats)
    t1 = time.perf_counter()
    more, width, table = extend_table(folder, base, vectors, cfg, stats)
    t2 = time.perf_counter()
    build_index(vectors, cfg, folder / "index.ann")
    seconds.update(search=round(t1 - t0, 3), neighbour_table=round(t2 - t1, 3),
                   annoy=round(time.perf_counter() - t2, 3))
    stats["written"]["index.ann"] = (folder / "index.ann").stat().st_size
    return files + more + ["index.ann"], IndexInfo(cfg.n_trees, width, table, SearchInfo(**search))
