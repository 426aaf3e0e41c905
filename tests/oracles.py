"""Test oracles of the training math, in plain autograd (no hand-derived gradient).

The package trains with kernels.CompiledStep (fused.FusedStep is its readable statement in
torch ops); these are the textbook forms both are checked against: a sparse nn.Embedding
table, the title vector as F.embedding + sum + normalize, the loss written directly, and a
step that lets autograd find the gradient and a torch optimizer (Adagrad or SparseAdam)
apply it.

    step = autograd_step(TitleEncoder(V, D), row_weights, cfg, generator, optimizer="adagrad")
    loss = step(titles, shows, b, allowed, n)
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from epgembed.config import TrainConfig
from epgembed.build.model.fused import pick_negatives
from epgembed.text.tokenize import PAD_ID
from epgembed.build.model.sampling import PackedTitles


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
        return autograd_title_vectors(self.emb.weight, ids)


def autograd_title_vectors(table: torch.Tensor, ids: torch.Tensor,
                           weights: torch.Tensor | None = None) -> torch.Tensor:
    """Normalized (weighted) sum of the rows `ids` ([..., L], PAD=0 -> zero row) of `table`."""
    rows = F.embedding(ids, table, padding_idx=PAD_ID, sparse=True)   # sparse grad when trained
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
    """fused.pick_negatives on the scores of bags [B, D] x candidates [C, D] (one matmul)."""
    with torch.no_grad():
        return pick_negatives(bag @ candidates.T, allowed, k, hard, generator)


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


def padded(titles: PackedTitles, shows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(ids [len(shows), L] int64, weights or None) of packed titles, PAD after each title's
    tokens, L the longest of them."""
    lengths = titles.length[shows]
    width = max(1, int(lengths.max())) if len(shows) else 1
    cols = np.arange(width)
    mask = cols[None, :] < lengths[:, None]
    at = (titles.start[shows][:, None] + cols[None, :])[mask]
    ids = np.zeros((len(shows), width), np.int64)
    ids[mask] = titles.tokens[at]
    if titles.weights is None:
        return ids, None
    weights = np.zeros((len(shows), width), np.float32)
    weights[mask] = titles.weights[at]
    return ids, weights


def autograd_step(encoder: TitleEncoder, row_weights: torch.Tensor | None, cfg: TrainConfig,
                  generator: torch.Generator | None = None, optimizer: str = "adagrad"):
    """step(titles, shows, b, allowed, n) -> batch loss, by autograd and a torch optimizer
    ("adagrad": element-wise Adagrad; "sparse_adam"). row_weights scale each row's gradient."""
    table = encoder.emb.weight
    opt = (torch.optim.Adagrad(encoder.parameters(), lr=cfg.lr) if optimizer == "adagrad"
           else torch.optim.SparseAdam(list(encoder.parameters()), lr=cfg.lr))

    def step(titles, shows: np.ndarray, b: int, allowed, n: int) -> float:
        ids, tw = padded(titles, shows)
        vecs = autograd_title_vectors(table, torch.from_numpy(ids),
                                      None if tw is None else torch.from_numpy(tw))
        bag = bag_of(vecs[: b * (n - 1)].view(b, n - 1, -1))
        pos, cand = vecs[b * (n - 1): b * n], vecs[b * n:]
        idx, valid = select_negatives(bag, cand, torch.as_tensor(allowed), cfg.max_negatives,
                                      hard=cfg.hard_negatives, generator=generator)
        loss = margin_ranking_loss(bag, pos, cand[idx], valid, cfg.margin)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if row_weights is not None:
            scale_sparse_grad_(table.grad, row_weights)
        opt.step()
        return float(loss.detach())
    return step


def random_titles(weighted: bool, shows: int = 40, vocab: int = 60, seed: int = 0) -> tuple[PackedTitles, int]:
    """Seeded random titles of 1-7 tokens (ids 1..vocab-1, weights 0.2-1 when `weighted`),
    packed, for the step tests; and the vocabulary size."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((shows, 7), np.int64)
    w = np.zeros(ids.shape, np.float32)
    for s in range(shows):
        k = rng.integers(1, 8)
        ids[s, :k] = rng.integers(1, vocab, k)
        w[s, :k] = rng.uniform(0.2, 1.0, k)
    return PackedTitles(ids, w if weighted else None), vocab
