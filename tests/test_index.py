"""The Annoy index, the neighbour table and the search of unseen titles (exact, or the
cluster probe): tiny hand-made vectors with a known answer, seeded builds, the table and the
probe answering like an exhaustive search, and model folders with and without the probe's
files."""
from __future__ import annotations

import math

import numpy as np
import pytest

from guide import TINY_CONFIG
from epgembed.artifact.bundle import verify_files
from epgembed.artifact.manifest import ModelError, read_manifest
from epgembed.query.requests import Options
from epgembed.query.load import load_model
from epgembed.config import IndexConfig
import epgembed.query.vectors
from epgembed.query.annoy import open_index, query_item
from epgembed.build.index.clustered import clustered_neighbours, spherical_kmeans
from epgembed.build.index.build import build_index, neighbour_table, probe_recall, sampled_recall, write_search
from epgembed.query.probe import ClusterProbe, ExactSearch
from epgembed.query.vectors import top_k
from epgembed.build.pipeline import train_model

pytestmark = pytest.mark.integration


def search_recall(vectors: np.ndarray, search, k: int = 10, samples: int = 200, seed: int = 0) -> float:
    """The test's oracle: the share of the true k nearest other rows (exact search) that
    `search` finds for catalog rows taken as queries, each row itself left out of both lists."""
    n = len(vectors)
    rows = np.random.default_rng(seed).choice(n, size=min(samples, n), replace=False)
    truth, _ = top_k(vectors, k, rows=rows, skip_self=True)
    found = 0
    for r, t in zip(rows.tolist(), truth):
        ids, _ = search(np.asarray(vectors[r]), k + 1)
        found += len(set(t.tolist()) & set([i for i in ids if i != r][:k]))
    return float(found / max(1, truth.size))


def circle(degrees: list[float]) -> np.ndarray:
    return np.array([[math.cos(math.radians(d)), math.sin(math.radians(d))] for d in degrees], np.float32)


def test_exact_table_hand_worked(monkeypatch):
    v = circle([0, 10, 90, 180, 200])
    monkeypatch.setattr(epgembed.query.vectors, "SCORE_FLOATS", 2 * len(v))   # blocks of two rows
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
    assert read_manifest(tiny_model_dir).neighbours == min(len(model), IndexConfig().neighbours)
    exhaustive = load_model(tiny_model_dir)
    exhaustive.neighbours, exhaustive.search_k = None, len(model) * 100
    for i in range(len(model)):
        for kw in ({}, {"offset": 3}, {"include_self": True}, {"category": "sport"}, {"min_score": 0.5}):
            a, b = model.related_to_id(i, Options(k=5, **kw)), exhaustive.related_to_id(i, Options(k=5, **kw))
            assert [h.score for h in a.related] == pytest.approx([h.score for h in b.related], abs=1e-5)
            last = a.related[-1].score if a.related else 0.0   # ids agree except among tied scores
            assert {h.id for h in a.related if h.score > last + 1e-5} <= {h.id for h in b.related}


def test_past_the_exact_limit_the_table_is_clustered_or_none(tiny_dump, tmp_path):
    cfg = TINY_CONFIG.replace(train={"epochs": 1}, index={"neighbours_max_shows": 10})
    train_model([tiny_dump], tmp_path / "c", cfg, threads=1)
    m = read_manifest(tmp_path / "c")
    assert m.neighbours == 49 and m.neighbour_table.method == "clustered"
    assert 0.0 < m.neighbour_table.recall_at_10 <= 1.0
    assert load_model(tmp_path / "c").neighbours is not None
    train_model([tiny_dump], tmp_path / "m", cfg.replace(index={"neighbours_probe": 0}), threads=1)
    assert read_manifest(tmp_path / "m").neighbours == 0 and not (tmp_path / "m" / "neighbours.npy").exists()
    model = load_model(tmp_path / "m")
    assert model.neighbours is None and len(model.related_to_id(0, Options(k=5)).related) == 5   # Annoy alone


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


# ------------------------------------------------------------------ the search of unseen titles
def probe_of(v: np.ndarray, rows: int, seed: int = 0) -> ClusterProbe:
    centroids, order, bounds = spherical_kmeans(v, seed)
    return ClusterProbe(np.ascontiguousarray(v[order]), centroids, order, bounds, rows)


def test_probe_search_hand_made_clusters_far_apart():
    """Three tight groups on the axes of R^3 (+ a little of the other axes), a query near
    the second group: probing one cluster finds exactly the group, best first."""
    rng = np.random.default_rng(3)
    groups = [np.eye(3)[g] + 0.05 * rng.standard_normal((12, 3)) for g in range(3)]
    v = np.concatenate(groups).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    centroids, order, bounds = spherical_kmeans(v)
    assert len(centroids) == int(4 * math.sqrt(len(v)))
    search = ClusterProbe(np.ascontiguousarray(v[order]), centroids, order, bounds, rows=len(v))
    q = np.array([0.1, 1.0, 0.05], np.float32) / np.linalg.norm([0.1, 1.0, 0.05])
    ids, cos = search(q, 10)
    exact = np.argsort(-(v @ q), kind="stable")[:10]
    assert ids == exact.tolist() and set(ids) <= set(range(12, 24))          # the second group
    assert np.allclose(cos, v[exact] @ q, atol=1e-6) and np.all(np.diff(cos) <= 0)
    # one cluster per group: probing the single nearest cluster (a budget of 1 row) is enough
    c3, order3, bounds3 = _three_clusters(v)
    one = ClusterProbe(np.ascontiguousarray(v[order3]), c3, order3, bounds3, rows=1)
    assert one.clusters_for(q, 10).tolist() == [1]
    assert one(q, 10)[0] == exact.tolist()
    assert one(q, 30)[0] == np.argsort(-(v @ q), kind="stable")[:30].tolist()   # widened past 1


def _three_clusters(v: np.ndarray):
    owner = np.argmax(v, axis=1)                       # the group = the axis a row is nearest
    order = np.argsort(owner, kind="stable").astype(np.int32)
    bounds = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=3))]).astype(np.int32)
    return np.eye(3, dtype=np.float32), order, bounds


def test_probe_search_of_every_cluster_is_exact_search():
    v = np.random.default_rng(5).standard_normal((900, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    search, exact = probe_of(v, rows=len(v)), ExactSearch(v)
    for q in np.random.default_rng(6).standard_normal((20, 16)).astype(np.float32):
        for k in (1, 10, 900):
            a, b = search(q, k), exact(q, k)
            assert a[0] == b[0] and np.allclose(a[1], b[1], atol=1e-6)
    small = probe_of(v, rows=60)
    assert search_recall(v, small) == pytest.approx(probe_recall(v, small), abs=0.01)
    assert search_recall(v, small) < 1.0
    assert search_recall(v, search) == probe_recall(v, search) == 1.0


def test_seeded_clusters_and_their_files_are_deterministic(tmp_path):
    v = blobs(30, 40)
    a, b, two = spherical_kmeans(v, 7), spherical_kmeans(v, 7), spherical_kmeans(v, 7, threads=2)
    for x, y, z in zip(a, b, two):
        assert np.array_equal(x, y) and np.array_equal(x, z)
    order, bounds = a[1], a[2]
    assert a[0].dtype == np.float32 and order.dtype == np.int32 and bounds.dtype == np.int32
    assert sorted(order.tolist()) == list(range(len(v))) and bounds[0] == 0 and bounds[-1] == len(v)
    cfg = IndexConfig(search_exact_max_shows=100, search_clusters=4, search_rows=120, seed=7)
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        files, info = write_search(tmp_path / d, v, spherical_kmeans(v, 7), cfg)
        assert info["method"] == "probe" and info["rows"] == 120 and 0 < info["recall_at_10"] <= 1
    for f in files:
        assert (tmp_path / "x" / f).read_bytes() == (tmp_path / "y" / f).read_bytes()
    assert np.array_equal(np.load(tmp_path / "x" / "cluster_vectors.npy"), v[order])
    # the table over the kept clusters is the table that makes its own (same seed)
    kept = clustered_neighbours(v, 11, probe=4, seed=7, clusters=a)
    own = clustered_neighbours(v, 11, probe=4, seed=7)
    assert np.array_equal(kept[0], own[0]) and np.array_equal(kept[1], own[1])


def test_a_model_with_the_probe_files_round_trips(tiny_dump, tmp_path):
    cfg = TINY_CONFIG.replace(train={"epochs": 1}, index={"search_exact_max_shows": 10, "search_rows": 1000})
    train_model([tiny_dump], tmp_path / "p", cfg, threads=1)
    m = read_manifest(tmp_path / "p")
    assert m.search.method == "probe" and m.search.rows == 1000 and m.search.recall_at_10 == 1.0
    for f in ("centroids.npy", "order.npy", "bounds.npy", "cluster_vectors.npy"):
        assert m.files[f].bytes == (tmp_path / "p" / f).stat().st_size   # hashed like the others
    verify_files(tmp_path / "p", m)
    model = load_model(tmp_path / "p")
    assert isinstance(model.search, ClusterProbe)
    exact = load_model(tmp_path / "p")
    exact.search = ExactSearch(exact.vectors)                  # every cluster probed: the same answers
    for title in ("Puppy Kitchen Tonight", "Tatort Spezial", "Evening News Kitchen"):
        a, b = model.related(title, Options(k=5)), exact.related(title, Options(k=5))
        assert [h.id for h in a.related] == [h.id for h in b.related]
    assert [h.id for h in model.related_to_id(0, Options(k=5, offset=44)).related] == \
        [h.id for h in exact.related_to_id(0, Options(k=5, offset=44)).related]           # a page past the table
    order = np.load(tmp_path / "p" / "order.npy")
    np.save(tmp_path / "p" / "order.npy", order[::-1].copy())                   # another model's order
    with pytest.raises(ModelError, match="cluster order"):
        load_model(tmp_path / "p", verify=False)
    with pytest.raises(ModelError, match="order.npy"):
        load_model(tmp_path / "p")
