"""How the ranks of a data-parallel run share one step's row gradients (torch.distributed,
gloo): every rank ends with the same distinct rows and the same summed gradients, bit for
bit, so the same Adagrad step keeps the tables identical.

- "allgather" (the default): each rank sends its rows once, as one [m, 1 + D] float32
  message (the row id's int32 bits in column 0, padded to the largest rank's m), and every
  rank sums the gathered rows in rank order. At 2 ranks it moves the least: each rank
  sends its own rows, m x (4 + 4 D) bytes; but that grows with the ranks, (K - 1) x m.
- "union": the ids first (all-gathered), then one dense all-reduce over the union U of the
  touched rows: 2 (K - 1) / K x U x 4 D bytes per rank (ring), which stays below 2 x U
  however many ranks there are: the better one once K x m outgrows 2 U.
- torch's own all-reduce of a sparse COO tensor was measured and left out: gloo gathers
  every rank's indices and values (the bytes of "allgather"), then torch coalesces them,
  which took a third longer (de_magenta, 220 steps: 3.7 s against 2.8 s).

Each returns (rows, grads, loss): distinct rows, their summed gradients, the batch's summed
loss over every rank; `Traffic` counts what this rank sent (bytes as the collectives move
them: a ring all-gather sends K - 1 times its share, a ring all-reduce 2 (K - 1) / K times
the tensor; bench/distributed.py checks the figure against the kernel's count of bytes
written) and the time spent.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.distributed as dist

from epgembed.build.model.rowgrad import merge_rows


@dataclass
class Traffic:
    steps: int = 0
    bytes_sent: int = 0        # by this rank, as the collectives move them
    rows: int = 0              # rows this rank computed, summed over steps
    applied: int = 0           # distinct rows every rank applied (the union), summed
    seconds: float = 0.0       # in the exchange (waiting for the slowest rank included)

    def summary(self) -> dict:
        per = max(self.steps, 1)
        return {**asdict(self), "seconds": round(self.seconds, 3),
                "bytes_per_step": round(self.bytes_sent / per), "rows_per_step": round(self.rows / per, 1),
                "applied_per_step": round(self.applied / per, 1)}


class Exchange:
    """exchange(rows, grad, loss) -> (rows, grads, loss) over the default process group."""

    def __init__(self, method: str, world: int, vocab: int):
        if method not in METHODS:
            raise ValueError(f"unknown exchange {method!r} (choose from {', '.join(METHODS)})")
        self.method, self.world, self.vocab = method, world, vocab
        self.traffic = Traffic()
        self._slot_of = np.full(vocab, -1, np.int32)

    def __call__(self, rows: np.ndarray, grad: np.ndarray, loss: float):
        t0 = time.perf_counter()
        out_rows, out_grad, total, sent = METHODS[self.method](self, rows, grad, loss)
        tr = self.traffic
        tr.steps += 1
        tr.bytes_sent += sent
        tr.rows += len(rows)
        tr.applied += len(out_rows)
        tr.seconds += time.perf_counter() - t0
        return out_rows, out_grad, total

    def _heads(self, n: int, loss: float) -> tuple[list[int], float, int]:
        """Every rank's row count and the summed loss (one small all-gather)."""
        heads = [torch.empty(2, dtype=torch.float64) for _ in range(self.world)]
        dist.all_gather(heads, torch.tensor([n, loss], dtype=torch.float64))
        counts = [int(h[0]) for h in heads]
        return counts, float(sum(float(h[1]) for h in heads)), 16 * (self.world - 1)


def _allgather(ex: Exchange, rows, grad, loss):
    counts, total, sent = ex._heads(len(rows), loss)
    m, dim = max(counts), grad.shape[1]
    mine = np.zeros((m, dim + 1), np.float32)
    mine.view(np.int32)[: len(rows), 0] = rows          # the id's bits, never a float op
    mine[: len(rows), 1:] = grad
    parts = [torch.empty((m, dim + 1)) for _ in range(ex.world)]
    dist.all_gather(parts, torch.from_numpy(mine))
    got = np.concatenate([p.numpy()[:c] for p, c in zip(parts, counts)])
    out_rows, sums = np.empty(len(got), np.int64), np.empty((len(got), dim), np.float32)
    n = merge_rows(got.view(np.int32)[:, 0], got[:, 1:], ex._slot_of, out_rows, sums)
    return out_rows[:n], sums[:n], total, sent + (ex.world - 1) * mine.nbytes


def _union(ex: Exchange, rows, grad, loss):
    counts, total, sent = ex._heads(len(rows), loss)
    m, dim = max(counts), grad.shape[1]
    ids = np.full(m, -1, np.int64)
    ids[: len(rows)] = rows
    parts = [torch.empty(m, dtype=torch.int64) for _ in range(ex.world)]
    dist.all_gather(parts, torch.from_numpy(ids))
    union = np.unique(np.concatenate([p.numpy()[:c] for p, c in zip(parts, counts)]))
    dense = np.zeros((len(union), dim), np.float32)
    dense[np.searchsorted(union, rows)] = grad
    dist.all_reduce(torch.from_numpy(dense))
    ring = 2 * (ex.world - 1) * dense.nbytes // ex.world
    return union, dense, total, sent + (ex.world - 1) * ids.nbytes + ring


METHODS = {"allgather": _allgather, "union": _union}
