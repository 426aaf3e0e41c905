"""The typed manifest (artifact/manifest.py): what is written is what is read, the manifest
train returns is the one on disk, and a manifest with a field missing, of the wrong type,
unknown, or files the folder table does not expect is refused naming it; so is a newer format."""
from __future__ import annotations

import json
import shutil

import msgspec
import pytest

from guide import TINY_CONFIG
from epgembed.artifact.manifest import (FOLDER_FILES, Manifest, ModelError, read_manifest, write_manifest)
from epgembed.build.pipeline import train_model
from epgembed.query.load import load_model

pytestmark = pytest.mark.integration


@pytest.fixture
def folder(tiny_model_dir, tmp_path):
    out = tmp_path / "m"
    shutil.copytree(tiny_model_dir, out)
    return out


def rewrite(folder, edit) -> None:
    data = json.loads((folder / "manifest.json").read_text())
    edit(data)
    (folder / "manifest.json").write_text(json.dumps(data))


def refused(folder) -> str:
    with pytest.raises(ModelError) as e:
        read_manifest(folder)
    assert str(e.value).startswith(str(folder / "manifest.json")), e.value
    return str(e.value)


def test_write_then_read_gives_the_same_manifest(folder):
    m = read_manifest(folder)
    changed = msgspec.structs.replace(m, quality={"p_at_10": 0.5, "n_test": 12, "p_at_10d": None})
    assert write_manifest(folder, changed) == changed
    back = read_manifest(folder)
    assert back == changed and back != m and back.quality["n_test"] == 12
    assert isinstance(back.quality["n_test"], int) and isinstance(back.data.skipped, list)
    assert load_model(folder).manifest == changed


def test_train_returns_the_manifest_it_wrote(tmp_path, tiny_dump):
    timings: dict = {}
    m = train_model([tiny_dump], tmp_path / "m", TINY_CONFIG.replace(train={"epochs": 2}), threads=1,
                    timings=timings)
    assert read_manifest(tmp_path / "m") == m
    assert set(m.training.timings) == {"ingest_s", "tokenizer_s", "train_s"}          # before the write
    assert {"index_s", "write_s", "index_and_save_s"} <= set(timings)                 # the caller's


@pytest.mark.parametrize("field", ["dim", "created", "search", "feature_kinds", "quality", "libraries"])
def test_a_missing_field_is_refused_by_name(folder, field):
    rewrite(folder, lambda m: m.pop(field))
    assert f"missing required field `{field}`" in refused(folder)


@pytest.mark.parametrize("path, value, where", [
    (("n_shows",), "49", "$.n_shows"),
    (("search", "method"), "nearest", "$.search.method"),
    (("counts", "airings"), 1.5, "$.counts.airings"),
    (("files", "vectors.npy", "bytes"), "many", "$.files[...].bytes"),
    (("training", "timings"), [], "$.training.timings"),
])
def test_a_wrong_typed_field_is_refused_by_name(folder, path, value, where):
    def edit(m):
        for key in path[:-1]:
            m = m[key]
        m[path[-1]] = value
    rewrite(folder, edit)
    assert f"at `{where}`" in refused(folder)


def test_an_unknown_field_and_an_unknown_config_option_are_refused(folder):
    rewrite(folder, lambda m: m.update(comment="hand-edited"))
    assert "unknown field `comment`" in refused(folder)
    rewrite(folder, lambda m: (m.pop("comment"), m["config"]["train"].update(optimizer="adagrad")))
    assert "config: unknown train option(s): optimizer" in refused(folder)
    rewrite(folder, lambda m: (m["config"]["train"].pop("optimizer"), m["config"]["index"].pop("search_k")))
    assert "config: no index.search_k" in refused(folder)


def test_the_files_must_be_those_the_folder_table_expects(folder):
    assert {f.name for f in FOLDER_FILES} >= set(read_manifest(folder).files)
    rewrite(folder, lambda m: m["files"].pop("index.ann"))
    assert "files: no entry for index.ann" in refused(folder)
    rewrite(folder, lambda m: m["files"].update({"index.ann": m["files"]["vectors.npy"],
                                                 "notes.txt": m["files"]["vectors.npy"]}))
    assert "files: unexpected notes.txt" in refused(folder)
    rewrite(folder, lambda m: (m["files"].pop("notes.txt"), m.update(neighbours=0)))
    assert "files: unexpected neighbour_scores.npy, neighbours.npy" in refused(folder)


@pytest.mark.parametrize("version", [3, 99])
def test_a_newer_format_is_refused_with_what_to_do(folder, version):
    rewrite(folder, lambda m: m.update(format_version=version))
    why = refused(folder)
    assert f"unsupported format epgembed-model version {version}" in why
    assert "reads versions 1 to 2" in why and "the epgembed that wrote it" in why


def test_a_manifest_that_would_not_read_back_is_not_written(folder):
    before = (folder / "manifest.json").read_bytes()
    m = read_manifest(folder)
    with pytest.raises(ValueError, match=r"not written, invalid manifest: .*\$\.dim"):
        write_manifest(folder, msgspec.structs.replace(m, dim="32"))
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        write_manifest(folder, msgspec.structs.replace(m, quality={"p_at_10": float("nan")}))
    assert (folder / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == sorted([*m.files, "manifest.json"])   # no temp left


def test_the_manifest_is_a_typed_struct(folder):
    m = read_manifest(folder)
    assert isinstance(m, Manifest) and m.counts.shows == m.n_shows == 49
    assert m.model_config() == TINY_CONFIG and m.files["vectors.npy"].bytes == (folder / "vectors.npy").stat().st_size
