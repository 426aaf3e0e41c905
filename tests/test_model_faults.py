"""Model-file faults: every damaged model directory is refused at load with a clear reason,
by the registry when publishing it, and by the service's model holder when `current`
points at it, while the old version keeps answering.

Damage: each file truncated, one bit flipped in each file, wrong dimensions, a missing
manifest, manifests whose hashes lie, and "consistent lies": a file swapped for another
model's (or corrupted) with the manifest's hash rewritten to match, which only the content
checks of the self-test can catch (the index, vectors and embeddings of another model,
non-finite or non-unit vectors, reordered catalog). Hard links: publish refuses a folder
whose files have other names, and loading warns about served ones. The checks are run with and without
hash verification: the content is checked, not trusted. (Covered elsewhere and not repeated
here: tests/test_pipeline.py and tests/test_service.py's four corruptions.)
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import msgspec
import numpy as np
import pytest

from epgembed import registry
from epgembed.artifact.bundle import sha256_file
from epgembed.artifact.manifest import ModelError, read_manifest, write_manifest
from epgembed.query.load import load_model
from epgembed.query.requests import Options

pytestmark = pytest.mark.integration

DATA_FILES = ["tokenizer.json", "tokenizer.model", "embeddings.npy", "token_counts.npy", "vectors.npy",
              "center.npy", "catalog.jsonl", "index.ann", "neighbours.npy", "neighbour_scores.npy", "history.json"]
UNUSED_WHEN_SERVING = {"history.json"}          # per-epoch figures: not read by load_model


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def rehash(folder: Path, name: str) -> None:
    """Make the manifest vouch for the file as it is now (a lie the hashes cannot catch)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": sha256_file(folder / name), "bytes": (folder / name).stat().st_size}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def refused(folder: Path, *, verify: bool = True) -> str:
    with pytest.raises(ModelError) as info:
        load_model(folder, verify=verify)
    reason = str(info.value)
    assert reason.startswith(str(folder)) and "\n" not in reason and "Traceback" not in reason, reason
    return reason


def test_the_fixtures_load(tiny_model_dir, tiny_model_b):
    a, b = read_manifest(tiny_model_dir), read_manifest(tiny_model_b)
    assert sorted(a.files) == sorted(DATA_FILES) and a.dim == b.dim and a.n_shows == b.n_shows
    for d in (tiny_model_dir, tiny_model_b):
        load_model(d)
        load_model(d, verify=False)


# ---------------------------------------------------------------- truncated, bit-flipped, missing
@pytest.mark.parametrize("name", DATA_FILES + ["manifest.json"])
def test_truncated_file_is_refused(tiny_model_dir, tmp_path, name):
    d = copy_model(tiny_model_dir, tmp_path / "m")
    data = (d / name).read_bytes()
    (d / name).write_bytes(data[: len(data) // 2])
    reason = refused(d)
    if name == "manifest.json":
        assert "unreadable manifest" in reason
    else:
        assert f"{name} has {len(data) // 2} bytes, manifest says {len(data)}" in reason
    if name not in UNUSED_WHEN_SERVING | {"manifest.json"}:    # content checks alone refuse it too
        refused(d, verify=False)


@pytest.mark.parametrize("name", DATA_FILES)
def test_one_bit_flipped_is_refused(tiny_model_dir, tmp_path, name):
    d = copy_model(tiny_model_dir, tmp_path / "m")
    data = bytearray((d / name).read_bytes())
    data[len(data) // 2] ^= 0x10
    (d / name).write_bytes(bytes(data))
    assert f"{name} does not match its sha256 in the manifest" in refused(d)


@pytest.mark.parametrize("field", ["file_hash", "file_size", "dim", "n_shows", "format_version", "metric"])
def test_bit_flipped_in_a_checked_manifest_field(tiny_model_dir, tmp_path, field):
    """A manifest has no checksum of its own (tools rewrite its metadata); every field the
    loader relies on is checked against the files, so a flip there is caught."""
    d = copy_model(tiny_model_dir, tmp_path / "m")
    m = json.loads((d / "manifest.json").read_text())
    if field == "file_hash":
        h = m["files"]["vectors.npy"]["sha256"]
        m["files"]["vectors.npy"]["sha256"] = h[:10] + ("0" if h[10] != "0" else "1") + h[11:]
    elif field == "file_size":
        m["files"]["index.ann"]["bytes"] ^= 1
    elif field in ("dim", "n_shows", "format_version"):
        m[field] ^= 1 << 2
    else:
        m["metric"] = "angulas"
    (d / "manifest.json").write_text(json.dumps(m))
    reason = refused(d)
    assert {"file_hash": "vectors.npy does not match its sha256", "file_size": "index.ann has",
            "dim": "manifest says dimension", "n_shows": "shows, catalog has", "format_version": "unsupported format",
            "metric": "metric"}[field] in reason


def test_missing_manifest_and_missing_files(tiny_model_dir, tmp_path):
    d = copy_model(tiny_model_dir, tmp_path / "m")
    (d / "manifest.json").unlink()
    assert "no manifest.json (not a model directory)" in refused(d)
    d = copy_model(tiny_model_dir, tmp_path / "n")
    (d / "index.ann").unlink()
    assert "missing file index.ann" in refused(d)
    assert "index.ann does not open" in refused(d, verify=False)
    assert "no manifest.json" in refused(tmp_path / "nowhere")


# ---------------------------------------------------------------- lies the hashes cannot catch
def _from_other(name):
    def damage(d: Path, other: Path) -> None:
        shutil.copyfile(other / name, d / name)
    return damage


def _edit_array(name, edit):
    def damage(d: Path, other: Path) -> None:
        arr = np.load(d / name)
        np.save(d / name, edit(arr.copy()))
    return damage


def _nan_row(a):
    a[len(a) // 2, 0] = np.nan
    return a


def _scaled_row(a):
    a[len(a) - 1] *= 2.0
    return a


def _id_past_catalog(a):
    a[len(a) // 3, 1] = len(a) + 5
    return a


def _swap_catalog_lines(d: Path, other: Path) -> None:
    lines = (d / "catalog.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    rows = [json.loads(x) for x in lines]
    rows[0]["id"], rows[1]["id"] = 1, 0                  # ids still in order, titles swapped
    rows[0], rows[1] = rows[1], rows[0]
    (d / "catalog.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _wrong_dim_embeddings(a):
    return np.concatenate([a, np.zeros((len(a), 1), a.dtype)], axis=1)


def _wrong_dim_index(d: Path, other: Path) -> None:
    from annoy import AnnoyIndex
    m = read_manifest(d)
    index = AnnoyIndex(m.dim // 2, "angular")
    for i, v in enumerate(np.load(d / "vectors.npy")):
        index.add_item(i, v[: m.dim // 2].tolist())
    index.build(2)
    index.save(str(d / "index.ann"))
    index.unload()


LIES = {   # name -> (damage(folder, other model), file rehashed, expected reason)
    "index_of_another_model": (_from_other("index.ann"), "index.ann", "index item 0 differs from vectors.npy"),
    "vectors_of_another_model": (_from_other("vectors.npy"), "vectors.npy", "differs from vectors.npy"),
    "embeddings_of_another_model": (_from_other("embeddings.npy"), "embeddings.npy",
                                    "does not follow from its tokens and embeddings.npy"),
    "center_of_another_model": (_from_other("center.npy"), "center.npy", "does not follow from its tokens"),
    "catalog_reordered": (_swap_catalog_lines, "catalog.jsonl", "does not follow from its tokens"),
    "nan_in_vectors": (_edit_array("vectors.npy", _nan_row), "vectors.npy", "vectors.npy holds NaN"),
    "nan_in_embeddings": (_edit_array("embeddings.npy", _nan_row), "embeddings.npy", "embeddings.npy holds NaN"),
    "vector_not_unit": (_edit_array("vectors.npy", _scaled_row), "vectors.npy", "is not a unit vector"),
    "embeddings_wrong_dim": (_edit_array("embeddings.npy", _wrong_dim_embeddings), "embeddings.npy",
                             "inconsistent model: embeddings"),
    "index_wrong_dim": (_wrong_dim_index, "index.ann", "index"),
    "neighbours_of_another_model": (_from_other("neighbours.npy"), "neighbours.npy",
                                    "do not follow from vectors.npy"),
    "neighbour_id_outside_catalog": (_edit_array("neighbours.npy", _id_past_catalog), "neighbours.npy",
                                     "ids outside the catalog"),
    "neighbours_one_column_short": (_edit_array("neighbours.npy", lambda a: a[:, :-1]), "neighbours.npy",
                                    "inconsistent model: neighbours"),
    "neighbour_scores_as_float64": (_edit_array("neighbour_scores.npy", lambda a: a.astype(np.float64)),
                                    "neighbour_scores.npy", "inconsistent model: neighbour_scores"),
}


def make_lie(src: Path, other: Path, dst: Path, how: str) -> Path:
    d = copy_model(src, dst)
    damage, name, _ = LIES[how]
    damage(d, other)
    rehash(d, name)
    return d


@pytest.mark.parametrize("how", sorted(LIES))
def test_consistent_lie_is_refused_by_the_content_checks(tiny_model_dir, tiny_model_b, tmp_path, how):
    d = make_lie(tiny_model_dir, tiny_model_b, tmp_path / "m", how)
    for verify in (True, False):
        assert LIES[how][2] in refused(d, verify=verify)


def test_manifest_hash_lie_is_refused(tiny_model_dir, tiny_model_b, tmp_path):
    """The manifest claims another model's hashes for intact files."""
    d = copy_model(tiny_model_dir, tmp_path / "m")
    m = json.loads((d / "manifest.json").read_text())
    m["files"]["embeddings.npy"] = msgspec.to_builtins(read_manifest(tiny_model_b).files["embeddings.npy"])
    (d / "manifest.json").write_text(json.dumps(m))
    assert "embeddings.npy does not match its sha256 in the manifest" in refused(d)


# ---------------------------------------------------------------- registry and service holder
BAD = ["index_of_another_model", "embeddings_of_another_model", "nan_in_vectors", "catalog_reordered"]


@pytest.mark.parametrize("how", BAD)
def test_registry_refuses_to_publish_it(tiny_model_dir, tiny_model_b, tmp_path, how):
    root = tmp_path / "root"
    good = registry.publish(root, tiny_model_dir, move=False)
    bad = make_lie(tiny_model_dir, tiny_model_b, tmp_path / "bad", how)
    manifest = read_manifest(bad)
    write_manifest(bad, msgspec.structs.replace(manifest, version=manifest.version + "-bad"))
    with pytest.raises(ModelError, match=LIES[how][2].split("(")[0][:30]):
        registry.publish(root, bad)                          # move=True: validated in staging
    assert registry.current_version(root) == good and load_model(registry.current_dir(root)).version == good
    assert [v["version"] for v in registry.list_versions(root)] == [good]
    assert not [p for p in registry.versions_dir(root).iterdir() if p.name.startswith(".")]
    assert (bad / "manifest.json").is_file()                 # the caller gets its folder back


@pytest.mark.parametrize("how", BAD + ["truncated"])
def test_holder_refuses_a_bad_current_and_the_old_keeps_answering(tiny_model_dir, tiny_model_b, tmp_path, how):
    from service.holder import ModelHolder
    root = tmp_path / "root"
    good = registry.publish(root, tiny_model_dir, move=False)
    holder = ModelHolder(root, poll_seconds=0)
    holder.start()
    try:
        before = holder.get().model.related("Football Tonight", Options(k=5))
        name = f"29991231T000000Z-{how.replace('_', '')}"   # what a broken job could leave behind
        folder = registry.versions_dir(root) / name
        if how == "truncated":
            copy_model(tiny_model_dir, folder)
            data = (folder / "embeddings.npy").read_bytes()
            (folder / "embeddings.npy").write_bytes(data[:-7])
        else:
            make_lie(tiny_model_dir, tiny_model_b, folder, how)
        registry.point_current(root, name)                    # bypasses publish's validation
        assert holder.check() is False and holder.check(force=True) is False
        serving = holder.get()
        assert serving.version == good and serving.name == good
        assert serving.model.related("Football Tonight", Options(k=5)) == before
        status = holder.status()
        assert status["serving"] == good and status["refused"]["name"] == name
        expected = "embeddings.npy has" if how == "truncated" else LIES[how][2]
        assert expected in status["refused"]["reason"], status
        registry.rollback(root, good)                         # and a good version is taken again
        assert registry.current_version(root) == good
    finally:
        holder.stop()


# ---------------------------------------------------------------- hard links (issue 14.4)
def linked_copy(src: Path, dst: Path) -> Path:
    """What `cp -al src dst` makes: each file a second name of the same inode."""
    dst.mkdir()
    for f in src.iterdir():
        os.link(f, dst / f.name)
    return dst


@pytest.mark.parametrize("move", [False, True])
def test_publish_refuses_a_folder_whose_files_have_other_names(tiny_model_dir, tmp_path, move):
    root = tmp_path / "root"
    src = copy_model(tiny_model_dir, tmp_path / "m")
    os.link(src / "index.ann", tmp_path / "elsewhere.ann")
    with pytest.raises(ModelError, match=r"\(hard links\): index.ann \(2 links\); copy the folder"):
        registry.publish(root, src, move=move)
    assert registry.current_version(root) is None and (src / "index.ann").stat().st_nlink == 2
    assert not registry.versions_dir(root).exists()
    (tmp_path / "elsewhere.ann").unlink()
    folder = registry.versions_dir(root) / registry.publish(root, src, move=move)
    for f in folder.iterdir():                       # a version shares no inode with any other path
        assert f.stat().st_nlink == 1
        assert move or f.stat().st_ino != (src / f.name).stat().st_ino


def test_loading_warns_about_served_files_with_other_names(tiny_model_dir, tmp_path, caplog):
    from service.holder import ModelHolder
    root = tmp_path / "root"
    good = registry.publish(root, tiny_model_dir, move=False)
    with caplog.at_level(logging.WARNING, logger="epgembed.artifact.bundle"):
        load_model(registry.current_dir(root))
        assert caplog.records == []
        linked_copy(registry.current_dir(root), registry.versions_dir(root) / f"{good}-linked")
        registry.point_current(root, f"{good}-linked")       # what `cp -al` + a pointer swap leave
        holder = ModelHolder(root, poll_seconds=0)
        holder.start()
        holder.stop()
    assert holder.get().name == f"{good}-linked"              # served, but not silently
    warned = [r.getMessage() for r in caplog.records if r.name == "epgembed.artifact.bundle"]
    assert len(warned) == 1 and "(hard links)" in warned[0], warned
    assert "index.ann (2 links)" in warned[0] and "vectors.npy (2 links)" in warned[0]
