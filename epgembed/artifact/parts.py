"""The array parts of a model folder, each writing and reading its own files (numpy .npy,
allow_pickle=False; the large ones memory-mapped when read).

    TokenTable(embeddings, counts)   embeddings.npy [V, D] float32, token_counts.npy [V] int64
    TitleVectors(vectors, center)    vectors.npy [S, D] float32, center.npy [D] float32
    NeighbourTable(ids, scores)      neighbours.npy [S, K] int32, neighbour_scores.npy [S, K] float32

`save(folder)` returns the names it wrote; `load(folder)` reads them back as written. The
other parts save and load themselves too: text/tokenize.py Tokenizer, artifact/catalog.py
Catalog; the indexes are written by build/index/build.py and opened by query/.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

import numpy as np


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
