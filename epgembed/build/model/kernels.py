"""Compiled kernels (numba) of the training step, the same math as `fused.fused_triplet_grad`
+ `fused.rowwise_adagrad_` without the intermediate tensors, and the top-k merge of the
clustered neighbour table (`clustered.clustered_neighbours`).

The fused torch step spends most of its time moving token rows: an embedding_bag forward,
a sort and a second embedding_bag for the backward pass, then gathers, products and an
index_add for the optimizer, each a full pass over the batch's ~40k token rows. Here a
step makes two passes: one gathers each distinct title's rows into its unit vector, one
walks the batch's distinct token rows, sums each row's gradient from the titles that use
it and applies the row-wise Adagrad step in place. The one dense product (bags x shared
candidate pool) stays a BLAS matmul.

Every kernel releases the GIL (`nogil`), so Hogwild! workers (`train.run_epoch`) run on
all cores. Kernels are compiled on first use and cached on disk (`jit.jit`); the row
update, `scatter_adagrad`, is in rowgrad.py with the distributed step's kernels.

    step = CompiledStep(table, accum, row_weights, k, margin, lr)
    loss = step(titles, shows, b, allowed, n)
"""
from __future__ import annotations

import threading

import numpy as np
import torch
from torch.profiler import record_function

from epgembed.build.model.jit import jit
from epgembed.build.model.rowgrad import scatter_adagrad


@jit
def unit_title_sums(table, tokens, start, length, weights, titles, out, norms):
    """out[i] = unit vector of the weighted sum of title titles[i]'s rows (model.title_vectors,
    fused into the step); norms[i] its norm."""
    dim = table.shape[1]
    for i in range(len(titles)):
        s = titles[i]
        lo = start[s]
        for d in range(dim):
            out[i, d] = 0.0
        for j in range(lo, lo + length[s]):
            w = weights[j]
            t = tokens[j]
            for d in range(dim):
                out[i, d] += w * table[t, d]
        norms[i] = normalize_row(out, i, np.float32(1.0))


@jit
def normalize_row(x, i, scale):
    """x[i] = x[i] * scale, then divided by its norm (at least 1e-12); returns that norm."""
    sq = np.float32(0.0)
    for d in range(x.shape[1]):
        x[i, d] *= scale
        sq += x[i, d] * x[i, d]
    norm = max(np.sqrt(sq), np.float32(1e-12))
    inv = np.float32(1.0) / norm
    for d in range(x.shape[1]):
        x[i, d] *= inv
    return norm


@jit
def context_bags(u, slots, b, n, bag, bag_norm):
    """bag[e] = unit mean of the n-1 context title vectors of example e (slots example-major)."""
    dim = u.shape[1]
    for e in range(b):
        for d in range(dim):
            bag[e, d] = 0.0
        for c in range(n - 1):
            t = slots[e * (n - 1) + c]
            for d in range(dim):
                bag[e, d] += u[t, d]
        bag_norm[e] = normalize_row(bag, e, np.float32(1.0 / (n - 1)))


@jit
def hardest_allowed(scores_row, allowed_row, k, out):
    """Indices of the k highest scores among allowed entries, best first; returns how many
    were found (fewer than k when fewer are allowed)."""
    found = 0
    for j in range(len(scores_row)):
        if not allowed_row[j]:
            continue
        s = scores_row[j]
        if found == k and s <= scores_row[out[k - 1]]:
            continue
        p = found if found < k else k - 1
        while p > 0 and scores_row[out[p - 1]] < s:
            out[p] = out[p - 1]
            p -= 1
        out[p] = j
        if found < k:
            found += 1
    return found


@jit
def triplet_grad(u, norms, slots, b, n, bag, bag_norm, scores, rank, allowed, k, margin,
                 d_u, d_sums):
    """Margin ranking loss of the batch (mean over examples) and d loss / d title sums.

    Each example uses the k allowed candidates ranked highest by `rank` ([b, C]: the scores
    themselves for hard negatives, random numbers for random ones). Slots: b*(n-1) context
    titles (example-major), b positives, then C candidates, as in
    `fused.fused_triplet_grad`. d_u and d_sums are [T, D] work arrays (overwritten)."""
    dim = u.shape[1]
    n_ctx = b * (n - 1)
    d_u[:, :] = 0.0
    picked = np.empty(k, np.int64)
    d_bag = np.empty(dim, np.float32)
    inv_b = np.float32(1.0 / b)
    loss = 0.0
    for e in range(b):
        found = hardest_allowed(rank[e], allowed[e], k, picked)
        p = slots[n_ctx + e]
        pos_score = np.float32(0.0)
        for d in range(dim):
            pos_score += bag[e, d] * u[p, d]
        for d in range(dim):
            d_bag[d] = 0.0
        active = 0
        for i in range(found):
            j = picked[i]
            raw = np.float32(margin) - pos_score + scores[e, j]
            if raw <= 0.0:
                continue
            loss += raw
            active += 1
            c = slots[n_ctx + b + j]
            for d in range(dim):
                d_bag[d] += u[c, d] * inv_b
                d_u[c, d] += bag[e, d] * inv_b
        if active == 0:
            continue
        a = np.float32(active) * inv_b
        for d in range(dim):
            d_bag[d] -= a * u[p, d]
            d_u[p, d] -= a * bag[e, d]
        dot = np.float32(0.0)                       # back through bag = mean / |mean|
        for d in range(dim):
            dot += bag[e, d] * d_bag[d]
        scale = np.float32(1.0) / (bag_norm[e] * np.float32(n - 1))
        for c in range(n - 1):
            t = slots[e * (n - 1) + c]
            for d in range(dim):
                d_u[t, d] += (d_bag[d] - bag[e, d] * dot) * scale
    for t in range(u.shape[0]):                     # back through u = sum / |sum|
        dot = np.float32(0.0)
        for d in range(dim):
            dot += u[t, d] * d_u[t, d]
        inv = np.float32(1.0) / norms[t]
        for d in range(dim):
            d_sums[t, d] = (d_u[t, d] - u[t, d] * dot) * inv
    return loss / b


class CompiledStep:
    """step(titles, shows, b, allowed, n) -> batch loss: one leave-one-out step on the shared
    table, as the torch step `fused.FusedStep`. Callable from several threads
    at once (Hogwild!): each thread keeps its own work arrays.

    table [V, D] and accum [V] are float32 arrays updated in place (numpy views of the
    model's tensors); row_weights [V]: each row's inverse-frequency step factor (ones when
    off); generator: draws the random negatives when hard=False."""

    def __init__(self, table: np.ndarray, accum: np.ndarray, row_weights: np.ndarray,
                 k: int, margin: float, lr: float, hard: bool = True,
                 generator: torch.Generator | None = None):
        self.table, self.accum, self.row_weights = table, accum, row_weights
        self.k, self.margin, self.lr = k, float(margin), float(lr)
        self.hard, self.generator = hard, generator
        self._local = threading.local()
        self._ones: tuple = (None, None)

    def _work(self) -> dict:
        w = getattr(self._local, "work", None)
        if w is None:
            w = self._local.work = {"slot_of": np.full(len(self.table), -1, np.int32),
                                    "grad": np.empty(self.table.shape[1], np.float32)}
        return w

    @staticmethod
    def _sized(work: dict, name: str, size: int, dtype) -> np.ndarray:
        a = work.get(name)
        if a is None or len(a) < size:
            a = work[name] = np.empty(max(size, 2 * len(a) if a is not None else size), dtype)
        return a

    def _token_weights(self, titles) -> np.ndarray:
        if titles.weights is not None:
            return titles.weights
        if self._ones[0] is not titles:
            self._ones = (titles, np.ones(len(titles.tokens), np.float32))
        return self._ones[1]

    def __call__(self, titles, shows: np.ndarray, b: int, allowed, n: int) -> float:
        work = self._work()
        weights = self._token_weights(titles)
        allowed = allowed.numpy() if isinstance(allowed, torch.Tensor) else allowed
        with record_function("pack"):
            uniq, slots = np.unique(shows, return_inverse=True)
            slots = slots.reshape(-1)
        dim, t = self.table.shape[1], len(uniq)
        with record_function("forward"):
            u, norms = np.empty((t, dim), np.float32), np.empty(t, np.float32)
            unit_title_sums(self.table, titles.tokens, titles.start, titles.length, weights,
                            uniq, u, norms)
            bag, bag_norm = np.empty((b, dim), np.float32), np.empty(b, np.float32)
            context_bags(u, slots, b, n, bag, bag_norm)
            cand = torch.from_numpy(u[slots[b * n:]])
            scores = torch.from_numpy(bag).mm(cand.T).numpy()             # [b, C], one matmul
            rank = (scores if self.hard
                    else torch.rand(scores.shape, generator=self.generator).numpy())
        with record_function("backward"):
            d_u, d_sums = np.empty((t, dim), np.float32), np.empty((t, dim), np.float32)
            loss = triplet_grad(u, norms, slots, b, n, bag, bag_norm, scores, rank, allowed,
                                self.k, self.margin, d_u, d_sums)
        with record_function("optimizer"):             # row gradients summed and applied
            occ = int(titles.length[uniq].sum())
            scatter_adagrad(self.table, self.accum, titles.tokens, titles.start, titles.length,
                            weights, uniq, d_sums, self.lr, self.row_weights, work["slot_of"],
                            self._sized(work, "occ_slot", occ, np.int32),
                            self._sized(work, "counts", occ, np.int64),
                            self._sized(work, "occ_title", occ, np.int32),
                            self._sized(work, "occ_w", occ, np.float32),
                            self._sized(work, "rows", occ, np.int64), work["grad"])
        return float(loss)


@jit
def merge_top_k(scores, rows, cands, ids, best):
    """Merge a block of exact scores into running top lists, in place.

    scores [q, m]: row rows[a] against the candidates cands[b]. ids / best [S, k]: column 0
    is the row itself (left alone); columns 1..k-1 are a min-heap of the row's best other
    rows so far (-1 / -inf where empty), root at column 1; `sort_top_k` orders them at the
    end. A row is skipped as its own candidate."""
    size = ids.shape[1] - 1
    for a in range(len(rows)):
        r = rows[a]
        worst = best[r, 1]                          # kept in a register: most scores fail it
        for b in range(scores.shape[1]):
            s = scores[a, b]
            if s <= worst:
                continue
            c = cands[b]
            if c == r:
                continue
            p = 0                                   # replace the root, sift down
            while True:
                child = 2 * p + 1
                if child >= size:
                    break
                if child + 1 < size and best[r, 2 + child] < best[r, 1 + child]:
                    child += 1
                if best[r, 1 + child] >= s:
                    break
                best[r, 1 + p] = best[r, 1 + child]
                ids[r, 1 + p] = ids[r, 1 + child]
                p = child
            best[r, 1 + p] = s
            ids[r, 1 + p] = c
            worst = best[r, 1]


@jit
def sort_top_k(ids, best):
    """Order columns 1..k-1 of every row best first (after `merge_top_k`)."""
    for r in range(ids.shape[0]):
        order = np.argsort(-best[r, 1:])
        ids[r, 1:] = ids[r, 1:][order]
        best[r, 1:] = best[r, 1:][order]
