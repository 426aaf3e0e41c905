"""The model directory: a folder that describes itself, and `load_model` that rebuilds from it.

    MODEL_DIR/
      manifest.json      format version, version id, created, config, counts, dims,
                         metric, data summary, training summary, quality, file hashes
      tokenizer.json     tokenizer metadata + word list       tokenizer.model  sentencepiece
      embeddings.npy     [V, D] float32 token table (row 0 = PAD = zero)
      token_counts.npy   [V] int64 training frequency of each token
      vectors.npy        [S, D] float32 unit title vector of every show
      center.npy         [D] float32 mean subtracted from catalog and query vectors (or zeros)
      catalog.jsonl      one show per line, ids 0..S-1
      index.ann          Annoy index (angular) over vectors.npy
      history.json       per-epoch training history

Writes go to a temporary sibling folder that is fsynced and renamed into place, so a
reader never sees a half-written model. No pickles: numpy .npy (allow_pickle=False), JSON.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from .catalog import Catalog
from .index import METRIC, build_index, open_index
from .related import RelatedModel
from .tokenize import Tokenizer

FORMAT = "epgembed-model"
FORMAT_VERSION = 1


class ModelError(Exception):
    """A model directory that is missing, incomplete, corrupt or inconsistent."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_model(out_dir: Path, *, tokenizer: Tokenizer, catalog: Catalog, embeddings: np.ndarray,
               vectors: np.ndarray, token_counts: np.ndarray, config: dict, history: list[dict],
               data: dict, training: dict, index_cfg, quality: dict | None = None,
               timings: dict | None = None, center: np.ndarray | None = None) -> dict:
    """Write a complete model directory atomically; returns the manifest.

    `timings`, when given, receives "index_s" (Annoy build) and "write_s" (everything else).
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
        t_index = time.perf_counter()
        build_index(vectors, index_cfg, tmp / "index.ann")
        t_index = time.perf_counter() - t_index
        (tmp / "history.json").write_text(json.dumps(history, indent=1), encoding="utf-8")
        files += ["embeddings.npy", "token_counts.npy", "vectors.npy", "center.npy", "catalog.jsonl",
                  "index.ann", "history.json"]
        hashes = {f: {"sha256": sha256_file(tmp / f), "bytes": (tmp / f).stat().st_size} for f in files}
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        content = hashlib.sha256("".join(hashes[f]["sha256"] for f in sorted(hashes)).encode()).hexdigest()
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "version": f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{content[:8]}",
            "created": created, "metric": METRIC, "dim": int(embeddings.shape[1]),
            "vocab_size": int(embeddings.shape[0]), "n_shows": len(catalog),
            "n_trees": index_cfg.n_trees, "counts": catalog.summary(), "config": config,
            "data": data, "training": training, "quality": quality or {}, "files": hashes,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        for f in files + ["manifest.json"]:
            with open(tmp / f, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(tmp)
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
        fsync_dir(out_dir.parent)
        if timings is not None:
            timings["index_s"] = t_index
            timings["write_s"] = time.perf_counter() - t_start - t_index
        return manifest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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


def load_model(model_dir: str | Path, *, verify: bool = True) -> RelatedModel:
    """Rebuild a RelatedModel from the folder alone; refuse anything inconsistent."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    if verify:
        verify_files(model_dir, manifest)
    try:
        tokenizer = Tokenizer.load(model_dir)
        catalog = Catalog.load(model_dir / "catalog.jsonl")
        embeddings = np.load(model_dir / "embeddings.npy", mmap_mode="r", allow_pickle=False)
        vectors = np.load(model_dir / "vectors.npy", mmap_mode="r", allow_pickle=False)
        counts = np.load(model_dir / "token_counts.npy", allow_pickle=False)
        center = np.load(model_dir / "center.npy", allow_pickle=False)
        dim = manifest["dim"]
        index = open_index(model_dir / "index.ann", dim)
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        raise ModelError(f"{model_dir}: cannot load: {e}") from None
    n = len(catalog)
    checks = [
        (embeddings.shape == (tokenizer.vocab_size, dim), f"embeddings {embeddings.shape} != ({tokenizer.vocab_size}, {dim})"),
        (vectors.shape == (n, dim), f"vectors {vectors.shape} != ({n}, {dim})"),
        (index.get_n_items() == n, f"index has {index.get_n_items()} items, catalog {n}"),
        (index.f == dim, f"index dimension {index.f} != {dim}"),
        (manifest["n_shows"] == n, f"manifest says {manifest['n_shows']} shows, catalog has {n}"),
        (len(counts) == tokenizer.vocab_size, "token_counts length != vocabulary"),
        (center.shape == (dim,), f"center {center.shape} != ({dim},)"),
    ]
    for ok, why in checks:
        if not ok:
            raise ModelError(f"{model_dir}: inconsistent model: {why}")
    model = RelatedModel(model_dir, manifest, tokenizer, catalog, embeddings, vectors, index, counts,
                         center)
    self_test(model)
    return model


def self_test(model: RelatedModel) -> None:
    """Item 0's stored vector must be in the index, and searching it must find a match."""
    if len(model) == 0:
        raise ModelError(f"{model.path}: empty catalog")
    v = np.asarray(model.vectors[0], dtype=np.float32)
    stored = np.asarray(model.index.get_item_vector(0), dtype=np.float32)
    if not np.allclose(v, stored, atol=1e-5):
        raise ModelError(f"{model.path}: self-test failed: index item 0 differs from vectors.npy")
    if np.linalg.norm(v) > 0:
        _, dist = model.index.get_nns_by_vector(v.tolist(), 1, include_distances=True)
        if not dist or dist[0] > 1e-3:
            raise ModelError(f"{model.path}: self-test failed: item 0's vector finds no match")
