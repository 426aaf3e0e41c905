"""Loading a model folder for serving: `load_model(dir)` rebuilds a RelatedModel from the
folder alone (artifact/folder.py reads and checks its parts) and refuses anything
inconsistent: hashes, dimensions, counts, the indexes, and a self-test of the content itself.

    model = load_model("MODEL_DIR")      # RelatedModel, or ModelError saying what is wrong
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from epgembed.artifact.folder import ModelFolder, read_folder
from epgembed.artifact.manifest import METRIC, ModelError
from epgembed.query.annoy import open_index
from epgembed.query.probe import ExactSearch, check_search, open_probe
from epgembed.query.related import RelatedModel
from epgembed.query.vectors import top_k


def load_model(model_dir: str | Path, *, verify: bool = True) -> RelatedModel:
    """Rebuild a RelatedModel from the folder alone; refuse anything inconsistent."""
    folder = read_folder(model_dir, verify=verify)
    model = RelatedModel(folder, _open_index(folder), _open_search(folder))
    self_test(model)
    return model


def _open_index(folder: ModelFolder):
    """The Annoy index, memory-mapped; ModelError when it does not fit the folder."""
    n, dim = len(folder.catalog), folder.manifest.dim
    try:
        index = open_index(folder.path / "index.ann", dim)
    except OSError as e:
        why = str(e).split(". Ensure")[0].removesuffix(": Success (0)")
        raise ModelError(f"{folder.path}: index.ann does not open as a {dim}-dimensional "
                         f"{METRIC} index ({why})") from None
    for ok, why in ((index.get_n_items() == n, f"index has {index.get_n_items()} items, catalog {n}"),
                    (index.f == dim, f"index dimension {index.f} != {dim}")):
        if not ok:
            raise ModelError(f"{folder.path}: inconsistent model: {why}")
    return index


def _open_search(folder: ModelFolder):
    """The search for vectors that are no catalog row, as the manifest's `search` entry
    says; None = Annoy. Raises ModelError for probe files that do not fit the catalog."""
    entry, vectors = folder.manifest.search, folder.vectors.vectors
    if entry.method == "exact":
        return ExactSearch(vectors)
    if entry.method != "probe":
        return None
    try:
        return open_probe(folder.path, entry.rows, len(vectors), folder.manifest.dim)
    except ValueError as e:
        raise ModelError(f"{folder.path}: inconsistent model: {e}") from None
    except Exception as e:  # noqa: BLE001 - whatever a damaged file makes a loader throw
        why = " ".join(str(e).split())[:300]
        raise ModelError(f"{folder.path}: cannot load the probe files: {type(e).__name__}: {why}") from None


SELF_TEST_ITEMS = 64  # items checked against the index and rebuilt from their tokens


def self_test(model: RelatedModel) -> None:
    """Check the content itself, not the manifest's word for it (a manifest can vouch for the
    wrong files): every array finite, catalog vectors unit length, and for items spread over
    the catalog the index's stored vector equals vectors.npy and the vector rebuilt from the
    item's tokens (tokenizer + catalog + embeddings.npy) equals it too; item 0 finds itself."""
    if len(model) == 0:
        raise ModelError(f"{model.path}: empty catalog")
    try:
        _content_checks(model)
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001 - e.g. a token id past the table: another model's file
        raise ModelError(f"{model.path}: self-test failed: {type(e).__name__}: {e}") from None


def _content_checks(model: RelatedModel) -> None:
    def fail(why: str) -> None:
        raise ModelError(f"{model.path}: self-test failed: {why}")

    arrays = [("embeddings.npy", model.embeddings), ("vectors.npy", model.vectors)]
    if model.center is not None:
        arrays.append(("center.npy", model.center))
    for name, arr in arrays:
        for start in range(0, len(arr), 65536):  # bounded temporaries for a large mmapped table
            if not np.isfinite(arr[start: start + 65536]).all():
                fail(f"{name} holds NaN or infinite values")
    for start in range(0, len(model.vectors), 65536):
        norms = np.linalg.norm(np.asarray(model.vectors[start: start + 65536], dtype=np.float64), axis=1)
        bad = np.flatnonzero((norms > 1e-6) & (np.abs(norms - 1.0) > 1e-3))
        if len(bad):
            fail(f"vectors.npy row {start + int(bad[0])} is not a unit vector (norm {norms[bad[0]]:.4g})")
    n = len(model)
    for i in sorted(set(np.linspace(0, n - 1, min(n, SELF_TEST_ITEMS)).astype(int).tolist())):
        v = np.asarray(model.vectors[i], dtype=np.float32)
        stored = np.asarray(model.index.get_item_vector(i), dtype=np.float32)
        if not np.allclose(v, stored, atol=1e-5):
            fail(f"index item {i} differs from vectors.npy (an index of another model?)")
        tokens = model.item_tokens(i)
        rebuilt = model.vector_of([t[0] for t in tokens], [t[2] for t in tokens])
        if not np.allclose(rebuilt, v, atol=1e-3):
            fail(f"item {i}'s vector does not follow from its tokens and embeddings.npy "
                 "(embeddings, tokenizer or catalog of another model?)")
    if model.neighbours is not None:
        _check_neighbours(model, fail)
    if model.search is not None:
        why = check_search(model.search, model.vectors, np.linspace(0, n - 1, min(n, 16)).astype(int).tolist())
        if why:
            fail(why)
    v = np.asarray(model.vectors[0], dtype=np.float32)
    if np.linalg.norm(v) > 0:
        _, dist = model.index.get_nns_by_vector(v.tolist(), 1, include_distances=True)
        if not dist or dist[0] > 1e-3:
            fail("item 0's vector finds no match")


def _check_neighbours(model: RelatedModel, fail) -> None:
    """The neighbour table: every id in range, and for items spread over the catalog the
    stored cosines equal the vectors' dot products, best first; for an exact table (up to
    64k titles, where checking is cheap) no title outside the row is closer than its last."""
    ids, scores = model.neighbours
    for start in range(0, len(ids), 65536):
        block = np.asarray(ids[start: start + 65536])
        if len(block) and (block.min() < 0 or block.max() >= len(model)):
            fail("neighbours.npy holds ids outside the catalog")
    vectors = model.vectors
    exact_table = model.manifest.neighbour_table.method == "exact"
    check_all = exact_table and len(model) <= 65536
    for i in sorted(set(np.linspace(0, len(ids) - 1, min(len(ids), 16)).astype(int).tolist())):
        row, cos = np.asarray(ids[i]), np.asarray(scores[i], dtype=np.float64)
        exact = np.asarray(vectors[row], dtype=np.float64) @ np.asarray(vectors[i], dtype=np.float64)
        if not np.allclose(exact, cos, atol=1e-4) or np.any(np.diff(cos) > 1e-6):
            fail(f"neighbours of item {i} do not follow from vectors.npy (a table of another model?)")
        if check_all and len(row) < len(model):
            _, best = top_k(vectors, len(row), rows=[i])
            if best[0, -1] > cos[-1] + 1e-4:
                fail(f"neighbours of item {i} miss closer titles (a table of another model?)")
