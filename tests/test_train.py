"""The training loop: both engines, the autograd oracle, Hogwild! workers, inverse-frequency
scaling."""
import functools
from dataclasses import replace

import numpy as np
import pytest
import torch

from epgembed.config import TrainConfig
from epgembed.query.vectors import title_vectors
from epgembed.build.model.sampling import LeaveOneOutSampler, PackedTitles
from epgembed.build.model.train import example_batches, run_epoch, train, validation_precision
from oracles import TitleEncoder, autograd_step

pytestmark = pytest.mark.integration


def _data(seed=0, shows=120, words=6):
    """Shows of 4 categories; each category has its own words, plus shared noise words
    and description words (weight 0.5): a category is learnable from the tokens."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((shows, 6), np.int64)
    w = np.zeros((shows, 6), np.float32)
    cats = []
    for s in range(shows):
        c = s % 4
        own = 1 + c * words + rng.integers(0, words, 2)
        noise = 1 + 4 * words + rng.integers(0, 10, 2)
        desc = 1 + 4 * words + 10 + c * 3 + rng.integers(0, 3, 1)
        ids[s, :5] = [*own, *noise, *desc]
        w[s, :5] = [1, 1, 1, 1, .5]
        cats.append([c])
    return ids, w, cats, 1 + 4 * words + 10 + 12


CFG = TrainConfig(dim=16, epochs=8, min_examples=0, n=3, neg_candidates=32, max_negatives=5, batch_size=16,
                  val_fraction=0.2, patience=8, seed=3)


def _val(table, ids, w, cats, val_shows):
    labelled = np.array([s for s in range(len(cats)) if s not in set(val_shows)])
    return validation_precision(title_vectors(table, ids, w), cats, val_shows, labelled)


@pytest.mark.parametrize("engine", ["compiled", "fused"])
def test_both_engines_learn_the_categories_with_weighted_tokens(engine):
    ids, w, cats, vocab = _data()
    r = train(ids, cats, 4, replace(CFG, engine=engine), vocab, token_weights=w)
    assert r.examples > 0 and r.history[-1]["loss"] < r.history[0]["loss"]
    assert _val(r.embeddings, ids, w, cats, r.val_shows) > 0.7      # random would be ~0.25
    assert np.all(r.embeddings[0] == 0)                  # PAD row stays zero


@pytest.mark.parametrize("optimizer", ["adagrad", "sparse_adam"])
def test_the_autograd_oracle_learns_the_categories_too(optimizer):
    """The textbook step (autograd + a torch optimizer) on the same batches learns what the
    engines learn: the leave-one-out examples and the loss are right, whoever steps."""
    ids, w, cats, vocab = _data()
    held_out = list(range(0, len(cats), 5))
    train_cats = [[] if s in held_out else c for s, c in enumerate(cats)]
    sampler = LeaveOneOutSampler(train_cats, 4, CFG.n, np.random.default_rng(0))
    gen = torch.Generator().manual_seed(0)
    encoder = TitleEncoder(vocab, CFG.dim, CFG.init_std, generator=gen)
    cfg = replace(CFG, lr=0.05) if optimizer == "sparse_adam" else CFG
    step = functools.partial(autograd_step(encoder, None, cfg, gen, optimizer), n=CFG.n)
    losses = [run_epoch(step, PackedTitles(ids, w), example_batches(sampler, cfg))[0] for _ in range(8)]
    assert losses[-1] < losses[0]
    assert _val(encoder.emb.weight.detach().numpy(), ids, w, cats, held_out) > 0.7


def test_hogwild_workers_train_as_well_and_count_every_example():
    ids, w, cats, vocab = _data()
    one = train(ids, cats, 4, CFG, vocab, token_weights=w)
    two = train(ids, cats, 4, replace(CFG, workers=2), vocab, token_weights=w)
    assert [h["examples"] for h in two.history] == [h["examples"] for h in one.history]
    assert _val(two.embeddings, ids, w, cats, two.val_shows) > 0.7


def test_run_epoch_reraises_a_worker_failure():
    calls = []

    def step(titles, shows, b, allowed):
        calls.append(b)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return 1.0
    batches = ((np.arange(4), 2, None) for _ in range(50))
    with pytest.raises(RuntimeError, match="boom"):
        run_epoch(step, None, batches, workers=2)
    assert run_epoch(lambda *a: 0.5, None, ((np.arange(4), 2, None) for _ in range(5)), 2) == (5.0, 10)


def test_inverse_frequency_scaling_changes_the_trained_table():
    """Regression: with row-wise Adagrad a weight on the gradient cancels out; the weight
    must act on the step, so switching it off must change the result."""
    ids, w, cats, vocab = _data()
    cfg = replace(CFG, epochs=2, val_fraction=0.0, inv_freq_power=1.0)
    on = train(ids, cats, 4, cfg, vocab, token_weights=w)
    off = train(ids, cats, 4, replace(cfg, inv_freq=False), vocab, token_weights=w)
    rare = np.flatnonzero((on.token_counts > 0) & (on.token_counts <= np.median(on.token_counts[on.token_counts > 0])))
    assert len(rare) and not np.allclose(on.embeddings[rare], off.embeddings[rare])


def test_validation_over_only_the_shows_it_reads_gives_the_same_figure():
    """validate() builds the vectors of the labelled and the validation shows only (1M
    shows: about 800 MB less at its peak); the figure is the one over every show's vector."""
    from epgembed.build.model.train import _validation_rows, rows_vectors
    ids, w, cats, vocab = _data()
    table = np.random.default_rng(0).standard_normal((vocab, 16)).astype(np.float32)
    table[0] = 0
    val = [3, 10, 41, 77, 90]
    labelled = np.array([s for s, c in enumerate(cats) if c and s not in set(val)][::2])  # some unlabelled
    full = validation_precision(title_vectors(table, ids, w), cats, val, labelled)
    rows, sub_cats, val_rows, among = _validation_rows(cats, labelled, val)
    lean = validation_precision(rows_vectors(table, ids, w, rows, block=7), sub_cats, val_rows, among)
    assert lean == full and 0 < full < 1
