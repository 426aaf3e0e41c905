"""The row side of the training step (numba kernels, all in this file: jit.py says why): a
batch's token occurrences grouped by row, each row's summed gradient, and the compiled
step's update `scatter_adagrad` (kernels.CompiledStep), which sums each row's gradient and
applies the row-wise Adagrad step in one pass.

Data-parallel training (distributed.py) splits that pass: `row_gradients` writes each
distinct row's summed gradient (the same group_by_row and row_gradient) instead of applying
it, `merge_rows` sums the rows several ranks sent in a fixed order, and every rank applies
fused.rowwise_adagrad_, the same step in torch ops (one rank gives CompiledStep's table to
float rounding: tests/test_distributed_step.py).
"""
from __future__ import annotations

import numpy as np

from epgembed.build.model.jit import jit


@jit(inline="always")
def group_by_row(tokens, start, length, weights, titles, slot_of, occ_slot, counts, occ_title,
                 occ_w, rows):
    """The token occurrences of the titles grouped by row (a counting sort): rows[:n] are
    the distinct rows in order of first use, slot_of[rows[r]] = r (the caller puts -1 back),
    and row r's occurrences are occ_title / occ_w[counts[r - 1]: counts[r]] (from 0 for r = 0):
    the title index and the token's weight in it. Returns n."""
    m = 0
    n_rows = 0
    for i in range(len(titles)):                    # 1: distinct rows, occurrences per row
        s = titles[i]
        for j in range(start[s], start[s] + length[s]):
            t = tokens[j]
            r = slot_of[t]
            if r < 0:
                r = n_rows
                slot_of[t] = r
                rows[r] = t
                counts[r] = 0
                n_rows += 1
            counts[r] += 1
            occ_slot[m] = r
            m += 1
    total = 0                                       # 2: counting sort of occurrences by row
    for r in range(n_rows):
        c = counts[r]
        counts[r] = total
        total += c
    m = 0
    for i in range(len(titles)):
        s = titles[i]
        for j in range(start[s], start[s] + length[s]):
            r = occ_slot[m]
            q = counts[r]
            occ_title[q] = i
            occ_w[q] = weights[j]
            counts[r] = q + 1
            m += 1
    return n_rows


@jit(inline="always")
def row_gradient(occ_title, occ_w, lo, hi, d_sums, grad):
    """grad = the sum of d_sums[title] x weight over one row's occurrences [lo, hi)."""
    dim = d_sums.shape[1]
    for d in range(dim):
        grad[d] = 0.0
    for q in range(lo, hi):
        w = occ_w[q]
        i = occ_title[q]
        for d in range(dim):
            grad[d] += w * d_sums[i, d]


@jit
def scatter_adagrad(table, accum, tokens, start, length, weights, titles, d_sums, lr,
                    row_weights, slot_of, occ_slot, counts, occ_title, occ_w, rows, grad):
    """Row-wise Adagrad on the rows of the titles' tokens: each distinct row's gradient is
    summed from the titles that use it (d_sums[i] times the token's weight in title i),
    then the row takes the step -lr * row_weight / sqrt(accum) * grad.

    slot_of: [V] int32, -1 everywhere on entry and on exit (the caller's scratch).
    Returns the number of distinct rows updated. Row 0 (PAD) is never updated."""
    n_rows = group_by_row(tokens, start, length, weights, titles, slot_of, occ_slot, counts,
                          occ_title, occ_w, rows)
    dim = table.shape[1]
    lo = 0
    for r in range(n_rows):                         # 3: per row: sum, accumulate, step
        row_gradient(occ_title, occ_w, lo, counts[r], d_sums, grad)
        lo = counts[r]
        t = rows[r]
        slot_of[t] = -1
        if t == 0:
            continue
        sq = np.float32(0.0)
        for d in range(dim):
            sq += grad[d] * grad[d]
        acc = accum[t] + sq / np.float32(dim)
        accum[t] = acc
        step = np.float32(-lr * row_weights[t] / (np.sqrt(acc) + 1e-10))
        for d in range(dim):
            table[t, d] += step * grad[d]
    return n_rows


@jit
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


@jit
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
