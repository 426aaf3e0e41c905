"""A model folder made from another with titles appended (a refresh: nightly/refresh.py).

    manifest = extend_folder(folder, shows, vectors, "OUT_DIR", indexes, refresh)

The new folder holds the old one's files as they are but for what the new titles change:
catalog.jsonl and vectors.npy get their lines and rows appended (parts.extend_npy), the
index files are written by the IndexWriter it is given (build/index/extend.py: the
neighbour table's new and changed rows, the probe files, the Annoy forest), and the
manifest says what was added (manifest.RefreshInfo). Old ids, vectors, tokens and airings
are untouched bit for bit. Unchanged files are cloned (fsutil.clone_file): blocks shared
with the old version where the file system has reflinks, copied where it has not; never
hard links. Like write_folder, it writes a hidden sibling folder, fsyncs it and renames it
into place.
"""
from __future__ import annotations

import calendar
import hashlib
import os
import shutil
import time
import uuid
from pathlib import Path

import msgspec
import numpy as np

from epgembed.artifact.bundle import move_into_place, sha256_file
from epgembed.artifact.catalog import Catalog
from epgembed.artifact.folder import IndexWriter, ModelFolder
from epgembed.artifact.libraries import library_versions
from epgembed.artifact.manifest import Counts, FileEntry, Manifest, RefreshInfo, write_manifest
from epgembed.artifact.parts import HISTORY, TitleVectors, TokenTable, block_bytes, extend_npy
from epgembed.artifact.show import Show
from epgembed.fsutil import clone_file, utc
from epgembed.text.tokenize import TOKENIZER_FILE

STAMP = "%Y%m%dT%H%M%SZ"     # the time in a version's name (artifact/folder.py's form)

UNCHANGED = (TOKENIZER_FILE, "tokenizer.model", *TokenTable.files(), "center.npy", HISTORY)
"""The files a refresh keeps as they are: the token table and the tokenizer are the trained
model's, and so are the center (a new title is centred like a query) and the history."""


def extend_folder(base: ModelFolder, out_dir: Path, shows: list[Show], vectors: np.ndarray,
                  indexes: IndexWriter, refresh: RefreshInfo, stats: dict | None = None) -> Manifest:
    """Write `out_dir`: the folder `base` with `shows` (ids len(base.catalog) on, in order)
    and their `vectors` appended, the index files by `indexes`; returns its manifest.
    `stats`, when given, receives "written": per file the bytes of the blocks written (where
    reflinks share the rest with the old version, what the file costs), and "cloned": the
    files whose blocks are shared with the old version's (none without reflinks)."""
    n = len(base.catalog)
    if [s.id for s in shows] != list(range(n, n + len(shows))) or len(vectors) != len(shows):
        raise ValueError(f"the new titles need ids {n}.. in order and one vector each")
    stats = {} if stats is None else stats
    written = stats.setdefault("written", {})
    out_dir = Path(out_dir)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        files = [f for f in UNCHANGED if f in base.manifest.files]
        cloned = [f for f in files if clone_file(base.path / f, tmp / f)]
        written.update({f: 0 if f in cloned else (tmp / f).stat().st_size for f in files})
        stats["cloned"] = cloned
        written["catalog.jsonl"] = append_shows(base.path / "catalog.jsonl", tmp / "catalog.jsonl", shows)
        vector_file = TitleVectors.files()[0]
        written[vector_file] = extend_npy(base.path / vector_file, tmp / vector_file, vectors)
        more, info = indexes(tmp)
        files += ["catalog.jsonl", vector_file, *more]
        hashes = {f: FileEntry(sha256_file(tmp / f), (tmp / f).stat().st_size) for f in files}
        manifest = write_manifest(tmp, _manifest(base, shows, hashes, info, refresh))
        move_into_place(tmp, files + ["manifest.json"], out_dir)
        return manifest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def append_shows(src: Path, dst: Path, shows: list[Show]) -> int:
    """`dst`: the catalog.jsonl `src` (cloned) with a line for each of `shows` appended;
    returns the bytes of the blocks written (parts.block_bytes)."""
    lines = Catalog(shows).jsonl_lines()
    clone_file(src, dst)
    with open(dst, "r+b") as f:
        f.seek(0, 2)
        if f.tell() and (f.seek(-1, 2), f.read(1))[1] != b"\n":
            f.write(b"\n")
        start = f.tell()
        for line in lines:
            f.write(line)
        return block_bytes([(start, f.tell() - start)], os.fstat(f.fileno()).st_blksize)


def _manifest(base: ModelFolder, shows: list[Show], hashes: dict[str, FileEntry], info,
              refresh: RefreshInfo) -> Manifest:
    """The base's manifest with the new counts, index entries, files and refresh entry; a
    version name of the same form as a trained model's (time, then the files' digest)."""
    content = hashlib.sha256("".join(hashes[f].sha256 for f in sorted(hashes)).encode()).hexdigest()
    stamp = _stamp_after(base.manifest.version)
    added = Catalog(shows)
    was, new = base.manifest.counts, added.summary()
    categories = set(base.catalog.category_counts) | set(added.category_counts)
    kinds = dict(base.manifest.feature_kinds)
    for kind, k in added.feature_kinds().items():
        kinds[kind] = kinds.get(kind, 0) + k
    return msgspec.structs.replace(
        base.manifest, version=f"{stamp}-{content[:8]}",
        created=utc(), n_shows=len(base.catalog) + len(shows), n_trees=info.n_trees,
        neighbours=info.neighbours, neighbour_table=info.neighbour_table, search=info.search,
        counts=Counts(shows=was.shows + new["shows"], labelled_shows=was.labelled_shows + new["labelled_shows"],
                      categories=len(categories), airings=was.airings + new["airings"]),
        feature_kinds=dict(sorted(kinds.items())), libraries=library_versions(), files=hashes,
        refresh=refresh)


def _stamp_after(version: str) -> str:
    """The time part of a new version's name: now, but at least a second after the time in
    `version`'s name, so that the names of a version and its refresh sort in that order
    (versions are ordered by name: prune, rollback) even within one second."""
    now = time.time()
    try:
        now = max(now, calendar.timegm(time.strptime(version[:16], STAMP)) + 1)
    except ValueError:          # a name of another form: its order is its own business
        pass
    return time.strftime(STAMP, time.gmtime(now))
