"""The fastText reference of EVALUATION.md: a supervised text classifier's sentence vectors.

`fasttext.train_supervised` on one line per distinct (title, category) of the training
file: ``__label__`` + the case-folded category with spaces as ``_``, then the title's
``\\w+`` tokens after NFKC and case-folding; dim 100, epoch 25, lr 0.5, wordNgrams 2,
minn 2, maxn 4, one thread. A title's vector is `get_sentence_vector` of its tokens;
answers are the training file's titles by cosine, 100 of them (so the score's series
filter has enough). Text only: it answers the cold-start protocol's mode 1.

fastText is the `fasttext` extra (requirements-fasttext.txt: a maintained fork of
fasttext 0.9.3 whose wheels work with numpy 2), installed by `make bench-quality` only.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from epgembed.eval.baselines import _CosineSystem, training_titles
from epgembed.eval.xmltv import iter_programmes

SETTINGS = dict(dim=100, epoch=25, lr=0.5, wordNgrams=2, minn=2, maxn=4, thread=1)  # EVALUATION.md
ASKED = 100
_TOKEN = re.compile(r"\w+")
_BATCH = 512


def tokens(title: str) -> list[str]:
    """The title's `\\w+` tokens after NFKC and case-folding."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", title).casefold())


def label(category: str) -> str | None:
    """``__label__`` + the case-folded category, spaces as ``_`` (None when it is empty)."""
    words = category.casefold().split()
    return "__label__" + "_".join(words) if words else None


def training_lines(programmes: Iterable[tuple[str, tuple[str, ...]]]) -> list[str]:
    """One line per distinct (title tokens, category) of the programmes, in first-seen order."""
    lines: dict[str, None] = {}
    for title, categories in programmes:
        text = " ".join(tokens(title))
        for category in categories:
            tag = label(category)
            if text and tag:
                lines.setdefault(f"{tag} {text}")
    return list(lines)


class FastTextSystem(_CosineSystem):
    """One row per distinct case-folded title of the training dump (as `TfidfSystem`), its
    vector the unit-length fastText sentence vector; the query's own row is no answer."""

    name = "fasttext"
    asked = ASKED

    def __init__(self) -> None:
        super().__init__()
        self._model: Any = None

    def fit(self, train_dump: Path, workdir: Path) -> None:
        """Train the classifier on the dump's labelled titles; a vector for every title."""
        import fasttext

        lines = training_lines(iter_programmes(train_dump))
        if not lines:
            raise ValueError(f"{train_dump}: no programme with a title and a category to train fastText on")
        path = Path(workdir) / "fasttext-train.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._model = fasttext.train_supervised(input=str(path), verbose=0, **SETTINGS)
        self._set_titles(training_titles(train_dump))
        self._matrix = self._vectors(self._rows)

    def _vectors(self, titles: list[str]) -> np.ndarray:
        vectors = np.array([self._model.get_sentence_vector(" ".join(tokens(t))) for t in titles],
                           dtype=np.float32).reshape(len(titles), -1)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def query(self, titles: list[str], k: int) -> list[list[str]]:
        """Top-k cosine neighbours per query (ties by row order), its own row excluded."""
        out: list[list[str]] = []
        for start in range(0, len(titles), _BATCH):
            batch = titles[start: start + _BATCH]
            scores = self._vectors(batch) @ self._matrix.T
            for row, title in zip(scores, batch):
                out.append(self._top(row, self._row_of.get(title.casefold()), k))
        return out
