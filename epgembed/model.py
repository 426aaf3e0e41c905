"""The model: one lookup table of token vectors; a title is the unit-length sum of its rows.

Imports only torch. Everything here is a small pure function or a thin nn.Module, so the
math can be tested against hand-worked values:

    titles  = TitleEncoder(V, D)(ids[B, L])          # [B, D], rows of unit length
    bag     = bag_of(titles_of_context[B, N-1, D])   # normalized mean of normalized titles
    loss    = margin_ranking_loss(bag, pos, negs, mask, margin)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PAD_ID = 0


class TitleEncoder(nn.Module):
    """Sparse embedding table (PAD row zero, never updated); title = normalized sum."""

    def __init__(self, vocab_size: int, dim: int, init_std: float = 0.01,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, dim, padding_idx=PAD_ID, sparse=True)
        with torch.no_grad():
            self.emb.weight.normal_(0.0, init_std, generator=generator)
            self.emb.weight[PAD_ID].zero_()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.emb(ids).sum(dim=-2), dim=-1, eps=1e-12)


def title_vectors(table: torch.Tensor, ids: torch.Tensor,
                  weights: torch.Tensor | None = None) -> torch.Tensor:
    """Normalized (weighted) sum of the rows `ids` ([..., L], PAD=0 -> zero row) of `table`."""
    rows = F.embedding(ids, table, padding_idx=PAD_ID)
    if weights is not None:
        rows = rows * weights.unsqueeze(-1)
    return F.normalize(rows.sum(dim=-2), dim=-1, eps=1e-12)


def bag_of(vectors: torch.Tensor) -> torch.Tensor:
    """Bag of documents: normalized mean over axis -2 of already normalized vectors."""
    return F.normalize(vectors.mean(dim=-2), dim=-1, eps=1e-12)


def margin_ranking_loss(bag: torch.Tensor, pos: torch.Tensor, negs: torch.Tensor,
                        mask: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean over examples of the sum over used negatives of max(0, margin - pos + neg).

    bag, pos: [B, D]; negs: [B, K, D]; mask: [B, K] bool, True where a negative is used.
    """
    pos_score = (bag * pos).sum(-1, keepdim=True)                    # [B, 1]
    neg_score = torch.bmm(negs, bag.unsqueeze(-1)).squeeze(-1)         # [B, K]
    losses = torch.clamp(margin - pos_score + neg_score, min=0.0) * mask
    return losses.sum(-1).mean()


def select_negatives(bag: torch.Tensor, candidates: torch.Tensor, allowed: torch.Tensor,
                     k: int, hard: bool = True,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick k negatives per example from a shared candidate pool with ONE matmul.

    bag: [B, D]; candidates: [C, D]; allowed: [B, C] bool (candidate is from other
    categories). hard=True takes the k highest-scoring allowed candidates (the likeliest
    margin violators); hard=False takes k random allowed ones. Returns (index [B, k],
    valid [B, k] bool).
    """
    with torch.no_grad():
        if hard:
            scores = bag @ candidates.T                                   # [B, C]
        else:
            scores = torch.rand(allowed.shape, generator=generator)
        scores = scores.masked_fill(~allowed, float("-inf"))
        k = min(k, candidates.shape[0])
        top, idx = scores.topk(k, dim=1)
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


def scale_sparse_grad_(grad: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Multiply each row of a sparse COO gradient by its token's weight, in place.

    Vectorized: the weight table is indexed with the gradient's row indices. Works on
    uncoalesced gradients too (scaling is linear, so duplicates add up correctly).
    """
    if not grad.is_sparse:
        raise ValueError("expected a sparse gradient (nn.Embedding(sparse=True))")
    rows = grad._indices()[0]
    grad._values().mul_(weights[rows].unsqueeze(-1).to(grad.dtype))
    return grad


# --------------------------------------------------------------------------- fused path
# The same forward pass and loss as above, with the gradient derived by hand so that a
# step touches only the rows of the tokens in the batch: no autograd graph, no sparse
# COO tensors, one index_add_ into the touched rows.

def trim_padding(ids: torch.Tensor) -> torch.Tensor:
    """Drop trailing all-PAD columns of a padded [M, L] batch (sums are unchanged)."""
    return ids[:, : padded_width(ids)]


def padded_width(ids: torch.Tensor) -> int:
    width = int((ids != PAD_ID).sum(dim=1).max()) if ids.numel() else 0
    return max(width, 1)


def _unit(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    norm = x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return x / norm, norm


def _unit_backward(unit: torch.Tensor, norm: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Gradient through x -> x / |x| (unit = x / |x|)."""
    return (grad - unit * (unit * grad).sum(-1, keepdim=True)) / norm


def fused_triplet_grad(table: torch.Tensor, ids: torch.Tensor, b: int, n: int,
                       allowed: torch.Tensor, k: int, margin: float, hard: bool = True,
                       generator: torch.Generator | None = None,
                       weights: torch.Tensor | None = None):
    """Loss and per-row gradient of one leave-one-out batch.

    ids: padded [b*(n-1) + b + C, L] token ids: b*(n-1) context titles (example-major),
    then b positives, then C shared negative candidates. allowed: [b, C] bool.
    weights: optional [same shape as ids] per-token weights of the sums.
    Returns (loss, rows, grad_rows): grad_rows[i] is dLoss/dtable[rows[i]].
    """
    dim = table.shape[1]
    mask = ids != PAD_ID
    flat = ids[mask]
    seg = mask.nonzero()[:, 0]
    w = weights[mask].unsqueeze(-1) if weights is not None else None
    gathered = table[flat] if w is None else table[flat] * w
    sums = torch.zeros(ids.shape[0], dim, dtype=table.dtype).index_add_(0, seg, gathered)
    v, v_norm = _unit(sums)
    ctx = v[: b * (n - 1)].view(b, n - 1, dim)
    pos = v[b * (n - 1): b * n]
    cand = v[b * n:]
    bag, bag_norm = _unit(ctx.mean(dim=1))
    idx, valid = select_negatives(bag, cand, allowed, k, hard=hard, generator=generator)
    negs = cand[idx]                                                  # [b, k, D]
    pos_score = (bag * pos).sum(-1, keepdim=True)
    neg_score = torch.bmm(negs, bag.unsqueeze(-1)).squeeze(-1)
    raw = (margin - pos_score + neg_score) * valid
    loss = raw.clamp_min(0).sum(-1).mean()
    active = ((raw > 0) & valid).to(table.dtype) / b                 # dLoss / dneg_score
    act_sum = active.sum(-1, keepdim=True)
    d_bag = torch.bmm(active.unsqueeze(1), negs).squeeze(1) - act_sum * pos
    d_pos = -act_sum * bag
    d_cand = torch.zeros_like(cand).index_add_(
        0, idx.reshape(-1), (active.unsqueeze(-1) * bag.unsqueeze(1)).reshape(-1, dim))
    d_mean = _unit_backward(bag, bag_norm, d_bag) / (n - 1)
    d_ctx = d_mean.unsqueeze(1).expand(b, n - 1, dim).reshape(-1, dim)
    d_v = torch.cat([d_ctx, d_pos, d_cand])
    d_sums = _unit_backward(v, v_norm, d_v)
    rows, inverse = torch.unique(flat, return_inverse=True)
    d_tokens = d_sums[seg] if w is None else d_sums[seg] * w
    grad_rows = torch.zeros(len(rows), dim, dtype=table.dtype).index_add_(0, inverse, d_tokens)
    return loss, rows, grad_rows


def rowwise_adagrad_(table: torch.Tensor, accum: torch.Tensor, rows: torch.Tensor,
                     grad_rows: torch.Tensor, lr: float, weights: torch.Tensor | None = None,
                     eps: float = 1e-10) -> None:
    """Scale each touched row's gradient by its token weight, then a row-wise Adagrad step
    (one accumulator per row, as StarSpace does); only `rows` are read or written."""
    if weights is not None:
        grad_rows = grad_rows * weights[rows].unsqueeze(-1)
    acc = accum[rows] + grad_rows.pow(2).mean(-1)
    accum[rows] = acc
    table[rows] -= lr * grad_rows / (acc.sqrt() + eps).unsqueeze(-1)
    table[PAD_ID] = 0.0
