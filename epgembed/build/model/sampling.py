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
        """[len(a), len(b)] bool: show a[i] and show b[j] share a supervising category.
        Boolean lookups only (no BLAS call, so no thread pool outside torch's)."""
        member = np.zeros((self.n_categories + 1, len(b)), dtype=bool)   # category x b
        cats_b = self.cat_matrix[b]
        member[cats_b.ravel(), np.repeat(np.arange(len(b)), cats_b.shape[1])] = True
        member[-1] = False                  # the -1 padding of cat_matrix lands here
        return member[self.cat_matrix[a]].any(axis=1)


class PackedTitles:
    """Every show's tokens without padding: show s is tokens[start[s]: start[s] + length[s]].

    Built once from the padded [S, L] arrays; `pack(shows)` gives the batch's distinct
    shows, packed for `fused.packed_sums`, and each requested show's slot among them.
    `views` (packed bags: ids, weights, lengths, one per show) are other views of the same
    shows, addressed as show s + k * S for view k = 1, 2, ...: a step packs them like shows.
    """

    def __init__(self, token_ids: np.ndarray, token_weights: np.ndarray | None = None,
                 views: tuple = ()):
        mask = token_ids != 0
        self.n_shows = len(token_ids)
        length = mask.sum(1).astype(np.int64)
        tokens = [token_ids[mask].astype(np.int32)]       # int32: half the memory, faster sorts
        weights = None if token_weights is None else [token_weights[mask].astype(np.float32)]
        lengths = [length]
        for v in views:
            if weights is None:
                weights = [np.ones(len(tokens[0]), np.float32)]
            tokens.append(np.asarray(v.ids, dtype=np.int32))
            weights.append(np.asarray(v.weights, dtype=np.float32))
            lengths.append(np.asarray(v.lengths, dtype=np.int64))
        self.views = 1 + len(views)
        self.length = np.concatenate(lengths)
        self.start = np.concatenate([[0], np.cumsum(self.length)[:-1]]).astype(np.int64)
        self.tokens = np.concatenate(tokens) if len(tokens) > 1 else tokens[0]
        self.weights = None if weights is None else (np.concatenate(weights) if len(weights) > 1 else weights[0])

    @classmethod
    def from_packed(cls, tokens: np.ndarray, weights: np.ndarray | None, length: np.ndarray,
                    n_shows: int) -> "PackedTitles":
        """Titles packed already (another PackedTitles' tokens, weights and lengths, as rank 0
        of a distributed run sends them), kept as they are, not copied."""
        self = cls.__new__(cls)
        self.n_shows, self.views = n_shows, len(length) // max(n_shows, 1)
        self.tokens, self.weights, self.length = tokens, weights, length
        self.start = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
        return self

    def __len__(self) -> int:
        return self.n_shows

    def pack(self, shows: np.ndarray):
        """(tokens, offsets, weights or None, slots) for the distinct shows of `shows`."""
        uniq, slots = np.unique(shows, return_inverse=True)
        lengths = self.length[uniq]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int32)
        idx = np.repeat(self.start[uniq] - offsets, lengths) + np.arange(int(lengths.sum()))
        weights = None if self.weights is None else self.weights[idx]
        return self.tokens[idx], offsets, weights, slots.reshape(-1)
