import numpy as np
import pytest

from epgembed.build.model.sampling import LeaveOneOutSampler

pytestmark = pytest.mark.unit

# shows 0-3 in category 0, 4-6 in category 1, 7 in both 1 and 2, 8 in category 2, 9 unlabelled
CATS = [[0], [0], [0], [0], [1], [1], [1], [1, 2], [2], []]


def test_context_shares_the_category_and_never_is_the_positive():
    s = LeaveOneOutSampler(CATS, 3, n=5, rng=np.random.default_rng(0))
    assert len(s) == 10                                  # memberships, show 7 twice
    seen = 0
    for _ in range(20):
        for context, pos, cat in s.batches(4):
            for ctx, p, c in zip(context, pos, cat):
                assert c in CATS[p]
                assert all(c in CATS[x] for x in ctx)
                assert p not in ctx
                seen += 1
    assert seen == 200


def test_negative_candidates_never_share_a_category():
    s = LeaveOneOutSampler(CATS, 3, n=3, rng=np.random.default_rng(1))
    cand = s.candidates(50)
    assert 9 not in cand                                 # unlabelled shows are no negatives
    pos = np.array([0, 7, 8])
    shares = s.shares_category(pos, cand)
    for i, p in enumerate(pos):
        for j, q in enumerate(cand):
            assert shares[i, j] == bool(set(CATS[p]) & set(CATS[q]))


def test_sampling_is_seeded():
    a = LeaveOneOutSampler(CATS, 3, 4, np.random.default_rng(7))
    b = LeaveOneOutSampler(CATS, 3, 4, np.random.default_rng(7))
    for (c1, p1, _), (c2, p2, _) in zip(a.batches(3), b.batches(3)):
        assert np.array_equal(c1, c2) and np.array_equal(p1, p2)


def test_packed_titles_give_each_show_its_tokens_once():
    from epgembed.build.model.sampling import PackedTitles
    ids = np.array([[5, 6, 0, 0], [7, 0, 0, 0], [8, 9, 10, 0]])
    w = np.where(ids > 0, np.array([[1, .5, 0, 0], [1, 0, 0, 0], [1, 1, .5, 0]]), 0).astype(np.float32)
    p = PackedTitles(ids, w)
    tokens, offsets, weights, slots = p.pack(np.array([2, 0, 2, 2]))
    assert tokens.tolist() == [5, 6, 8, 9, 10]          # shows 0 and 2, each once
    assert offsets.tolist() == [0, 2]
    assert weights.tolist() == [1, .5, 1, 1, .5]
    assert slots.tolist() == [1, 0, 1, 1]
