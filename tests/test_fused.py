"""The training math on hand-worked values: the autograd oracles (tests/oracles.py), and the
fused torch step (epgembed/build/model/fused.py) against them."""
import math

import numpy as np
import pytest
import torch

from epgembed.build.model.fused import fused_triplet_grad, inverse_frequency_weights, rowwise_adagrad_
from epgembed.build.model.sampling import PackedTitles
from oracles import (TitleEncoder, autograd_title_vectors, bag_of, margin_ranking_loss, padded,
                     scale_sparse_grad_, select_negatives)

pytestmark = pytest.mark.unit


def test_padded_batch_equals_per_title_loop():
    torch.manual_seed(0)
    enc = TitleEncoder(20, 8, init_std=1.0)
    titles = [[3, 5, 7], [2], [4, 4, 9, 11, 12]]
    ids = torch.zeros(3, 5, dtype=torch.long)
    for i, t in enumerate(titles):
        ids[i, : len(t)] = torch.tensor(t)
    batch = enc(ids)
    for i, t in enumerate(titles):
        v = enc.emb.weight[t].sum(0)
        assert torch.allclose(batch[i], v / v.norm(), atol=1e-6)
    assert torch.equal(enc.emb.weight[0], torch.zeros(8))


def test_oracle_pads_packed_titles():
    ids = np.array([[5, 6, 0, 0], [7, 0, 0, 0], [8, 9, 10, 0]])
    w = np.where(ids > 0, np.array([[1, .5, 0, 0], [1, 0, 0, 0], [1, 1, .5, 0]]), 0).astype(np.float32)
    ids2, w2 = padded(PackedTitles(ids, w), np.array([1, 0]))
    assert ids2.tolist() == [[7, 0], [5, 6]] and w2.tolist() == [[1, 0], [1, .5]]


def test_title_vector_and_bag_hand_worked():
    table = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [1.0, 1.0]])
    v = autograd_title_vectors(table, torch.tensor([[1, 2, 0]]))
    assert torch.allclose(v, torch.tensor([[0.6, 0.8]]))
    bag = bag_of(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]))
    assert torch.allclose(bag, torch.tensor([[1 / math.sqrt(2), 1 / math.sqrt(2)]]))


def test_margin_loss_hand_worked():
    bag = torch.tensor([[1.0, 0.0]])
    pos = torch.tensor([[0.8, 0.6]])                      # pos score 0.8
    negs = torch.tensor([[[0.7, 0.71], [0.1, 0.99], [0.9, 0.43]]])  # 0.7, 0.1, 0.9
    mask = torch.tensor([[True, True, False]])
    # max(0, 0.2 - 0.8 + 0.7) = 0.1 ; max(0, 0.2 - 0.8 + 0.1) = 0 ; third masked out
    loss = margin_ranking_loss(bag, pos, negs, mask, 0.2)
    assert loss.item() == pytest.approx(0.1, abs=1e-6)


def test_select_negatives_takes_hardest_allowed():
    bag = torch.tensor([[1.0, 0.0]])
    cand = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.99, 0.0], [0.1, 0.9]])
    allowed = torch.tensor([[True, True, False, True]])
    idx, valid = select_negatives(bag, cand, allowed, 2)
    assert idx.tolist() == [[0, 1]] and valid.all()
    idx, valid = select_negatives(bag, cand, allowed, 4)
    assert valid.tolist() == [[True, True, True, False]]


def test_inverse_frequency_weights_hand_worked():
    counts = torch.tensor([0, 1, 4, 16, 16, 100])   # median of seen = 16
    w = inverse_frequency_weights(counts, power=0.5, cap=3.0)
    assert w.tolist() == pytest.approx([1.0, 3.0, 2.0, 1.0, 1.0, 1.0])  # sqrt(16/1)=4 capped at 3


def test_gradient_scaling_multiplies_each_row_by_its_weight():
    enc = TitleEncoder(6, 3, init_std=1.0)
    ids = torch.tensor([[1, 2, 2], [3, 1, 0]])
    (enc(ids) * torch.arange(3.0)).sum().backward()
    plain = enc.emb.weight.grad.to_dense().clone()
    enc.zero_grad()
    (enc(ids) * torch.arange(3.0)).sum().backward()
    weights = torch.tensor([1.0, 2.0, 3.0, 0.5, 7.0, 9.0])
    scaled = scale_sparse_grad_(enc.emb.weight.grad, weights).to_dense()
    assert torch.allclose(scaled, plain * weights[:, None])
    assert torch.equal(scaled[0], torch.zeros(3))   # PAD got no gradient


def _batch(b=4, n=3, c=6, vocab=30, width=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (b * n + c, width), generator=g)
    ids[::2, -1] = 0                                    # some padding
    allowed = torch.rand(b, c, generator=g) > 0.3
    return ids, allowed


@pytest.mark.parametrize("n, weighted", [(3, False), (2, True), (5, True)])
def test_fused_gradient_equals_autograd(n, weighted):
    torch.manual_seed(1)
    b, k, margin = 4, 3, 0.9                            # large margin: most negatives active
    enc = TitleEncoder(30, 5, init_std=1.0)
    ids, allowed = _batch(b, n)
    w = None
    if weighted:                                        # title tokens 1, description words < 1
        w = torch.where(ids > 0, torch.rand(ids.shape, generator=torch.Generator().manual_seed(2)) + 0.1,
                        torch.zeros(ids.shape))
    vecs = autograd_title_vectors(enc.emb.weight, ids, w)
    bag = bag_of(vecs[: b * (n - 1)].view(b, n - 1, -1))
    cand = vecs[b * n:]
    idx, valid = select_negatives(bag, cand, allowed, k)
    loss = margin_ranking_loss(bag, vecs[b * (n - 1): b * n], cand[idx], valid, margin)
    loss.backward()
    expected = enc.emb.weight.grad.to_dense()
    # the fused path packs the batch's distinct titles once; ask for each twice
    packed = PackedTitles(ids.numpy(), None if w is None else w.numpy())
    order = np.concatenate([np.arange(len(ids)), np.arange(len(ids))])
    tokens, offsets, pw, slots = packed.pack(order)
    assert len(offsets) == len(ids) and len(slots) == 2 * len(ids)
    slots = torch.from_numpy(slots[: len(ids)])
    with torch.no_grad():
        f_loss, rows, grad = fused_triplet_grad(
            enc.emb.weight, torch.from_numpy(tokens), torch.from_numpy(offsets), slots, b, n,
            allowed, k, margin, weights=None if pw is None else torch.from_numpy(pw))
    dense = torch.zeros_like(expected)
    dense[rows] = grad
    assert f_loss.item() == pytest.approx(loss.item(), rel=1e-5)
    assert torch.allclose(dense, expected, atol=1e-5)
    assert expected.abs().sum() > 0


def test_rowwise_adagrad_touches_only_given_rows_and_applies_weights():
    table = torch.ones(5, 2)
    accum = torch.zeros(5)
    rows = torch.tensor([1, 3])
    grad = torch.tensor([[2.0, 2.0], [1.0, -1.0]])
    weights = torch.tensor([1.0, 0.5, 1.0, 2.0, 1.0])
    rowwise_adagrad_(table, accum, rows, grad, lr=0.1, weights=weights)
    # the accumulator sees the raw gradient; the weight multiplies the normalized step.
    # row 1: g = [2, 2], accum 4, step 0.5 * 0.1 * g / 2 = 0.05 ; row 3: g = [1, -1],
    # accum 1, step 2 * 0.1 * g / 1 = [0.2, -0.2]
    assert table[1].tolist() == pytest.approx([0.95, 0.95])
    assert table[3].tolist() == pytest.approx([0.8, 1.2])
    assert table[[0, 2, 4]].eq(torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])).all()
    assert accum.tolist() == pytest.approx([0, 4, 0, 1, 0])


def test_rowwise_adagrad_weight_survives_normalization():
    """A constant weight on a row must change its step (it would cancel if applied to the
    gradient before Adagrad's division)."""
    steps = []
    for weight in (1.0, 3.0):
        table, accum = torch.zeros(2, 2), torch.zeros(2)
        for _ in range(3):
            rowwise_adagrad_(table, accum, torch.tensor([1]), torch.tensor([[1.0, 0.0]]),
                             lr=0.1, weights=torch.tensor([1.0, weight]))
        steps.append(-table[1, 0].item())
    assert steps[1] == pytest.approx(3 * steps[0])
