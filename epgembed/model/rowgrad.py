"""The compiled training step split in two, for data-parallel training
(epgembed/model/distributed.py): the gradient of a batch's token rows, then the row-wise
Adagrad step on rows whose gradients were summed over the ranks.

`kernels.CompiledStep` does both in one pass (`kernels.scatter_adagrad`); here
`row_gradients` is that kernel writing each distinct row's summed gradient instead of
applying it, `merge_rows` sums the rows several ranks sent, and `adagrad_rows` is its step
alone (the same kernels.group_by_row, row_gradient and adagrad_row). The forward and backward kernels are CompiledStep's own. A batch split
nowhere (one rank) gives CompiledStep's table bit for bit (tests/test_distributed_step.py).

    grad = RowGradient(table, k, margin, hard, generator)
    loss_sum, rows, row_grad = grad(titles, shows, b, allowed, n, scale=1 / global_b)
    adagrad_rows(table, accum, rows, row_grad, len(rows), lr, row_weights)
"""
from __future__ import annotations

import threading

import numpy as np
import torch

from epgembed.model.kernels import (_jit, adagrad_row, context_bags, group_by_row, row_gradient,
                                    triplet_grad, unit_title_sums)


@_jit
def row_gradients(tokens, start, length, weights, titles, d_sums, slot_of, occ_slot, counts,
                  occ_title, occ_w, rows, grad):
    """grad[r] = the sum over the titles using row rows[r] of d_sums[i] times the token's
    weight (kernels.scatter_adagrad without its step). slot_of: [V] int32, -1 on entry and
    on exit. Returns the number of distinct rows (PAD included when used)."""
    n_rows = group_by_row(tokens, start, length, weights, titles, slot_of, occ_slot, counts,
                          occ_title, occ_w, rows)
    lo = 0
    for r in range(n_rows):
        row_gradient(occ_title, occ_w, lo, counts[r], d_sums, grad[r])
        lo = counts[r]
        slot_of[rows[r]] = -1
    return n_rows


@_jit
def merge_rows(ids, grads, slot_of, rows, sums):
    """Sum the gradients of equal ids (several ranks' rows one after another) in the order
    given: sums[r] is the total of row rows[r], rows in order of first appearance. The same
    input gives the same bits on every rank. slot_of as in row_gradients. Returns the count."""
    dim = grads.shape[1]
    n = 0
    for q in range(len(ids)):
        r = slot_of[ids[q]]
        if r < 0:
            r = n
            slot_of[ids[q]] = r
            rows[r] = ids[q]
            for d in range(dim):
                sums[r, d] = 0.0
            n += 1
        for d in range(dim):
            sums[r, d] += grads[q, d]
    for r in range(n):
        slot_of[rows[r]] = -1
    return n


@_jit
def adagrad_rows(table, accum, rows, grad, n, lr, row_weights):
    """Row-wise Adagrad on the distinct rows rows[:n] with their summed gradients grad[:n]
    (kernels.scatter_adagrad's step). Row 0 (PAD) is never updated."""
    for r in range(n):
        adagrad_row(table, accum, rows[r], grad[r], lr, row_weights)


class RowGradient:
    """grad(titles, shows, b, allowed, n, scale, order) -> (loss_sum, rows, row_grad): the
    batch's summed loss and the gradient of every distinct token row it uses, from the
    current table, nothing applied. As CompiledStep, but each example's loss is weighted
    by `scale` instead of 1 / b (1 / the global batch, when this is one rank's share of it);
    `order` ([b, C]) ranks the candidates when they are random (hard=False). The rows and
    gradients returned are this thread's work arrays: read them before its next call."""

    def __init__(self, table: np.ndarray, k: int, margin: float, hard: bool = True,
                 generator: torch.Generator | None = None):
        self.table, self.k, self.margin, self.hard, self.generator = table, k, float(margin), hard, generator
        self._local = threading.local()

    def _work(self, size: int) -> dict:
        """This thread's work arrays, for `size` token occurrences (grown, never shrunk)."""
        w = getattr(self._local, "work", None)
        if w is None:
            w = self._local.work = {"slot_of": np.full(len(self.table), -1, np.int32), "size": -1}
        if w["size"] < size:
            size = max(size, 2 * w["size"])
            w.update(size=size, occ_slot=np.empty(size, np.int32), counts=np.empty(size, np.int64),
                     occ_title=np.empty(size, np.int32), occ_w=np.empty(size, np.float32),
                     rows=np.empty(size, np.int64),
                     grad=np.empty((size, self.table.shape[1]), np.float32))
        return w

    def __call__(self, titles, shows: np.ndarray, b: int, allowed, n: int, scale: float,
                 order: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
        dim = self.table.shape[1]
        if b == 0:
            return 0.0, np.empty(0, np.int64), np.empty((0, dim), np.float32)
        weights = titles.weights if titles.weights is not None else np.ones(len(titles.tokens), np.float32)
        allowed = allowed.numpy() if isinstance(allowed, torch.Tensor) else allowed
        uniq, slots = np.unique(shows, return_inverse=True)
        slots = slots.reshape(-1)
        t = len(uniq)
        u, norms = np.empty((t, dim), np.float32), np.empty(t, np.float32)
        unit_title_sums(self.table, titles.tokens, titles.start, titles.length, weights, uniq, u, norms)
        bag, bag_norm = np.empty((b, dim), np.float32), np.empty(b, np.float32)
        context_bags(u, slots, b, n, bag, bag_norm)
        scores = torch.from_numpy(bag).mm(torch.from_numpy(u[slots[b * n:]]).T).numpy()
        if order is None:
            order = scores if self.hard else torch.rand(scores.shape, generator=self.generator).numpy()
        d_u, d_sums = np.empty((t, dim), np.float32), np.empty((t, dim), np.float32)
        loss = triplet_grad(u, norms, slots, b, n, bag, bag_norm, scores, order, allowed,
                            self.k, self.margin, d_u, d_sums)
        if scale != 1.0 / b:                        # triplet_grad weighs each example 1 / b
            d_sums *= np.float32(scale * b)
        occ = int(titles.length[uniq].sum())
        work = self._work(occ)
        m = row_gradients(titles.tokens, titles.start, titles.length, weights, uniq, d_sums,
                          work["slot_of"], work["occ_slot"], work["counts"], work["occ_title"],
                          work["occ_w"], work["rows"], work["grad"])
        return float(loss) * b, work["rows"][:m], work["grad"][:m]
