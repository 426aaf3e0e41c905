"""The training step in torch ops: the readable statement of the model's loss and of its
gradient, derived by hand (METHOD.md, "Training").

One leave-one-out batch: n-1 context titles form a bag (the normalized mean of their title
vectors) that predicts the positive title; the hardest allowed candidates of a shared pool
are the negatives; the loss is the sum over them of max(0, margin - pos + neg). The step
touches only the rows of the batch's tokens: no autograd graph, no sparse COO tensors, one
index_add_ into the touched rows, then row-wise Adagrad (one accumulator per row, as
StarSpace does). The production engine, kernels.CompiledStep, is the same math compiled and
is tested against `FusedStep`; TrainConfig.engine = "fused" trains with this one.

    step = FusedStep(table, row_weights, k, margin, lr)
    loss = step(titles, shows, b, allowed, n)
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import record_function

from epgembed.text.tokenize import PAD_ID


def pick_negatives(scores: torch.Tensor, allowed: torch.Tensor, k: int, hard: bool = True,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The k negatives of each example among candidates scored [B, C] (bags x candidates, one
    matmul): hard=True the k highest-scoring allowed candidates (the likeliest margin
    violators), hard=False k random allowed ones. allowed [B, C] bool. Returns (index [B, k],
    valid [B, k] bool: False where fewer than k are allowed)."""
    if not hard:
        scores = torch.rand(allowed.shape, generator=generator)
    scores = scores.masked_fill(~allowed, float("-inf"))
    top, idx = scores.topk(min(k, scores.shape[1]), dim=1)
    return idx, torch.isfinite(top)


def inverse_frequency_weights(counts: torch.Tensor, power: float, cap: float) -> torch.Tensor:
    """Per-token gradient weight: (c_ref / count) ** power, bounded to [1, cap].

    c_ref is the median count of tokens that occur, so common tokens keep weight 1
    (their signal is kept) and rare tokens get up to `cap` times the step. Tokens never
    seen get weight 1 (they receive no gradient anyway).
    """
    counts = counts.to(torch.float64)
    seen = counts > 0
    if not bool(seen.any()):
        return torch.ones_like(counts, dtype=torch.float32)
    ref = counts[seen].median()
    w = torch.ones_like(counts)
    w[seen] = (ref / counts[seen]).pow(power).clamp(1.0, cap)
    return w.to(torch.float32)


# The forward pass and loss above the model's title vectors (model.title_vectors, packed),
# with the gradient derived by hand so that a step touches only the rows of its tokens.
def _unit(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    norm = x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return x / norm, norm


def _unit_backward(unit: torch.Tensor, norm: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Gradient through x -> x / |x| (unit = x / |x|)."""
    return (grad - unit * (unit * grad).sum(-1, keepdim=True)) / norm


def packed_sums(table: torch.Tensor, tokens: torch.Tensor, offsets: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
    """Sum of the rows of each packed title: title i is tokens[offsets[i]:offsets[i+1]]
    (no PAD anywhere), optionally weighted per token. One embedding_bag call."""
    return F.embedding_bag(tokens, table, offsets, mode="sum", per_sample_weights=weights)


def fused_triplet_grad(table: torch.Tensor, tokens: torch.Tensor, offsets: torch.Tensor,
                       slots: torch.Tensor, b: int, n: int, allowed: torch.Tensor, k: int,
                       margin: float, hard: bool = True,
                       generator: torch.Generator | None = None,
                       weights: torch.Tensor | None = None):
    """Loss and per-row gradient of one leave-one-out batch over packed titles.

    The batch's distinct titles are packed once (tokens/offsets/weights, as `packed_sums`)
    and every title vector is computed once, however often the batch uses it.
    slots: [b*(n-1) + b + C] index into those titles: b*(n-1) context titles
    (example-major), then b positives, then C shared negative candidates. allowed: [b, C].
    Returns (loss, rows, grad_rows): grad_rows[i] is dLoss/dtable[rows[i]].
    """
    with record_function("forward"):
        loss, saved = _fused_forward(table, tokens, offsets, slots, b, n, allowed, k, margin,
                                     hard, generator, weights)
    with record_function("backward"):
        rows, grad_rows = _fused_backward(*saved, tokens, offsets, slots, b, n, weights)
    return loss, rows, grad_rows


def _fused_forward(table, tokens, offsets, slots, b, n, allowed, k, margin, hard, generator,
                   weights):
    dim = table.shape[1]
    u, u_norm = _unit(packed_sums(table, tokens, offsets, weights))
    v = u[slots]
    ctx = v[: b * (n - 1)].view(b, n - 1, dim)
    pos = v[b * (n - 1): b * n]
    cand = v[b * n:]
    bag, bag_norm = _unit(ctx.mean(dim=1))
    scores = bag @ cand.T                                             # [b, C], one matmul
    idx, valid = pick_negatives(scores, allowed, k, hard, generator)
    pos_score = (bag * pos).sum(-1, keepdim=True)
    raw = (margin - pos_score + scores.gather(1, idx)) * valid
    loss = raw.clamp_min(0).sum(-1).mean()
    active = ((raw > 0) & valid).to(table.dtype) / b                 # dLoss / dneg_score
    return loss, (u, u_norm, pos, cand, bag, bag_norm, scores, idx, active)


def _fused_backward(u, u_norm, pos, cand, bag, bag_norm, scores, idx, active,
                    tokens, offsets, slots, b, n, weights):
    dim = u.shape[1]
    act_sum = active.sum(-1, keepdim=True)
    d_scores = torch.zeros_like(scores).scatter_(1, idx, active)     # idx distinct per row
    d_bag = d_scores @ cand - act_sum * pos
    d_v = torch.empty(len(slots), dim, dtype=u.dtype)
    d_mean = _unit_backward(bag, bag_norm, d_bag) / (n - 1)
    d_v[: b * (n - 1)] = d_mean.unsqueeze(1).expand(b, n - 1, dim).reshape(-1, dim)
    d_v[b * (n - 1): b * n] = -act_sum * bag
    d_v[b * n:] = d_scores.T @ bag
    d_u = torch.zeros_like(u).index_add_(0, slots, d_v)
    d_sums = _unit_backward(u, u_norm, d_u)
    return _bag_transpose_matmul(tokens, offsets, weights, d_sums)


def _bag_transpose_matmul(tokens: torch.Tensor, offsets: torch.Tensor,
                          weights: torch.Tensor | None, d_sums: torch.Tensor):
    """Backward of `packed_sums`: (rows, A^T @ d_sums) for the distinct token rows, where
    A[title, row] is the (weighted) count of the row in the title. A^T is a bag per row
    over the titles that use it: one sort groups the tokens by row, then the same
    embedding_bag kernel as the forward pass sums each row's title gradients (no
    per-token gradient is ever materialized)."""
    lengths = torch.diff(offsets, append=torch.tensor([len(tokens)], dtype=offsets.dtype))
    title_of = torch.repeat_interleave(torch.arange(len(offsets), dtype=tokens.dtype), lengths)
    sorted_tokens, perm = torch.sort(tokens)
    rows, counts = torch.unique_consecutive(sorted_tokens, return_counts=True)
    starts = torch.zeros(len(rows), dtype=tokens.dtype)
    torch.cumsum(counts[:-1], 0, out=starts[1:])
    return rows, packed_sums(d_sums, title_of[perm], starts,
                             None if weights is None else weights[perm])


def rowwise_adagrad_(table: torch.Tensor, accum: torch.Tensor, rows: torch.Tensor,
                     grad_rows: torch.Tensor, lr: float, weights: torch.Tensor | None = None,
                     eps: float = 1e-10) -> None:
    """Row-wise Adagrad (one accumulator per row, as StarSpace does) on the touched rows
    only, each row's step multiplied by its token weight (inverse-frequency scaling).

    The weight multiplies the step, not the gradient: Adagrad divides a row's gradient by
    the root of its own accumulated squares, so a constant factor on the gradient would
    cancel and rare tokens would get no larger steps at all."""
    acc = accum[rows] + torch.linalg.vector_norm(grad_rows, dim=-1).square_() / grad_rows.shape[1]
    accum[rows] = acc
    step = acc.sqrt_().add_(eps).reciprocal_().mul_(-lr)             # -lr / sqrt(accum)
    if weights is not None:
        with record_function("inverse_frequency_scaling"):
            step.mul_(weights[rows])
    table.index_add_(0, rows.long(), grad_rows * step.unsqueeze(-1))  # rows are distinct
    table[PAD_ID] = 0.0


class FusedStep:
    """step(titles, shows, b, allowed, n) -> batch loss: one leave-one-out step on `table`
    ([V, D] float32, updated in place) over the titles `shows` of `titles` (b*(n-1) context,
    b positives, then the candidates; allowed [b, C]), as kernels.CompiledStep.
    row_weights [V]: each row's inverse-frequency step factor; generator: draws the random
    negatives when hard=False."""

    def __init__(self, table: torch.Tensor, row_weights: torch.Tensor, k: int, margin: float,
                 lr: float, hard: bool = True, generator: torch.Generator | None = None):
        self.table, self.row_weights = table, row_weights
        self.accum = torch.zeros(table.shape[0], dtype=table.dtype)
        self.k, self.margin, self.lr, self.hard, self.generator = k, margin, lr, hard, generator

    def __call__(self, titles, shows: np.ndarray, b: int, allowed, n: int) -> float:
        allowed = torch.as_tensor(allowed)
        with record_function("pack"):
            tokens, offsets, tw, slots = (None if x is None else torch.from_numpy(x)
                                          for x in titles.pack(shows))
        with torch.no_grad():
            loss, rows, grad = fused_triplet_grad(self.table, tokens, offsets, slots, b, n, allowed,
                                                  self.k, self.margin, self.hard, self.generator, tw)
            with record_function("optimizer"):
                rowwise_adagrad_(self.table, self.accum, rows, grad, self.lr, self.row_weights)
        return float(loss)
