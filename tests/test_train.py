"""The training loop: every engine, Hogwild! workers, inverse-frequency scaling."""
import numpy as np
import pytest
import torch

from epgembed.config import TrainConfig
from epgembed.sampling import PackedTitles
from epgembed.train import run_epoch, train, validation_precision


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


CFG = TrainConfig(dim=16, epochs=8, n=3, neg_candidates=32, max_negatives=5, batch_size=16,
                  val_fraction=0.2, patience=8, seed=3)


def _val(result, ids, w, cats):
    from epgembed.train import all_title_vectors
    vecs = all_title_vectors(torch.from_numpy(result.embeddings), PackedTitles(ids, w))
    labelled = np.array([s for s in range(len(cats)) if s not in set(result.val_shows)])
    return validation_precision(vecs, cats, result.val_shows, labelled)


@pytest.mark.parametrize("engine", ["compiled", "fused", "autograd"])
def test_every_engine_learns_the_categories_with_weighted_tokens(engine):
    ids, w, cats, vocab = _data()
    r = train(ids, cats, 4, CFG.__class__(**{**CFG.__dict__, "engine": engine}), vocab, token_weights=w)
    assert r.examples > 0 and r.history[-1]["loss"] < r.history[0]["loss"]
    assert _val(r, ids, w, cats) > 0.7                  # random would be ~0.25
    assert np.all(r.embeddings[0] == 0)                  # PAD row stays zero


def test_hogwild_workers_train_as_well_and_count_every_example():
    ids, w, cats, vocab = _data()
    one = train(ids, cats, 4, CFG, vocab, token_weights=w)
    two = train(ids, cats, 4, CFG.__class__(**{**CFG.__dict__, "workers": 2}), vocab, token_weights=w)
    assert [h["examples"] for h in two.history] == [h["examples"] for h in one.history]
    assert _val(two, ids, w, cats) > 0.7


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
    cfg = CFG.__class__(**{**CFG.__dict__, "epochs": 2, "val_fraction": 0.0, "inv_freq_power": 1.0})
    on = train(ids, cats, 4, cfg, vocab, token_weights=w)
    off = train(ids, cats, 4, cfg.__class__(**{**cfg.__dict__, "inv_freq": False}), vocab, token_weights=w)
    rare = np.flatnonzero((on.token_counts > 0) & (on.token_counts <= np.median(on.token_counts[on.token_counts > 0])))
    assert len(rare) and not np.allclose(on.embeddings[rare], off.embeddings[rare])
