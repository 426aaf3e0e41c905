"""Helpers shared by the service tests: models roots, corrupt versions, a served app
(the fixtures, such as the second model `tiny_model_b`, are in conftest.py)."""
from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from epgembed.artifact.bundle import sha256_file
from epgembed.artifact.manifest import read_manifest
from epgembed.registry import point_current, publish, versions_dir


def make_root(root: Path, model_dir: Path) -> str:
    """A models root with `model_dir` (copied) published as current; returns its version."""
    return publish(root, model_dir, move=False)


def version_of(model_dir: Path) -> str:
    return read_manifest(model_dir).version


def _refresh_hash(folder: Path, name: str) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": sha256_file(folder / name), "bytes": (folder / name).stat().st_size}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def truncate_index(folder: Path) -> None:
    data = (folder / "index.ann").read_bytes()
    (folder / "index.ann").write_bytes(data[: len(data) // 2])


def wrong_dimension(folder: Path) -> None:
    """A well-formed index of the wrong dimension, with hashes that match (only dims can catch it)."""
    n = read_manifest(folder).n_shows
    index = AnnoyIndex(16, "angular")
    rng = np.random.default_rng(0)
    for i in range(n):
        index.add_item(i, rng.standard_normal(16).tolist())
    index.build(4)
    index.save(str(folder / "index.ann"))
    index.unload()
    _refresh_hash(folder, "index.ann")


def oversized_title(folder: Path) -> None:
    """One catalog.jsonl title of 50,000 characters (hashes match: only the field bounds catch
    it); served, it made every answer that listed the show that large."""
    lines = (folder / "catalog.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    show = json.loads(lines[1])
    show["title"] = "Huge " * 10_000
    lines[1] = json.dumps(show) + "\n"
    (folder / "catalog.jsonl").write_text("".join(lines), encoding="utf-8")
    _refresh_hash(folder, "catalog.jsonl")


def missing_file(folder: Path) -> None:
    (folder / "tokenizer.json").unlink()


def bad_format(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 99
    (folder / "manifest.json").write_text(json.dumps(manifest))


CORRUPTIONS = {"truncated_index": truncate_index, "wrong_dimension": wrong_dimension,
               "missing_file": missing_file, "bad_format_version": bad_format,
               "oversized_title": oversized_title}


def publish_corrupt(root: Path, model_dir: Path, how: str) -> str:
    """Copy a good model into versions/<name>, corrupt it, point `current` at it (bypassing
    publish(), which would refuse it) - what a broken nightly job could leave behind."""
    name = f"29991231T000000Z-{how.replace('_', '')}"
    folder = versions_dir(root) / name
    shutil.copytree(model_dir, folder)
    CORRUPTIONS[how](folder)
    if not (folder / "manifest.json").is_file():
        raise AssertionError("corruptions keep the manifest")
    point_current(root, name)
    return name


@contextmanager
def serving_app(root: Path, **config):
    """A service app on the models root `root` (no polling), its reload thread stopped after."""
    from service import ServiceConfig, create_app
    from service.state import state
    app = create_app(ServiceConfig(models=root, poll_seconds=0, **config))
    try:
        yield app
    finally:
        state(app).holder.stop()
