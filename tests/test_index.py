"""The Annoy index and the exact neighbour table: tiny hand-made vectors with a known answer,
a seeded build, and the table answering catalog titles exactly like an exhaustive search."""
from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import TINY_CONFIG
from epgembed.artifact.bundle import load_model, read_manifest
from epgembed.config import IndexConfig
import epgembed.model.vectors
from epgembed.index.serve import open_index, query_item
from epgembed.index.clustered import clustered_neighbours
from epgembed.index.build import build_index, neighbour_table, sampled_recall
from epgembed.model.vectors import top_k
from epgembed.pipeline import train_model

pytestmark = pytest.mark.integration


def circle(degrees: list[float]) -> np.ndarray:
    return np.array([[math.cos(math.radians(d)), math.sin(math.radians(d))] for d in degrees], np.float32)


def test_exact_table_hand_worked(monkeypatch):
    v = circle([0, 10, 90, 180, 200])
    monkeypatch.setattr(epgembed.model.vectors, "SCORE_FLOATS", 2 * len(v))   # blocks of two rows
    ids, cos, info = neighbour_table(v, IndexConfig(neighbours=3))    # the seams are crossed
    assert info["method"] == "exact"
    assert ids.dtype == np.int32 and cos.dtype == np.float32 and ids.shape == (5, 3)
    assert ids[0].tolist() == [0, 1, 2]                  # itself, 10 degrees, 90 degrees
    assert np.allclose(cos[0], [1.0, math.cos(math.radians(10)), 0.0], atol=1e-6)
    assert ids[3].tolist() == [3, 4, 2]                  # 180: itself, 200, then 90 (cos 0 > cos 170)
    assert ids[4].tolist()[:2] == [4, 3]
    ids, cos = top_k(v, 50)                              # k past the catalog: every row once
    assert ids.shape == (5, 5) and sorted(ids[2].tolist()) == [0, 1, 2, 3, 4]
    assert np.all(np.diff(cos, axis=1) <= 1e-7)          # best first
    some, some_cos = top_k(v, 3, rows=np.array([3, 0]))  # only these rows' lists
    assert some.tolist() == [[3, 4, 2], [0, 1, 2]] and some_cos.shape == (2, 3)


def test_seeded_build_is_identical_and_answers_like_exact_search(tmp_path):
    v = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    cfg = IndexConfig(n_trees=10, seed=7)
    build_index(v, cfg, tmp_path / "a.ann")
    build_index(v, cfg, tmp_path / "b.ann")
    assert (tmp_path / "a.ann").read_bytes() == (tmp_path / "b.ann").read_bytes()
    index = open_index(tmp_path / "a.ann", 16)
    table, cos = top_k(v, 10)
    for i in (0, 150, 299):                              # exhaustive search_k: Annoy is exact
        got, scores = query_item(index, i, 10, search_k=300 * 10)
        assert got == table[i].tolist() and np.allclose(scores, cos[i], atol=1e-5)


def test_catalog_titles_are_answered_from_the_table_exactly(tiny_model_dir):
    model = load_model(tiny_model_dir)
    assert read_manifest(tiny_model_dir)["neighbours"] == min(len(model), IndexConfig().neighbours)
    exhaustive = load_model(tiny_model_dir)
    exhaustive.neighbours, exhaustive.search_k = None, len(model) * 100
    for i in range(len(model)):
        for kw in ({}, {"offset": 3}, {"include_self": True}, {"category": "sport"}, {"min_score": 0.5}):
            a, b = model.related_to_id(i, 5, **kw), exhaustive.related_to_id(i, 5, **kw)
            assert [h.score for h in a.related] == pytest.approx([h.score for h in b.related], abs=1e-5)
            last = a.related[-1].score if a.related else 0.0   # ids agree except among tied scores
            assert {h.id for h in a.related if h.score > last + 1e-5} <= {h.id for h in b.related}


def test_past_the_exact_limit_the_table_is_clustered_or_none(tiny_dump, tmp_path):
    cfg = TINY_CONFIG.replace(train={"epochs": 1}, index={"neighbours_max_shows": 10})
    train_model([tiny_dump], tmp_path / "c", cfg, threads=1)
    m = read_manifest(tmp_path / "c")
    assert m["neighbours"] == 49 and m["neighbour_table"]["method"] == "clustered"
    assert 0.0 < m["neighbour_table"]["recall_at_10"] <= 1.0
    assert load_model(tmp_path / "c").neighbours is not None
    train_model([tiny_dump], tmp_path / "m", cfg.replace(index={"neighbours_probe": 0}), threads=1)
    assert read_manifest(tmp_path / "m")["neighbours"] == 0 and not (tmp_path / "m" / "neighbours.npy").exists()
    model = load_model(tmp_path / "m")
    assert model.neighbours is None and len(model.related_to_id(0, 5).related) == 5   # Annoy alone


def blobs(n_per: int, centres: int, dim: int = 16, spread: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(0)
    c = rng.standard_normal((centres, dim))
    v = np.repeat(c, n_per, axis=0) + spread * rng.standard_normal((centres * n_per, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_clustered_table_probing_every_cluster_is_exact():
    v = blobs(40, 10)
    exact_ids, exact_cos = top_k(v, 12)
    ids, cos = clustered_neighbours(v, 12, probe=10_000)       # every cluster probed: all pairs
    assert np.allclose(cos, exact_cos, atol=1e-6)
    assert sampled_recall(v, ids, samples=400) == 1.0


def test_clustered_table_on_separated_groups_finds_the_group():
    """Tight, far-apart groups: probing a few clusters is enough; every cosine is exact."""
    v = blobs(30, 40)                                           # 1200 rows, 138 clusters
    ids, cos = clustered_neighbours(v, 11, probe=8)              # itself + 10 others
    assert np.allclose(cos, np.einsum("nd,nkd->nk", v, v[ids]), atol=1e-5)
    assert np.all(np.diff(cos, axis=1) <= 1e-6)
    same_group = (ids // 30) == (np.arange(len(v)) // 30)[:, None]
    assert same_group.mean() > 0.99
    assert sampled_recall(v, ids) > 0.95


def test_clustered_table_fills_rows_whose_probed_clusters_are_too_small():
    """probe 1 on tight groups of 30 asking for 40 neighbours: the probed cluster cannot fill
    the list, so those rows are completed exactly (no -1 left, cosines exact and ordered)."""
    v = blobs(30, 8)
    ids, cos = clustered_neighbours(v, 40, probe=1)
    exact_ids, exact_cos = top_k(v, 40)
    assert (ids >= 0).all() and (ids[:, 0] == np.arange(len(v))).all()
    assert np.allclose(cos[:, 1:], exact_cos[:, 1:], atol=1e-5)


def test_clustered_table_is_the_same_for_any_number_of_threads():
    v = blobs(30, 40)
    one = clustered_neighbours(v, 11, probe=4, chunk=100)
    two = clustered_neighbours(v, 11, probe=4, chunk=100, threads=2)
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])
