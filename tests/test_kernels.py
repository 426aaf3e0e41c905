"""The compiled (numba) step: hand-worked kernels, and the same update as the torch step."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from epgembed.config import TrainConfig
from epgembed.build.model.kernels import CompiledStep, hardest_allowed, scatter_adagrad, unit_title_sums
from epgembed.query.vectors import title_vectors
from epgembed.build.model.train import init_table, make_step
from oracles import random_titles

pytestmark = pytest.mark.unit


def test_hardest_allowed_takes_the_top_k_allowed_best_first():
    scores = np.array([0.9, 0.1, 0.5, 0.7, 0.3, 0.8], np.float32)
    allowed = np.array([False, True, True, True, True, True])
    out = np.empty(3, np.int64)
    assert hardest_allowed(scores, allowed, 3, out) == 3
    assert out.tolist() == [5, 3, 2]                 # 0.9 is not allowed
    few = np.array([False, True, False, False, False, False])
    assert hardest_allowed(scores, few, 3, out) == 1 and out[0] == 1


def test_unit_title_sums_are_the_model_title_vectors():
    titles, vocab = random_titles(weighted=True)
    table = np.random.default_rng(3).standard_normal((vocab, 6)).astype(np.float32)
    table[0] = 0
    shows = np.array([4, 0, 17, 4])
    out, norms = np.empty((len(shows), 6), np.float32), np.empty(len(shows), np.float32)
    unit_title_sums(table, titles.tokens, titles.start, titles.length, titles.weights, shows, out, norms)
    for i, s in enumerate(shows):
        span = slice(titles.start[s], titles.start[s] + titles.length[s])
        tokens, weights = titles.tokens[span], titles.weights[span]
        assert np.allclose(out[i], title_vectors(table, tokens, weights), atol=1e-6)
        assert norms[i] == pytest.approx(np.linalg.norm(weights @ table[tokens]), rel=1e-5)


def _scatter(table, accum, tokens, lengths, weights, d_sums, lr, row_weights):
    tokens = np.asarray(tokens, np.int32)
    length = np.asarray(lengths, np.int64)
    start = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    slot_of = np.full(len(table), -1, np.int32)
    n = len(tokens)
    rows = scatter_adagrad(table, accum, tokens, start, length, np.asarray(weights, np.float32),
                           np.arange(len(length)), np.asarray(d_sums, np.float32), lr,
                           np.asarray(row_weights, np.float32), slot_of, np.empty(n, np.int32),
                           np.empty(n, np.int64), np.empty(n, np.int32), np.empty(n, np.float32),
                           np.empty(n, np.int64), np.empty(table.shape[1], np.float32))
    assert (slot_of == -1).all()                     # the scratch is left clean for the next step
    return rows


def test_scatter_adagrad_hand_worked():
    """Title 0 = rows [1, 3], title 1 = rows [3 (weight 0.5), 0 (PAD)].
    d_sums: title 0 [2, 0], title 1 [0, 4]. Row 1: g = [2, 0], accum 2, step 0.1 / sqrt(2).
    Row 3: g = [2, 0] + 0.5 * [0, 4] = [2, 2], accum 4, row weight 2: step 2 * 0.1 / 2."""
    table = np.ones((4, 2), np.float32)
    accum = np.zeros(4, np.float32)
    rows = _scatter(table, accum, [1, 3, 3, 0], [2, 2], [1, 1, 0.5, 1], [[2, 0], [0, 4]],
                    0.1, [1, 1, 1, 2])
    assert rows == 3                                  # rows 1, 3 and PAD were touched
    assert table[1].tolist() == pytest.approx([1 - 0.2 / np.sqrt(2), 1])
    assert table[3].tolist() == pytest.approx([0.8, 0.8])
    assert table[0].tolist() == [1, 1] and table[2].tolist() == [1, 1]   # PAD and untouched
    assert accum.tolist() == pytest.approx([0, 2, 0, 4])


@pytest.mark.parametrize("n, weighted, hard", [(3, True, True), (5, False, True), (2, True, False)])
def test_compiled_step_updates_the_table_as_the_torch_step(n, weighted, hard):
    """The numba step and the torch "fused" step, from the same table and batches, give
    the same losses and the same table (float32 rounding apart), over several steps so the
    Adagrad accumulators are compared too."""
    titles, vocab = random_titles(weighted)
    b, c = 6, 12
    rng = np.random.default_rng(1)
    cfg = TrainConfig(dim=8, n=n, max_negatives=4, margin=0.5, lr=0.3, hard_negatives=hard)
    row_weights = torch.from_numpy(rng.uniform(1.0, 3.0, vocab).astype(np.float32))
    tables, losses = [], []
    for engine in ("fused", "compiled"):
        table = init_table(vocab, cfg.dim, 0.5, torch.Generator().manual_seed(0))
        step = make_step(table, row_weights, replace(cfg, engine=engine), torch.Generator().manual_seed(7))
        batch_rng = np.random.default_rng(2)
        out = []
        for _ in range(4):
            shows = batch_rng.integers(0, len(titles), b * n + c)     # repeats on purpose
            allowed = torch.from_numpy(batch_rng.random((b, c)) > 0.3)
            out.append(step(titles, shows, b, allowed, n))
        losses.append(out)
        tables.append(table.numpy().copy())
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert np.abs(tables[1] - tables[0]).max() < 1e-5
    start = init_table(vocab, cfg.dim, 0.5, torch.Generator().manual_seed(0))
    assert np.abs(tables[1] - start.numpy()).max() > 0.01      # it did move
    assert (tables[1][0] == 0).all()


def test_compiled_step_from_several_threads_at_once_is_the_same_as_one_after_the_other():
    """Hogwild! workers share one step: two threads stepping at the same time on disjoint
    token rows must leave exactly the table (and accumulators) of the same steps run one
    after the other. Scratch arrays shared between the threads would mix their updates."""
    import threading
    half, b, n, c, steps, dim = 200, 128, 3, 256, 60, 64   # big batches: the threads' kernels overlap
    parts, batches = [], []
    for side in range(2):
        titles, _ = random_titles(weighted=True, shows=600, vocab=half, seed=side)
        titles.tokens[titles.tokens > 0] += side * (half - 1)       # side 1: rows half..2*half-2
        rng = np.random.default_rng(10 + side)
        parts.append(titles)
        batches.append([(rng.integers(0, len(titles), b * n + c), rng.random((b, c)) > 0.3)
                        for _ in range(steps)])

    def fresh():
        table = np.random.default_rng(0).standard_normal((2 * half, dim)).astype(np.float32)
        table[0] = 0
        return CompiledStep(table, np.zeros(2 * half, np.float32), np.ones(2 * half, np.float32), 4, 0.5, 0.3)

    def run(step, side, barrier=None):
        if barrier is not None:
            barrier.wait()
        for shows, allowed in batches[side]:
            step(parts[side], shows, b, allowed, n)

    one_by_one = fresh()
    run(one_by_one, 0)
    run(one_by_one, 1)
    together, barrier = fresh(), threading.Barrier(2)
    threads = [threading.Thread(target=run, args=(together, side, barrier)) for side in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert np.array_equal(together.table, one_by_one.table)
    assert np.array_equal(together.accum, one_by_one.accum)
    assert not np.array_equal(one_by_one.table, fresh().table)        # it did move


def test_merge_top_k_keeps_the_best_others_after_the_row_itself():
    """Row 0 sees candidates in two blocks; its list keeps itself first, then the 3 best
    others in order; its own id among the candidates is skipped."""
    from epgembed.build.model.kernels import merge_top_k, sort_top_k
    ids = np.full((2, 4), -1, np.int32)
    best = np.full((2, 4), -np.inf, np.float32)
    ids[:, 0] = [0, 1]
    rows = np.array([0], np.int32)
    merge_top_k(np.array([[0.9, 0.2, 0.5]], np.float32), rows, np.array([0, 5, 6], np.int32), ids, best)
    merge_top_k(np.array([[0.7, 0.1, 0.6]], np.float32), rows, np.array([7, 8, 9], np.int32), ids, best)
    sort_top_k(ids, best)
    assert ids[0].tolist() == [0, 7, 9, 6]              # 0.9 was row 0 itself
    assert best[0, 1:].tolist() == pytest.approx([0.7, 0.6, 0.5])
    assert ids[1].tolist() == [1, -1, -1, -1]             # untouched row
