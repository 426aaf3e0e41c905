"""The model folder as one typed unit: `write_folder` writes it, `read_folder` reads it.

    MODEL_DIR/   manifest.json and the files of manifest.FOLDER_FILES, each written and
                 read by its part (Tokenizer, TokenTable, TitleVectors, Catalog,
                 NeighbourTable; the indexes by build/index/build.py and query/)

    folder = read_folder("MODEL_DIR")       # ModelFolder, or ModelError saying what is wrong

The reading checks what the folder says of itself (hashes, with `verify`; shapes, counts,
dimensions); query/load.py opens the indexes on it, builds the serving objects and runs the
self-test on their content. A folder of format 1 is read through upgrade.py. Writes go to a
temporary sibling folder that is fsynced and renamed into place (bundle.py), so a reader
never sees a half-written model.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from epgembed.artifact import upgrade
from epgembed.artifact.bundle import check_files, move_into_place, sha256_file
from epgembed.artifact.catalog import Catalog, SerializedCatalog
from epgembed.artifact.libraries import library_versions, warn_library_drift
from epgembed.artifact.manifest import (FORMAT, FORMAT_VERSION, METRIC, Counts, DataSummary, FileEntry,
                                        Manifest, ModelError, NeighbourTableInfo, SearchInfo,
                                        TrainingSummary, read_manifest, write_manifest)
from epgembed.artifact.parts import NeighbourTable, TitleVectors, TokenTable, write_history
from epgembed.fsutil import utc
from epgembed.text.tokenize import TOKENIZER_FILE, Tokenizer


@dataclass(frozen=True)
class IndexInfo:
    """What an IndexWriter tells the manifest about the index files it wrote."""
    n_trees: int
    neighbours: int
    neighbour_table: NeighbourTableInfo | None
    search: SearchInfo


IndexWriter = Callable[[Path], "tuple[list[str], IndexInfo]"]
"""Writes a model's index files into a folder: (their names, IndexInfo); the build side's is
build/index/build.py write_indexes (the folder writes, reads and verifies only)."""


@dataclass(frozen=True)
class ModelFolder:
    """Every part of a model folder, read and checked against each other."""
    path: Path
    manifest: Manifest
    tokenizer: Tokenizer
    catalog: Catalog
    tokens: TokenTable
    vectors: TitleVectors
    neighbours: NeighbourTable | None


def read_folder(model_dir: str | Path, *, verify: bool = True) -> ModelFolder:
    """Read every part; ModelError naming the file for anything missing, damaged or
    inconsistent (hashes and sizes against the manifest when `verify`)."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    check_files(model_dir, manifest, verify)
    warn_library_drift(model_dir, manifest.libraries)
    step = TOKENIZER_FILE
    try:
        meta = upgrade.tokenizer(json.loads((model_dir / TOKENIZER_FILE).read_text(encoding="utf-8")))
        tokenizer = Tokenizer.load(model_dir, meta)
        step = "catalog.jsonl"
        catalog = Catalog.load(model_dir / step)
        step = "embeddings.npy or token_counts.npy"
        tokens = TokenTable.load(model_dir)
        step = "vectors.npy or center.npy"
        vectors = TitleVectors.load(model_dir)
        step = "neighbours.npy or neighbour_scores.npy"
        table = NeighbourTable.load(model_dir) if manifest.neighbours else None
    except Exception as e:  # noqa: BLE001 - whatever a damaged file makes a loader throw
        why = " ".join(str(e).split())[:300]
        raise ModelError(f"{model_dir}: cannot load {step}: {type(e).__name__}: {why}") from None
    folder = ModelFolder(model_dir, manifest, tokenizer, catalog, tokens, vectors, table)
    why = inconsistency(folder)
    if why:
        raise ModelError(f"{model_dir}: inconsistent model: {why}")
    return folder


def inconsistency(f: ModelFolder) -> str | None:
    """The first way the parts disagree with each other or the manifest (None: they agree)."""
    n, dim, vocab = len(f.catalog), f.manifest.dim, f.tokenizer.vocab_size
    emb, vec, counts, center = f.tokens.embeddings, f.vectors.vectors, f.tokens.counts, f.vectors.center
    if emb.ndim != 2 or emb.shape[1] != dim:
        return f"embeddings {emb.shape}, manifest says dimension {dim}"
    checks = [
        (emb.shape == (vocab, dim), f"embeddings {emb.shape} != ({vocab}, {dim})"),
        (vec.shape == (n, dim), f"vectors {vec.shape} != ({n}, {dim})"),
        (f.manifest.n_shows == n, f"manifest says {f.manifest.n_shows} shows, catalog has {n}"),
        (len(counts) == vocab, "token_counts length != vocabulary"),
        (center.shape == (dim,), f"center {center.shape} != ({dim},)"),
    ]
    for ok, why in checks:
        if not ok:
            return why
    return f.neighbours.problem(n, f.manifest.neighbours) if f.neighbours is not None else None


# ---------------------------------------------------------------- writing
@dataclass(frozen=True)
class ModelParts:
    """Everything a model folder holds but its indexes, which are made from `vectors`."""
    tokenizer: Tokenizer
    catalog: Catalog | SerializedCatalog
    tokens: TokenTable
    vectors: TitleVectors
    history: list[dict]
    config: dict
    data: DataSummary
    training: TrainingSummary


def write_folder(out_dir: Path, parts: ModelParts, indexes: IndexWriter,
                 timings: dict | None = None) -> Manifest:
    """Write a complete model directory atomically; returns its manifest, as written.
    `indexes` writes the index files (index.ann among them) into the staging folder, after
    the model's own. `timings`, when given, receives "index_s" (`indexes`) and "write_s"
    (everything else)."""
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        files = parts.tokenizer.save(tmp) + parts.tokens.save(tmp) + parts.vectors.save(tmp)
        parts.catalog.save(tmp / "catalog.jsonl")
        t_index = time.perf_counter()
        more, info = indexes(tmp)
        t_index = time.perf_counter() - t_index
        files += ["catalog.jsonl", *write_history(tmp, parts.history), *more]
        manifest = write_manifest(tmp, _manifest(tmp, files, parts, info))
        move_into_place(tmp, files + ["manifest.json"], out_dir)
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


def _manifest(tmp: Path, files: list[str], parts: ModelParts, info: IndexInfo) -> Manifest:
    hashes = {f: FileEntry(sha256_file(tmp / f), (tmp / f).stat().st_size) for f in files}
    content = hashlib.sha256("".join(hashes[f].sha256 for f in sorted(hashes)).encode()).hexdigest()
    emb = parts.tokens.embeddings
    return Manifest(
        format=FORMAT, format_version=FORMAT_VERSION,
        version=f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{content[:8]}",
        created=utc(), metric=METRIC, dim=int(emb.shape[1]), vocab_size=int(emb.shape[0]),
        n_shows=len(parts.catalog), n_trees=info.n_trees, neighbours=info.neighbours,
        neighbour_table=info.neighbour_table, search=info.search,
        counts=Counts(**parts.catalog.summary()), feature_kinds=parts.catalog.feature_kinds(),
        config=parts.config, data=parts.data, training=parts.training, quality={},
        libraries=library_versions(), files=hashes)
