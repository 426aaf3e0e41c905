"""The model directory: a folder that describes itself, and `load_model` that rebuilds from it.

    MODEL_DIR/
      manifest.json      format version, version id, created, config, counts, feature
                         kinds (shows per guide feature kind), dims, metric, data summary,
                         training summary, quality, file hashes, versions of the libraries
                         that built it (load_model warns on a change)
      tokenizer.json     tokenizer metadata + word list       tokenizer.model  sentencepiece
      embeddings.npy     [V, D] float32 token table (row 0 = PAD = zero)
      token_counts.npy   [V] int64 training frequency of each token
      vectors.npy        [S, D] float32 unit title vector of every show
      center.npy         [D] float32 mean subtracted from catalog and query vectors (or zeros)
      catalog.jsonl      one show per line, ids 0..S-1
      index.ann          Annoy index (angular) over vectors.npy
      neighbours.npy     [S, K] int32 nearest titles of every title, best first, and
      neighbour_scores.npy  [S, K] float32 their cosines (exact search up to
                         IndexConfig.neighbours_max_shows titles, clustered beyond)
      centroids.npy, order.npy, bounds.npy, cluster_vectors.npy   the cluster probe that
                         searches unseen titles in large catalogs (index/probe.py, manifest
                         "search"; absent: exact search up to 50k titles, else Annoy)
      history.json       per-epoch training history

Writes go to a temporary sibling folder that is fsynced and renamed into place, so a
reader never sees a half-written model. No pickles: numpy .npy (allow_pickle=False), JSON.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Callable

import numpy as np

from epgembed.config import IndexConfig
from epgembed.ingest.catalog import Catalog, SerializedCatalog
from epgembed.artifact.libraries import library_versions, warn_library_drift
from epgembed.fsutil import fsync_dir, utc
from epgembed.ingest.dumpfiles import escape_name
from epgembed.index.serve import METRIC, open_index
from epgembed.index.probe import ExactSearch, check_search, open_probe, search_method
from epgembed.model.vectors import top_k
from epgembed.query.related import RelatedModel
from epgembed.text.tokenize import Tokenizer

FORMAT = "epgembed-model"
FORMAT_VERSION = 1
log = logging.getLogger("epgembed.artifact.bundle")


class ModelError(Exception):
    """A model directory that is missing, incomplete, corrupt or inconsistent."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


IndexWriter = Callable[[Path], "tuple[list[str], dict]"]
"""Writes a model's index files into a folder: (their names, their manifest entries); the
build side's is index.build.write_indexes (the bundle writes, reads and verifies only)."""


def save_model(out_dir: Path, *, tokenizer: Tokenizer, catalog: Catalog | SerializedCatalog,
               embeddings: np.ndarray,
               vectors: np.ndarray, token_counts: np.ndarray, config: dict, history: list[dict],
               data: dict, training: dict, indexes: IndexWriter, quality: dict | None = None,
               timings: dict | None = None, center: np.ndarray | None = None) -> dict:
    """Write a complete model directory atomically; returns the manifest. `indexes` writes
    the index files (index.ann among them) into the staging folder, after the model's own.

    `timings`, when given, receives "index_s" (`indexes`) and "write_s" (everything else).
    """
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        files = tokenizer.save(tmp)
        np.save(tmp / "embeddings.npy", np.ascontiguousarray(embeddings, dtype=np.float32))
        np.save(tmp / "token_counts.npy", np.ascontiguousarray(token_counts, dtype=np.int64))
        np.save(tmp / "vectors.npy", np.ascontiguousarray(vectors, dtype=np.float32))
        np.save(tmp / "center.npy", np.zeros(vectors.shape[1], np.float32) if center is None
                else np.ascontiguousarray(center, dtype=np.float32))
        catalog.save(tmp / "catalog.jsonl")
        files += ["embeddings.npy", "token_counts.npy", "vectors.npy", "center.npy", "catalog.jsonl",
                  "history.json"]
        t_index = time.perf_counter()
        more, index_entries = indexes(tmp)
        files += more
        t_index = time.perf_counter() - t_index
        (tmp / "history.json").write_text(json.dumps(history, indent=1, allow_nan=False), encoding="utf-8")
        hashes = {f: {"sha256": sha256_file(tmp / f), "bytes": (tmp / f).stat().st_size} for f in files}
        created = utc()
        content = hashlib.sha256("".join(hashes[f]["sha256"] for f in sorted(hashes)).encode()).hexdigest()
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "version": f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{content[:8]}",
            "created": created, "metric": METRIC, "dim": int(embeddings.shape[1]),
            "vocab_size": int(embeddings.shape[0]), "n_shows": len(catalog),
            **index_entries, "counts": catalog.summary(), "feature_kinds": catalog.feature_kinds(),
            "config": config,
            "data": data, "training": training, "quality": quality or {},
            "libraries": library_versions(), "files": hashes,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False, allow_nan=False),
                                          encoding="utf-8")  # NaN is no JSON: a figure is a number or null
        _move_into_place(tmp, files + ["manifest.json"], out_dir)
        if timings is not None:
            timings["index_s"] = t_index
            timings["write_s"] = time.perf_counter() - t_start - t_index
        return manifest
    except OSError as e:  # a full disk shows up as ENOSPC, or as numpy's "N requested and M written"
        shutil.rmtree(tmp, ignore_errors=True)
        free = shutil.disk_usage(out_dir.parent).free
        raise OSError(f"cannot write model {out_dir}: {e.strerror or e} "
                      f"({free:,} bytes free on its file system)") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


MODEL_EXTRAS = ("manifest.json", "report.json")   # beside the manifest's files: a version's own


def replace_problem(out_dir: Path) -> str | None:
    """Why writing a model to `out_dir` would destroy something that is no model (None: the
    path is free, an empty folder, or a model folder, as its manifest says, holding nothing
    but the model's own files). A model is written by replacing the whole folder."""
    out_dir = Path(out_dir)
    if out_dir.is_symlink():
        return "it is a symbolic link (give a folder)"
    if not out_dir.exists():
        return None
    if not out_dir.is_dir():
        return "it is not a folder"
    entries = sorted(p.name for p in out_dir.iterdir())
    if not entries:
        return None
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
        own = set(manifest["files"]) if manifest.get("format") == FORMAT else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        own = None
    if own is None:
        return f"it holds {_names(entries)} and no model manifest"
    foreign = [e for e in entries if e not in own and e not in MODEL_EXTRAS]
    return f"it is a model folder that also holds {_names(foreign)}" if foreign else None


def _names(entries: list[str], shown: int = 3) -> str:
    names = ", ".join(escape_name(e) for e in entries[:shown])
    return names + (f" and {len(entries) - shown:,} more" if len(entries) > shown else "")


def check_replaceable(out_dir: Path) -> None:
    """ValueError when `out_dir` may not be replaced by a model (replace_problem)."""
    why = replace_problem(out_dir)
    if why:
        raise ValueError(f"{out_dir}: refusing to replace it: {why}; a model replaces only an "
                         "empty folder or an earlier model (choose another --out)")


def _move_into_place(tmp: Path, files: list[str], out_dir: Path) -> None:
    """fsync the staged files and folder, then rename the folder to `out_dir` (an old model
    is renamed away first and removed after): a reader sees the old model or the new one.
    Anything else at `out_dir` is refused (check_replaceable), never removed."""
    for f in files:
        with open(tmp / f, "rb") as fh:
            os.fsync(fh.fileno())
    fsync_dir(tmp)
    check_replaceable(out_dir)
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out_dir)
    fsync_dir(out_dir.parent)


def read_manifest(model_dir: Path) -> dict:
    path = Path(model_dir) / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{model_dir}: no manifest.json (not a model directory)") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: unreadable manifest: {e}") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: unsupported format {manifest.get('format')!r} "
                         f"version {manifest.get('format_version')!r} (expected {FORMAT} {FORMAT_VERSION})")
    return manifest


def verify_files(model_dir: Path, manifest: dict) -> None:
    for name, meta in manifest.get("files", {}).items():
        p = Path(model_dir) / name
        if not p.is_file():
            raise ModelError(f"{model_dir}: missing file {name}")
        if p.stat().st_size != meta["bytes"]:
            raise ModelError(f"{model_dir}: {name} has {p.stat().st_size} bytes, manifest says {meta['bytes']}")
        if sha256_file(p) != meta["sha256"]:
            raise ModelError(f"{model_dir}: {name} does not match its sha256 in the manifest")


def linked_files(model_dir: Path) -> list[tuple[str, int]]:
    """(name, st_nlink) of the folder's files that have other names too (hard links): a
    write through any of those names rewrites the file in place (docs/SERVICE.md)."""
    with os.scandir(model_dir) as entries:
        found = [(e.name, e.stat(follow_symlinks=False).st_nlink) for e in entries
                 if e.is_file(follow_symlinks=False)]
    return sorted((name, n) for name, n in found if n > 1)


def describe_links(linked: list[tuple[str, int]]) -> str:
    return ", ".join(f"{name} ({n} links)" for name, n in linked)


def _check_files(model_dir: Path, manifest: dict, verify: bool) -> None:
    """Hashes and sizes (when `verify`), and a warning for files with other names: they are
    memory-mapped, so truncating one through another name kills the reader (SIGBUS)."""
    if verify:
        verify_files(model_dir, manifest)
    linked = linked_files(model_dir)
    if linked:
        log.warning("%s: files shared with other paths (hard links): %s; a write through another "
                    "name changes them under every process serving them", model_dir, describe_links(linked))


def load_model(model_dir: str | Path, *, verify: bool = True) -> RelatedModel:
    """Rebuild a RelatedModel from the folder alone; refuse anything inconsistent."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    _check_files(model_dir, manifest, verify)
    warn_library_drift(model_dir, manifest)
    step = "tokenizer"
    try:
        tokenizer = Tokenizer.load(model_dir)
        step = "catalog.jsonl"
        catalog = Catalog.load(model_dir / "catalog.jsonl")
        arrays = {}
        for name, mmap in (("embeddings", "r"), ("vectors", "r"), ("token_counts", None), ("center", None)):
            step = f"{name}.npy"
            arrays[name] = np.load(model_dir / step, mmap_mode=mmap, allow_pickle=False)
        embeddings, vectors, counts, center = arrays.values()
        table = None
        if manifest.get("neighbours"):
            table = tuple(np.load(model_dir / (step := f"{name}.npy"), mmap_mode="r", allow_pickle=False)
                          for name in ("neighbours", "neighbour_scores"))
        step, dim = "manifest.json", manifest["dim"]
        search = _open_search(model_dir, manifest, vectors, dim)
        if embeddings.ndim != 2 or embeddings.shape[1] != dim:
            raise ModelError(f"{model_dir}: inconsistent model: embeddings {embeddings.shape}, "
                             f"manifest says dimension {dim}")
        try:
            index = open_index(model_dir / "index.ann", dim)
        except OSError as e:
            why = str(e).split(". Ensure")[0].removesuffix(": Success (0)")
            raise ModelError(f"{model_dir}: index.ann does not open as a {dim}-dimensional "
                             f"{METRIC} index ({why})") from None
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever a damaged file makes a loader throw
        why = " ".join(str(e).split())[:300]
        raise ModelError(f"{model_dir}: cannot load {step}: {type(e).__name__}: {why}") from None
    n = len(catalog)
    checks = [
        (embeddings.shape == (tokenizer.vocab_size, dim), f"embeddings {embeddings.shape} != ({tokenizer.vocab_size}, {dim})"),
        (vectors.shape == (n, dim), f"vectors {vectors.shape} != ({n}, {dim})"),
        (index.get_n_items() == n, f"index has {index.get_n_items()} items, catalog {n}"),
        (index.f == dim, f"index dimension {index.f} != {dim}"),
        (manifest["n_shows"] == n, f"manifest says {manifest['n_shows']} shows, catalog has {n}"),
        (manifest.get("metric") == METRIC, f"metric {manifest.get('metric')!r} != {METRIC!r}"),
        (len(counts) == tokenizer.vocab_size, "token_counts length != vocabulary"),
        (center.shape == (dim,), f"center {center.shape} != ({dim},)"),
    ]
    if table is not None:
        shape = (n, min(n, int(manifest["neighbours"])))
        checks += [(table[0].shape == shape and table[0].dtype == np.int32,
                    f"neighbours {table[0].shape} {table[0].dtype} != {shape} int32"),
                   (table[1].shape == shape and table[1].dtype == np.float32,
                    f"neighbour_scores {table[1].shape} {table[1].dtype} != {shape} float32")]
    for ok, why in checks:
        if not ok:
            raise ModelError(f"{model_dir}: inconsistent model: {why}")
    model = RelatedModel(model_dir, manifest, tokenizer, catalog, embeddings, vectors, index, counts,
                         center, table, search)
    self_test(model)
    return model


def _open_search(model_dir: Path, manifest: dict, vectors: np.ndarray, dim: int):
    """The search for vectors that are no catalog row: the manifest's "search" entry (a model
    without one, built before it existed: exact search up to the default size, else Annoy);
    None = Annoy. Raises ModelError for probe files that do not fit the catalog."""
    n = len(vectors)
    cfg = IndexConfig()
    entry = manifest.get("search") or {"method": "annoy" if search_method(n, cfg) == "probe"
                                       else search_method(n, cfg)}
    if entry["method"] == "exact":
        return ExactSearch(vectors)
    if entry["method"] != "probe":
        return None
    try:
        return open_probe(model_dir, entry, n, dim)
    except ValueError as e:
        raise ModelError(f"{model_dir}: inconsistent model: {e}") from None


SELF_TEST_ITEMS = 64  # items checked against the index and rebuilt from their tokens


def self_test(model: RelatedModel) -> None:
    """Check the content itself, not the manifest's word for it (a manifest can vouch for the
    wrong files): every array finite, catalog vectors unit length, and for items spread over
    the catalog the index's stored vector equals vectors.npy and the vector rebuilt from the
    item's tokens (tokenizer + catalog + embeddings.npy) equals it too; item 0 finds itself."""
    if len(model) == 0:
        raise ModelError(f"{model.path}: empty catalog")
    try:
        _content_checks(model)
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001 - e.g. a token id past the table: another model's file
        raise ModelError(f"{model.path}: self-test failed: {type(e).__name__}: {e}") from None


def _content_checks(model: RelatedModel) -> None:
    def fail(why: str) -> None:
        raise ModelError(f"{model.path}: self-test failed: {why}")

    arrays = [("embeddings.npy", model.embeddings), ("vectors.npy", model.vectors)]
    if model.center is not None:
        arrays.append(("center.npy", model.center))
    for name, arr in arrays:
        for start in range(0, len(arr), 65536):  # bounded temporaries for a large mmapped table
            if not np.isfinite(arr[start: start + 65536]).all():
                fail(f"{name} holds NaN or infinite values")
    for start in range(0, len(model.vectors), 65536):
        norms = np.linalg.norm(np.asarray(model.vectors[start: start + 65536], dtype=np.float64), axis=1)
        bad = np.flatnonzero((norms > 1e-6) & (np.abs(norms - 1.0) > 1e-3))
        if len(bad):
            fail(f"vectors.npy row {start + int(bad[0])} is not a unit vector (norm {norms[bad[0]]:.4g})")
    n = len(model)
    for i in sorted(set(np.linspace(0, n - 1, min(n, SELF_TEST_ITEMS)).astype(int).tolist())):
        v = np.asarray(model.vectors[i], dtype=np.float32)
        stored = np.asarray(model.index.get_item_vector(i), dtype=np.float32)
        if not np.allclose(v, stored, atol=1e-5):
            fail(f"index item {i} differs from vectors.npy (an index of another model?)")
        tokens = model.item_tokens(i)
        rebuilt = model.vector_of([t[0] for t in tokens], [t[2] for t in tokens])
        if not np.allclose(rebuilt, v, atol=1e-3):
            fail(f"item {i}'s vector does not follow from its tokens and embeddings.npy "
                 "(embeddings, tokenizer or catalog of another model?)")
    if model.neighbours is not None:
        _check_neighbours(model, fail)
    if model.search is not None:
        why = check_search(model.search, model.vectors, np.linspace(0, n - 1, min(n, 16)).astype(int).tolist())
        if why:
            fail(why)
    v = np.asarray(model.vectors[0], dtype=np.float32)
    if np.linalg.norm(v) > 0:
        _, dist = model.index.get_nns_by_vector(v.tolist(), 1, include_distances=True)
        if not dist or dist[0] > 1e-3:
            fail("item 0's vector finds no match")


def _check_neighbours(model: RelatedModel, fail) -> None:
    """The neighbour table: every id in range, and for items spread over the catalog the
    stored cosines equal the vectors' dot products, best first; for an exact table (up to
    64k titles, where checking is cheap) no title outside the row is closer than its last."""
    ids, scores = model.neighbours
    for start in range(0, len(ids), 65536):
        block = np.asarray(ids[start: start + 65536])
        if len(block) and (block.min() < 0 or block.max() >= len(model)):
            fail("neighbours.npy holds ids outside the catalog")
    vectors = model.vectors
    exact_table = (model.manifest.get("neighbour_table") or {}).get("method", "exact") == "exact"
    check_all = exact_table and len(model) <= 65536
    for i in sorted(set(np.linspace(0, len(ids) - 1, min(len(ids), 16)).astype(int).tolist())):
        row, cos = np.asarray(ids[i]), np.asarray(scores[i], dtype=np.float64)
        exact = np.asarray(vectors[row], dtype=np.float64) @ np.asarray(vectors[i], dtype=np.float64)
        if not np.allclose(exact, cos, atol=1e-4) or np.any(np.diff(cos) > 1e-6):
            fail(f"neighbours of item {i} do not follow from vectors.npy (a table of another model?)")
        if check_all and len(row) < len(model):
            _, best = top_k(vectors, len(row), rows=[i])
            if best[0, -1] > cos[-1] + 1e-4:
                fail(f"neighbours of item {i} miss closer titles (a table of another model?)")
