"""Leave-one-out sampling by category (METHOD.md, "Training", steps 1-3), vectorized.

An example is one (show, category) membership: the show is the positive; n-1 other
shows of that category (drawn with replacement, never the positive) form the bag.
Negative candidates come from a shared pool of labelled shows, and `shares_category`
says which of them are allowed (they share no category with the positive).
"""
from __future__ import annotations

import numpy as np


class LeaveOneOutSampler:
    """Batches of (context [B, N-1], positive [B], category [B]) show ids, vectorized."""

    def __init__(self, show_categories: list[list[int]], n_categories: int, n: int,
                 rng: np.random.Generator):
        self.n, self.rng = n, rng
        members: list[list[int]] = [[] for _ in range(n_categories)]
        for show, cats in enumerate(show_categories):
            for c in cats:
                members[c].append(show)
        sizes = np.array([len(m) for m in members], dtype=np.int64)
        self.sizes = sizes
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.flat = np.array([s for m in members for s in m], dtype=np.int64)
        show, cat, pos = [], [], []
        for c, m in enumerate(members):
            if len(m) < 2:  # a category needs a second show to predict one
                continue
            show.extend(m)
            cat.extend([c] * len(m))
            pos.extend(range(len(m)))
        self.m_show = np.array(show, dtype=np.int64)
        self.m_cat = np.array(cat, dtype=np.int64)
        self.m_pos = np.array(pos, dtype=np.int64)
        self.labelled = np.array(sorted(set(show)), dtype=np.int64)
        width = max([1] + [len(c) for c in show_categories])
        self.cat_matrix = np.full((len(show_categories), width), -1, dtype=np.int64)
        for s, cats in enumerate(show_categories):
            self.cat_matrix[s, : len(cats)] = cats
        self.n_categories = n_categories

    def __len__(self) -> int:
        return len(self.m_show)

    def batches(self, batch_size: int):
        order = self.rng.permutation(len(self.m_show))
        for start in range(0, len(order), batch_size):
            sel = order[start: start + batch_size]
            yield self.make_batch(self.m_show[sel], self.m_cat[sel], self.m_pos[sel])

    def make_batch(self, show: np.ndarray, cat: np.ndarray, pos: np.ndarray):
        """Context: n-1 other members of the category (with replacement), never the positive."""
        others = (self.sizes[cat] - 1)[:, None]
        r = np.floor(self.rng.random((len(show), self.n - 1)) * others).astype(np.int64)
        r += r >= pos[:, None]
        context = self.flat[self.offsets[cat][:, None] + r]
        return context, show, cat

    def candidates(self, size: int) -> np.ndarray:
        return self.labelled[self.rng.integers(0, len(self.labelled), size)]

    def shares_category(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """[len(a), len(b)] bool: show a[i] and show b[j] share a supervising category."""
        def onehot(shows):
            m = np.zeros((len(shows), self.n_categories + 1), dtype=np.float32)
            cats = self.cat_matrix[shows]
            rows = np.repeat(np.arange(len(shows)), cats.shape[1])
            m[rows, cats.ravel()] = 1.0   # -1 padding lands in the last column
            return m[:, :-1]
        return (onehot(a) @ onehot(b).T) > 0
