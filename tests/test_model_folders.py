"""What `train --out` and `publish` may replace or point at (issue 26): only model folders
they own, version names that stay inside the root, versions that load."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from guide import GENRES, programme_xml, tiny_programmes, write_xmltv
from epgembed import registry
from epgembed.artifact.manifest import ModelError, read_manifest
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
    first = read_manifest(empty).version
    assert train(tiny_dump, empty, capsys)[0] == 0                      # now a model: replaced
    assert read_manifest(empty).version != first
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


# ---------------------------------------------------------------- 10, 11: publish
def with_version(model: Path, dest: Path, version) -> Path:
    shutil.copytree(model, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["version"] = version
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


@pytest.mark.parametrize("version", ["../../escaped", "ABSOLUTE", "a/b", ".", "..", ".hidden",
                                     "-dash", "x\x00y", "v\nw", "v" * 200, "", 123])
def test_publish_refuses_a_version_name_that_is_no_safe_path_component(tmp_path, tiny_model_dir,
                                                                       capsys, version):
    """Issue 26.10: `../../escaped` wrote the model outside the root and pointed current there;
    an absolute version wrote to that path."""
    if version == "ABSOLUTE":
        version = str(tmp_path / "abs-version")
    model = with_version(tiny_model_dir, tmp_path / "m", version)
    root = tmp_path / "deep" / "root"
    assert main(["publish", str(model), "--root", str(root)]) == 2
    why = "at `$.version`" if version == 123 else "version name"       # 123: no string at all
    assert why in capsys.readouterr().err
    with pytest.raises((ValueError, ModelError), match=re.escape(why)):
        registry.publish(root, model, move=False)
    assert registry.current_version(root) is None and not (root / "current").is_symlink()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]                # nothing written anywhere


def test_republishing_a_version_loads_it_before_pointing_at_it(tmp_path, tiny_model_dir, tiny_model_b,
                                                               capsys):
    """Issue 26.11: republishing a version name pointed current at the existing folder as it
    was; with vectors.npy missing it said "already published", exit 0."""
    root = tmp_path / "root"
    a = registry.publish(root, tiny_model_dir, move=False)
    b = registry.publish(root, tiny_model_b, move=False)
    (registry.versions_dir(root) / a / "vectors.npy").unlink()
    assert main(["publish", str(tiny_model_dir), "--root", str(root)]) == 2
    assert "vectors.npy" in capsys.readouterr().err
    assert registry.current_version(root) == b
    shutil.copy(tiny_model_dir / "vectors.npy", registry.versions_dir(root) / a / "vectors.npy")
    assert main(["publish", str(tiny_model_dir), "--root", str(root)]) == 0
    assert "already published" in capsys.readouterr().out and registry.current_version(root) == a


# ---------------------------------------------------------------- 12: foreign folders in versions/
def test_foreign_folders_in_versions_are_named_and_left_alone(tmp_path, tiny_model_dir, tiny_model_b,
                                                              capsys):
    """Issue 26.12: a folder whose manifest has no `created` made `versions` trace back and
    `rollback` fail; a folder without a manifest sorted first would have been pruned."""
    root = tmp_path / "root"
    a, b = sorted([registry.publish(root, tiny_model_dir, move=False),
                   registry.publish(root, tiny_model_b, move=False)])       # by name: b is newer
    registry.point_current(root, b)
    vdir = registry.versions_dir(root)
    (vdir / "000-notes").mkdir()
    (vdir / "000-notes" / "todo.txt").write_text("mine")
    (vdir / "zz-foreign").mkdir()
    (vdir / "zz-foreign" / "manifest.json").write_text(json.dumps(
        {"format": "epgembed-model", "format_version": 1, "version": "zz-foreign"}))
    (vdir / "zz-foreign" / "report.json").write_text("{not json")
    assert main(["versions", "--models-root", str(root)]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "zz-foreign" in out and "created" in out and "000-notes" in out, out
    assert main(["rollback", "--models-root", str(root)]) == 0
    assert registry.current_version(root) == a and f"{b} -> {a}" in capsys.readouterr().out
    assert registry.prune(root, 1) == [b]
    assert sorted(p.name for p in vdir.iterdir()) == ["000-notes", a, "zz-foreign"]
    assert (vdir / "000-notes" / "todo.txt").read_text() == "mine"


# ---------------------------------------------------------------- 14: degenerate models
@pytest.mark.parametrize("programmes", [
    [programme_xml(t, []) for g in GENRES.values() for t in g],                 # no categories
    [programme_xml("Football Tonight", ["Sport"])],                             # one programme
], ids=["no categories", "one programme"])
def test_a_model_that_learned_nothing_is_refused(tmp_path, capsys, programmes):
    """Issue 26.14: a dump with no usable category trained 0 epochs and wrote a model of
    random vectors (exit 0); a 1-programme dump gave a 1-show model."""
    dump = write_xmltv(tmp_path / "d.xml", programmes)
    code, err = train(dump, tmp_path / "m", capsys)
    assert code == 2 and "nothing learned" in err and "categor" in err, err
    assert not (tmp_path / "m").exists() and [p.name for p in tmp_path.iterdir()] == ["d.xml"]


def test_feature_kinds_are_recorded_and_a_vanished_one_is_warned_about(tmp_path, capsys):
    """Issue 26.14: with no start or stop time, the slot, day and duration features dropped
    out silently. The manifest lists the kinds with data; train warns when one vanished
    against the model it replaces."""
    dump = write_xmltv(tmp_path / "d.xml", tiny_programmes())
    out = tmp_path / "m"
    code, err = train(dump, out, capsys)
    assert code == 0 and "warning" not in err, err
    kinds = read_manifest(out).feature_kinds
    assert {"channel", "slot", "day", "episodic"} <= set(kinds) and kinds["channel"] == 49   # stop = start
    timeless = write_xmltv(tmp_path / "t.xml", [re.sub(r' (start|stop)="[^"]*"', "", p) for p in tiny_programmes()])
    code, err = train(timeless, out, capsys)
    assert code == 0, err
    assert "warning: feature kinds gone since the last version: day, slot (" in err, err
    kinds_now = read_manifest(out).feature_kinds
    assert set(kinds_now) == {"channel", "episodic"}
    legacy = json.loads((out / "manifest.json").read_text())           # format 1, before the field:
    legacy.update(format_version=1)                                    # counted from the catalog
    del legacy["feature_kinds"]
    (out / "manifest.json").write_text(json.dumps(legacy))
    assert read_manifest(out).feature_kinds == kinds_now
    code, err = train(dump, out, capsys)
    assert code == 0 and "warning" not in err, err
