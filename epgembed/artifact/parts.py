"""The array parts of a model folder, each writing and reading its own files (numpy .npy,
allow_pickle=False; the large ones memory-mapped when read).

    TokenTable(embeddings, counts)   embeddings.npy [V, D] float32, token_counts.npy [V] int64
    TitleVectors(vectors, center)    vectors.npy [S, D] float32, center.npy [D] float32
    NeighbourTable(ids, scores)      neighbours.npy [S, K] int32, neighbour_scores.npy [S, K] float32

`save(folder)` returns the names it wrote; `load(folder)` reads them back as written;
`extend_npy` makes a longer copy of one file (a refresh's new titles: rows appended, some
rows replaced, the rest shared with the old file where the file system can). The
other parts save and load themselves too: text/tokenize.py Tokenizer, artifact/catalog.py
Catalog; the indexes are written by build/index/build.py and opened by query/.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

import numpy as np

from epgembed.fsutil import clone_file


@dataclass(frozen=True)
class _Arrays:
    """Arrays each in an .npy file of its own: SPECS gives, field by field, (file, dtype,
    memory-mapped when read)."""
    SPECS: ClassVar[tuple[tuple[str, type, bool], ...]] = ()

    @classmethod
    def files(cls) -> tuple[str, ...]:
        return tuple(name for name, _, _ in cls.SPECS)

    def save(self, folder: Path) -> list[str]:
        for f, (name, dtype, _) in zip(fields(self), self.SPECS):
            np.save(Path(folder) / name, np.ascontiguousarray(getattr(self, f.name), dtype=dtype))
        return list(self.files())

    @classmethod
    def load(cls, folder: Path):
        return cls(*(np.load(Path(folder) / name, mmap_mode="r" if mmap else None, allow_pickle=False)
                     for name, _, mmap in cls.SPECS))


@dataclass(frozen=True)
class TokenTable(_Arrays):
    """The trained token vectors (row 0 = PAD = zero) and each token's training frequency."""
    embeddings: np.ndarray
    counts: np.ndarray

    SPECS = (("embeddings.npy", np.float32, True), ("token_counts.npy", np.int64, False))


@dataclass(frozen=True)
class TitleVectors(_Arrays):
    """The unit title vector of every show, and the mean subtracted from catalog and query
    vectors before normalizing (zeros: not centred)."""
    vectors: np.ndarray
    center: np.ndarray

    SPECS = (("vectors.npy", np.float32, True), ("center.npy", np.float32, False))

    @classmethod
    def of(cls, vectors: np.ndarray, center: np.ndarray | None) -> "TitleVectors":
        return cls(vectors, np.zeros(vectors.shape[1], np.float32) if center is None else center)


@dataclass(frozen=True)
class NeighbourTable(_Arrays):
    """The nearest titles of every title, best first, and their cosines."""
    ids: np.ndarray
    scores: np.ndarray

    SPECS = (("neighbours.npy", np.int32, True), ("neighbour_scores.npy", np.float32, True))

    def problem(self, n: int, k: int) -> str | None:
        """Why the table does not fit a catalog of n titles and k columns (None: it does)."""
        shape = (n, min(n, k))
        for (name, dtype, _), arr in zip(self.SPECS, (self.ids, self.scores)):
            if arr.shape != shape or arr.dtype != dtype:
                return f"{name.removesuffix('.npy')} {arr.shape} {arr.dtype} != {shape} {np.dtype(dtype).name}"
        return None


HISTORY = "history.json"


def write_history(folder: Path, history: list[dict]) -> list[str]:
    """The per-epoch training history (NaN is no JSON: a figure is a number or null)."""
    (Path(folder) / HISTORY).write_text(json.dumps(history, indent=1, allow_nan=False), encoding="utf-8")
    return [HISTORY]


def extend_npy(src: Path, dst: Path, rows: np.ndarray, at: np.ndarray | None = None,
               values: np.ndarray | None = None) -> int:
    """Write `dst`: the array of .npy file `src` with `rows` appended (axis 0) and its rows
    `at` replaced by `values`. `dst` is a clone of `src` (fsutil.clone_file: blocks shared
    where the file system can) whose header is rewritten for the longer shape (numpy leaves
    room for that), the new rows written at its end and the replaced ones over theirs; a
    header that would not fit is written with the whole array instead. Returns the bytes of
    the file system blocks written: on a file system that shares blocks (reflinks), what
    the new file costs on disk beyond the old one."""
    with open(src, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        offset = f.tell()
    rows = np.ascontiguousarray(rows, dtype=dtype)
    if fortran or rows.shape[1:] != shape[1:]:
        raise ValueError(f"{src}: {shape} {'F' if fortran else 'C'}-order array, cannot append {rows.shape} rows")
    header = io.BytesIO()
    write = np.lib.format.write_array_header_1_0 if version == (1, 0) else np.lib.format.write_array_header_2_0
    write(header, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                   "shape": (shape[0] + len(rows), *shape[1:])})
    if len(header.getvalue()) != offset:
        whole = np.concatenate([np.load(src, mmap_mode="r"), rows])
        if at is not None and len(at):
            whole[np.asarray(at)] = values
        np.save(dst, whole)
        return os.path.getsize(dst)
    clone_file(src, dst)
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    spans = [(0, offset), (offset + shape[0] * row_bytes, rows.nbytes)]
    with open(dst, "r+b") as f:
        f.write(header.getvalue())
        f.seek(spans[1][0])
        f.write(rows.tobytes())
        if at is not None and len(at):
            values = np.ascontiguousarray(values, dtype=dtype)
            for i, row in zip(np.asarray(at).tolist(), values):
                f.seek(offset + i * row_bytes)
                f.write(row.tobytes())
                spans.append((offset + i * row_bytes, row_bytes))
        return block_bytes(spans, os.fstat(f.fileno()).st_blksize)


def block_bytes(spans: list[tuple[int, int]], block: int) -> int:
    """The bytes of the distinct `block`-sized file blocks that (start, length) spans touch:
    what writing them costs on a file system that copies a shared block when it is written."""
    touched: set[int] = set()
    for start, length in spans:
        if length > 0:
            touched.update(range(start // block, (start + length - 1) // block + 1))
    return len(touched) * block
