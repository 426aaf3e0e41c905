"""The model's math on hand-worked values: a title's vector (weighted token sum, unit length,
centring) and exact top-k, the one definition every stage calls."""
import math

import numpy as np
import pytest

import epgembed.query.vectors as model_module
from epgembed.query.vectors import catalog_vectors, nearest_others, title_vectors, top_k
from epgembed.text.tokenize import PAD_ID

pytestmark = pytest.mark.unit

TABLE = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [1.0, 1.0]], np.float32)   # row 0: PAD


def test_title_vector_is_the_unit_weighted_sum_of_its_rows():
    assert title_vectors(TABLE, [1, 2]).tolist() == pytest.approx([0.6, 0.8])       # (3, 4) / 5
    # weights: 1 * (3, 0) + 0.75 * (0, 4) = (3, 3)
    assert title_vectors(TABLE, [1, 2], [1.0, 0.75]).tolist() == pytest.approx([math.sqrt(.5)] * 2)
    assert title_vectors(TABLE, [3]).tolist() == pytest.approx([math.sqrt(.5)] * 2)
    assert title_vectors(TABLE, [2, 2]).dtype == np.float32


def test_padding_and_empty_titles():
    ids = np.array([[1, 2, PAD_ID], [2, PAD_ID, PAD_ID], [PAD_ID, PAD_ID, PAD_ID]])
    weights = np.array([[1.0, 0.75, 9.0], [1, 5, 5], [1, 1, 1]])   # a weight on PAD counts nothing
    v = title_vectors(TABLE, ids, weights)
    assert v.shape == (3, 2)
    assert v[0].tolist() == pytest.approx([math.sqrt(.5)] * 2)
    assert v[1].tolist() == pytest.approx([0.0, 1.0])
    assert v[2].tolist() == [0.0, 0.0]                            # nothing to sum: a zero vector
    assert title_vectors(TABLE, []).tolist() == [0.0, 0.0]
    assert title_vectors(TABLE, ids[None]).shape == (1, 3, 2)      # any leading shape


def test_centring_subtracts_the_center_and_normalizes_again():
    # unit(3, 4) = (0.6, 0.8); minus (0.6, 0) = (0, 0.8) -> (0, 1)
    assert title_vectors(TABLE, [1, 2], center=np.array([0.6, 0.0])).tolist() == pytest.approx([0, 1])
    # a title without tokens: unit(0 - c)
    assert title_vectors(TABLE, [], center=np.array([0.6, 0.0])).tolist() == pytest.approx([-1, 0])


def test_catalog_vectors_are_centred_on_the_catalog_mean():
    ids = np.array([[1], [2], [3]])          # unit vectors (1, 0), (0, 1), (r, r) with r = 1/sqrt(2)
    r = 1 / math.sqrt(2)
    plain, none = catalog_vectors(TABLE, ids, centred=False)
    assert none is None and np.allclose(plain, [[1, 0], [0, 1], [r, r]])
    vectors, center = catalog_vectors(TABLE, ids)
    m = (1 + r) / 3                           # the mean of the three unit vectors, both axes
    assert center.tolist() == pytest.approx([m, m])
    d = math.hypot(1 - m, m)
    assert vectors[0].tolist() == pytest.approx([(1 - m) / d, -m / d])
    assert vectors[2].tolist() == pytest.approx([r, r])          # along the mean: keeps its direction
    # a query gets the catalog's own vector from the same tokens
    assert title_vectors(TABLE, [1], center=center).tolist() == pytest.approx(vectors[0].tolist())


V = np.array([[1, 0], [0.8, 0.6], [0.6, 0.8], [0, 1], [-1, 0]], np.float32)
# scores of row 0: 1, .8, .6, 0, -1; of row 3: 0, .6, .8, 1, 0


def test_top_k_hand_worked():
    ids, cos = top_k(V, 3)
    assert ids.dtype == np.int32 and cos.dtype == np.float32 and ids.shape == (5, 3)
    assert ids.tolist() == [[0, 1, 2], [1, 2, 0], [2, 1, 3], [3, 2, 1], [4, 3, 2]]   # itself first
    assert cos[0].tolist() == pytest.approx([1.0, 0.8, 0.6])
    others, cos = top_k(V, 2, skip_self=True)
    assert others[0].tolist() == [1, 2] and others[4].tolist() == [3, 2]
    assert cos[4].tolist() == pytest.approx([0.0, -0.6])
    assert top_k(V, 50)[0].shape == (5, 5) and top_k(V, 50, skip_self=True)[0].shape == (5, 4)


def test_top_k_of_some_rows_among_others_and_ties():
    ids, cos = top_k(V, 2, rows=[0, 3], among=[1, 2, 4])
    assert ids.tolist() == [[1, 2], [2, 1]]                         # ids into V, not into `among`
    # row 3 scores 0 with both 0 and 4: the tie at the 2nd place goes to the earlier row
    assert top_k(V, 2, rows=[3], among=[4, 0, 2])[0].tolist() == [[2, 4]]
    assert top_k(V, 2, rows=[3], among=[0, 2, 4])[0].tolist() == [[2, 0]]
    assert top_k(V, 3, rows=[3], skip_self=True)[0].tolist() == [[2, 1, 0]]
    same = np.ones((4, 2), np.float32) / math.sqrt(2)               # all tied: by id
    assert top_k(same, 2, skip_self=True)[0].tolist() == [[1, 2], [0, 2], [0, 1], [0, 1]]
    # `among` a run of rows (read as a view, no copy): the same answers as spelled out
    assert top_k(V, 2, rows=[0, 4], among=[1, 2, 3])[0].tolist() == [[1, 2], [3, 2]]
    assert top_k(V, 2, rows=[0, 4], among=np.arange(1, 4))[0].tolist() == [[1, 2], [3, 2]]
    assert top_k(V, 2, rows=[3], among=[3, 4], skip_self=True)[0].tolist() == [[4]]


def test_top_k_in_blocks_and_threads_is_the_same(monkeypatch):
    v = np.random.default_rng(0).standard_normal((60, 5)).astype(np.float32)
    want = top_k(v, 7, skip_self=True)
    monkeypatch.setattr(model_module, "SCORE_FLOATS", 2 * 60)        # blocks of two rows
    for threads in (1, 3):
        got = top_k(v, 7, skip_self=True, threads=threads)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    assert np.array_equal(want[0], np.argsort(-sims, axis=1, kind="stable")[:, :7])


def test_nearest_others_reads_the_table_and_searches_what_it_lacks():
    table, _ = top_k(V, 3)                      # each row's 3 nearest, itself included
    assert nearest_others(V, 2, table=table).tolist() == top_k(V, 2, skip_self=True)[0].tolist()
    poisoned = table.copy()
    poisoned[1] = [1, 4, 3]                     # a wrong list: read as it stands
    assert nearest_others(V, 2, table=poisoned)[1].tolist() == [4, 3]
    # among 0, 2, 3, 4: row 4's list (4, 3, 2) holds two of them; the others are searched
    got = nearest_others(V, 2, table=table, among=[0, 2, 3, 4])
    assert got.tolist() == [[2, 3], [3, 0], [2, 0], [3, 2]]
    assert nearest_others(V, 9, rows=[4]).tolist() == [[3, 2, 1, 0]]
