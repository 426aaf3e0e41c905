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
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def _save(folder: Path, name: str, array: np.ndarray, dtype) -> str:
    np.save(Path(folder) / name, np.ascontiguousarray(array, dtype=dtype))
    return name


def _load(folder: Path, name: str, mmap: bool) -> np.ndarray:
    return np.load(Path(folder) / name, mmap_mode="r" if mmap else None, allow_pickle=False)


@dataclass(frozen=True)
class TokenTable:
    """The trained token vectors (row 0 = PAD = zero) and each token's training frequency."""
    embeddings: np.ndarray
    counts: np.ndarray

    FILES = ("embeddings.npy", "token_counts.npy")

    def save(self, folder: Path) -> list[str]:
        return [_save(folder, "embeddings.npy", self.embeddings, np.float32),
                _save(folder, "token_counts.npy", self.counts, np.int64)]

    @classmethod
    def load(cls, folder: Path) -> "TokenTable":
        return cls(_load(folder, "embeddings.npy", True), _load(folder, "token_counts.npy", False))


@dataclass(frozen=True)
class TitleVectors:
    """The unit title vector of every show, and the mean subtracted from catalog and query
    vectors before normalizing (zeros: not centred)."""
    vectors: np.ndarray
    center: np.ndarray

    FILES = ("vectors.npy", "center.npy")

    @classmethod
    def of(cls, vectors: np.ndarray, center: np.ndarray | None) -> "TitleVectors":
        return cls(vectors, np.zeros(vectors.shape[1], np.float32) if center is None else center)

    def save(self, folder: Path) -> list[str]:
        return [_save(folder, "vectors.npy", self.vectors, np.float32),
                _save(folder, "center.npy", self.center, np.float32)]

    @classmethod
    def load(cls, folder: Path) -> "TitleVectors":
        return cls(_load(folder, "vectors.npy", True), _load(folder, "center.npy", False))


@dataclass(frozen=True)
class NeighbourTable:
    """The nearest titles of every title, best first, and their cosines."""
    ids: np.ndarray
    scores: np.ndarray

    FILES = ("neighbours.npy", "neighbour_scores.npy")

    def save(self, folder: Path) -> list[str]:
        return [_save(folder, "neighbours.npy", self.ids, np.int32),
                _save(folder, "neighbour_scores.npy", self.scores, np.float32)]

    @classmethod
    def load(cls, folder: Path) -> "NeighbourTable":
        return cls(_load(folder, "neighbours.npy", True), _load(folder, "neighbour_scores.npy", True))

    def problem(self, n: int, k: int) -> str | None:
        """Why the table does not fit a catalog of n titles and k columns (None: it does)."""
        shape = (n, min(n, k))
        for name, arr, dtype in (("neighbours", self.ids, np.int32), ("neighbour_scores", self.scores, np.float32)):
            if arr.shape != shape or arr.dtype != dtype:
                return f"{name} {arr.shape} {arr.dtype} != {shape} {np.dtype(dtype).name}"
        return None


HISTORY = "history.json"


def write_history(folder: Path, history: list[dict]) -> list[str]:
    """The per-epoch training history (NaN is no JSON: a figure is a number or null)."""
    (Path(folder) / HISTORY).write_text(json.dumps(history, indent=1, allow_nan=False), encoding="utf-8")
    return [HISTORY]
