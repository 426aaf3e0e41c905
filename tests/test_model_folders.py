"""What `train --out` and `publish` may replace or point at (issue 26): only model folders
they own, version names that stay inside the root, versions that load."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from epgembed.artifact import registry
from epgembed.artifact.bundle import read_manifest
from epgembed.cli.main import main

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]

QUICK = ["--dim", "16", "--epochs", "1", "--quiet", "--threads", "1"]


def train(dump: Path, out: Path, capsys) -> tuple[int, str]:
    code = main(["train", str(dump), "--out", str(out), *QUICK])
    return code, capsys.readouterr().err


# ---------------------------------------------------------------- 1: train --out
def test_train_out_never_deletes_what_is_not_a_model(tmp_path, tiny_dump, capsys):
    """Issue 26.1: a folder holding other files, a file, a model folder with a file of
    someone else's: refused (exit 2, nothing touched), before any training."""
    out = tmp_path / "x"
    (out / "sub").mkdir(parents=True)
    (out / "thesis.txt").write_text("a")
    code, err = train(tiny_dump, out, capsys)
    assert code == 2 and "refusing to replace" in err and "thesis.txt" in err, err
    assert (out / "thesis.txt").read_text() == "a" and (out / "sub").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]          # no temporary left
    a_file = tmp_path / "notes.txt"
    a_file.write_text("b")
    code, err = train(tiny_dump, a_file, capsys)
    assert code == 2 and "not a folder" in err and a_file.read_text() == "b"


def test_train_out_replaces_an_empty_folder_or_a_model(tmp_path, tiny_dump, tiny_model_dir, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert train(tiny_dump, empty, capsys)[0] == 0
    first = read_manifest(empty)["version"]
    assert train(tiny_dump, empty, capsys)[0] == 0                      # now a model: replaced
    assert read_manifest(empty)["version"] != first
    (empty / "mine.txt").write_text("keep")                              # not the model's own
    code, err = train(tiny_dump, empty, capsys)
    assert code == 2 and "mine.txt" in err and (empty / "mine.txt").read_text() == "keep"
    copy = tmp_path / "copy"                                            # a version folder copied out
    shutil.copytree(tiny_model_dir, copy)
    (copy / "report.json").write_text("{}")
    assert train(tiny_dump, copy, capsys)[0] == 0


def test_train_out_inside_a_models_root_is_refused(tmp_path, tiny_dump, tiny_model_dir, capsys):
    """A served version is never replaced in place: neither through versions/<v> nor `current`."""
    root = tmp_path / "root"
    version = registry.publish(root, tiny_model_dir, move=False)
    served = registry.versions_dir(root) / version
    before = {p.name: p.stat().st_mtime_ns for p in served.iterdir()}
    for out in (served, root / "current", registry.versions_dir(root) / "new"):
        code, err = train(tiny_dump, out, capsys)
        assert code == 2 and "versions/" in err and "publish" in err, (out, err)
    assert {p.name: p.stat().st_mtime_ns for p in served.iterdir()} == before
    assert [v["version"] for v in registry.list_versions(root)] == [version]
    assert json.loads((served / "manifest.json").read_text())["version"] == version
