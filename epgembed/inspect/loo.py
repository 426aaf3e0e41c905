"""Leave-one-token-out: a pair's score with each token of a title left out (numpy only).

A title's vector (model.title_vectors) is v(s) = unit(unit(s) - c) for the (weighted) sum
s = r_1 + ... + r_m of its token rows and the model's center c (v = unit(s) without one).
Removing token j gives v(s - r_j), so the pair's score without it is v(s - r_j) . t for
the neighbour's vector t; the `drop` (score - without) is how much of the score that token
carried. The additive `share` r_j . t / (|s| |unit(s) - c|) sums, with the center's part
-c . t / |unit(s) - c|, to the score. `leave_one_out` is the ONE place this math lives: the
CLI, the HTML report, the outlier scan and the service all go through it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from epgembed.query.vectors import EPS


@dataclass
class LeaveOneOut:
    score: np.ndarray     # [B, K]     cos(title vector, other)
    without: np.ndarray   # [B, L, K]  the score with token l removed (0 when nothing is left)
    share: np.ndarray     # [B, L, K]  additive part of the score carried by token l
    center: np.ndarray    # [B, K]     the center's part (score = share.sum(1) + center)

    @property
    def drop(self) -> np.ndarray:  # [B, L, K]
        return self.score[:, None, :] - self.without


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is (numerically) zero: an empty title scores 0."""
    ok = den > EPS
    return np.where(ok, num / np.where(ok, den, 1.0), 0.0)


@dataclass
class TitleStats:
    """What leave-one-out needs of each title alone (no partner): B titles, L positions."""
    norm: np.ndarray      # [B]     |s|
    rest: np.ndarray      # [B, L]  |s - r_l| (= |s| at padding)
    s_c: np.ndarray       # [B]     s . c
    r_c: np.ndarray       # [B, L]  r_l . c
    c_c: float            # c . c

    def take(self, idx: np.ndarray, width: int | None = None) -> "TitleStats":
        w = self.rest.shape[1] if width is None else width
        return TitleStats(self.norm[idx], self.rest[idx, :w], self.s_c[idx], self.r_c[idx, :w], self.c_c)


def title_stats(rows: np.ndarray, mask: np.ndarray, center: np.ndarray | None = None) -> TitleStats:
    """rows [B, L, D] weighted token rows, masked by mask [B, L]; center [D] or None."""
    rows = np.where(mask[..., None], np.asarray(rows, dtype=np.float64), 0.0)
    c = np.zeros(rows.shape[-1]) if center is None else np.asarray(center, dtype=np.float64)
    s = rows.sum(axis=1)
    return TitleStats(np.linalg.norm(s, axis=-1), np.linalg.norm(s[:, None, :] - rows, axis=-1),
                      s @ c, rows @ c, float(c @ c))


def pair_scores(st: TitleStats, r_t: np.ndarray, c_t: np.ndarray) -> LeaveOneOut:
    """Leave-one-out scores from the titles' stats and the dot products of their token rows
    with the K vectors t they are scored against: r_t [B, L, K] = r_l . t (0 at padding),
    c_t [B, K] = c . t. With u = unit(s), |u| = 1: v(s) . t = (u . t - c . t) / g where
    g = sqrt(1 - 2 u . c + c . c), and s . t is the sum of the r_l . t."""
    r_t = np.asarray(r_t, dtype=np.float64)
    s_t = r_t.sum(axis=1)                                                      # [B, K]
    n = st.norm
    g = np.sqrt(np.maximum(1.0 - 2.0 * _div(st.s_c, n) + st.c_c, 0.0))        # [B]
    score = np.where(n[:, None] > EPS, _div(_div(s_t, n[:, None]) - c_t, g[:, None]), 0.0)
    g_rest = np.sqrt(np.maximum(1.0 - 2.0 * _div(st.s_c[:, None] - st.r_c, st.rest) + st.c_c, 0.0))
    u_t = _div(s_t[:, None, :] - r_t, st.rest[:, :, None])                     # [B, L, K]
    without = np.where(st.rest[:, :, None] > EPS, _div(u_t - c_t[:, None, :], g_rest[:, :, None]), 0.0)
    share = r_t * _div(np.ones_like(n), n * g)[:, None, None]
    return LeaveOneOut(score, without, share, np.where(n[:, None] > EPS, -_div(c_t, g[:, None]), 0.0))


def leave_one_out(rows: np.ndarray, mask: np.ndarray, others: np.ndarray,
                  center: np.ndarray | None = None) -> LeaveOneOut:
    """Scores of B titles against K vectors each, with each token left out in turn.

    rows [B, L, D]: weighted token rows of each title (padding anywhere, masked by mask
    [B, L]); others [B, K, D]: the vectors to score against; center [D] or None. Padding
    positions get without = score and share = 0 (removing nothing changes nothing).
    """
    rows = np.where(mask[..., None], np.asarray(rows, dtype=np.float64), 0.0)
    others_t = np.asarray(others, dtype=np.float64).transpose(0, 2, 1)        # [B, D, K]
    c = np.zeros(rows.shape[-1]) if center is None else np.asarray(center, dtype=np.float64)
    return pair_scores(title_stats(rows, mask, center), np.matmul(rows, others_t), np.matmul(c, others_t))


def token_rows(table: np.ndarray, ids: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """[..., L, D] float64 rows `ids` [..., L] of `table`, times their weights (PAD id 0 -> 0)."""
    w = (ids != 0) if weights is None else np.where(ids != 0, weights, 0.0)
    return np.asarray(table[ids], dtype=np.float64) * w[..., None]


def collapse(score: np.ndarray, drops: np.ndarray, rare: np.ndarray) -> np.ndarray:
    """Largest share of a (positive) score carried by one rare token, in [0, 1].

    score [...]; drops [..., L] of the tokens; rare [..., L] bool. 0 for scores <= 0.
    """
    worst = np.where(rare, drops, 0.0).max(axis=-1, initial=0.0)
    return np.clip(_div(worst, np.maximum(score, 0.0)), 0.0, 1.0)
