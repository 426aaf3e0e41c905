"""The compiled step split into row gradients and an Adagrad step (model/rowgrad.py) and the
data-parallel step built on it (model/distributed.ShardStep), in one process: the table of
kernels.CompiledStep, and a batch's slices adding up to the whole batch."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from epgembed.config import TrainConfig
from epgembed.build.model.distributed import Group, RowGradient, ShardStep, shard_batch
from epgembed.build.model.kernels import CompiledStep
from epgembed.build.model.rowgrad import merge_rows
from oracles import random_titles

pytestmark = pytest.mark.unit

CFG = TrainConfig(dim=100, n=3, max_negatives=4, margin=0.5, lr=0.3)


def _batches(titles, b, n, c, steps=5, seed=2):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, len(titles), b * n + c), rng.random((b, c)) > 0.3) for _ in range(steps)]


def _table(vocab, dim):
    table = np.random.default_rng(0).standard_normal((vocab, dim)).astype(np.float32)
    table[0] = 0
    return table


class _Alone:
    """A group of one rank: its slice is the whole batch, the exchange gives back its rows."""
    rank, world = 0, 1

    def share(self, b):
        return 0, b

    def exchange(self, rows, grad, loss):
        return rows, grad, loss


def test_merge_rows_sums_equal_ids_in_order_of_first_appearance():
    slot_of = np.full(10, -1, np.int32)
    rows, sums = np.empty(4, np.int64), np.empty((4, 2), np.float32)
    ids = np.array([3, 1, 3, 7], np.int32)
    grads = np.array([[1, 2], [5, 5], [10, 20], [0, 1]], np.float32)
    n = merge_rows(ids, grads, slot_of, rows, sums)
    assert n == 3 and rows[:n].tolist() == [3, 1, 7]
    assert sums[:n].tolist() == [[11, 22], [5, 5], [0, 1]]
    assert (slot_of == -1).all()                       # the scratch is left clean


@pytest.mark.parametrize("hard", [True, False])
def test_one_rank_steps_as_the_compiled_step(hard):
    """Row gradients, then the Adagrad step on them, over several steps (so the accumulators
    count): the losses of kernels.CompiledStep and its table to float rounding (its step
    sums a row's squares in another order), random negatives drawn alike."""
    titles, vocab = random_titles(weighted=True)
    cfg = replace(CFG, hard_negatives=hard)
    weights = np.random.default_rng(1).uniform(1.0, 3.0, vocab).astype(np.float32)
    whole = CompiledStep(_table(vocab, cfg.dim), np.zeros(vocab, np.float32), weights, cfg.max_negatives,
                         cfg.margin, cfg.lr, hard, torch.Generator().manual_seed(7))
    split = ShardStep(_Alone(), torch.from_numpy(_table(vocab, cfg.dim)), torch.from_numpy(weights), cfg,
                      torch.Generator().manual_seed(7))
    for shows, allowed in _batches(titles, 6, cfg.n, 12):
        assert split(titles, shows, 6, allowed, cfg.n) == pytest.approx(whole(titles, shows, 6, allowed, cfg.n),
                                                                      rel=1e-5)
    assert np.abs(split.table.numpy() - whole.table).max() < 1e-5
    assert np.allclose(split.accum.numpy(), whole.accum, rtol=1e-5, atol=0)
    assert np.abs(whole.table - _table(vocab, cfg.dim)).max() > 0.01     # it did move


@pytest.mark.parametrize("world", [2, 3, 4])
def test_the_slices_of_a_batch_add_up_to_the_whole_batch(world):
    """What K ranks compute (each its Group.share of the examples, the candidates in full,
    each example weighted 1 / the whole batch) sums to the whole batch's loss and row
    gradients: the exchange's sum is the one-process step, up to the order of additions."""
    titles, vocab = random_titles(weighted=True)
    b, n, c = 7, CFG.n, 12
    shows, allowed = _batches(titles, b, n, c, steps=1)[0]
    grad = RowGradient(_table(vocab, CFG.dim), CFG.max_negatives, CFG.margin)
    loss, rows, whole = grad(titles, shows, b, allowed, n, 1.0 / b)
    expect = dict(zip(rows.tolist(), whole.copy()))
    total, summed, sizes = 0.0, {}, []
    for rank in range(world):
        lo, hi = Group(rank, world).share(b)
        sizes.append(hi - lo)
        mine = shard_batch(shows, b, n, lo, hi)
        part_loss, part_rows, part = grad(titles, mine, hi - lo, allowed[lo:hi], n, 1.0 / b)
        total += part_loss
        for r, g in zip(part_rows.tolist(), part):
            summed[r] = summed.get(r, 0) + g
    assert sum(sizes) == b and max(sizes) - min(sizes) <= 1
    assert total == pytest.approx(loss, rel=1e-6)
    assert set(summed) == set(expect)
    for r, g in expect.items():
        assert np.allclose(summed[r], g, atol=1e-6)
    assert any(np.abs(g).max() > 1e-3 for g in expect.values())        # not all zero
