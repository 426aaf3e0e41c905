"""The manifest records the versions of the libraries that built the model's files, and
load_model warns when the running ones differ (the model still loads: it is valid)."""
from __future__ import annotations

import json
import logging
import shutil
from importlib import metadata

import pytest

from epgembed.artifact.bundle import LIBRARIES, load_model, read_manifest

pytestmark = pytest.mark.integration


def test_the_manifest_names_the_libraries_that_built_it(tiny_model_dir):
    libraries = read_manifest(tiny_model_dir)["libraries"]
    assert list(libraries) == ["torch", "numpy", "sentencepiece", "annoy", "numba"] == list(LIBRARIES)
    assert libraries == {name: metadata.version(name) for name in LIBRARIES}


def test_loading_warns_when_a_library_version_differs(tiny_model_dir, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="epgembed.artifact.bundle"):
        load_model(tiny_model_dir)
    assert not [r for r in caplog.records if "library versions" in r.getMessage()]
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["libraries"]["numpy"] = "1.0.0"             # not hashed: the manifest describes the files
    (folder / "manifest.json").write_text(json.dumps(manifest))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="epgembed.artifact.bundle"):
        assert load_model(folder).version == manifest["version"]
    [warning] = [r.getMessage() for r in caplog.records if "library versions" in r.getMessage()]
    assert f"numpy 1.0.0 (running {metadata.version('numpy')})" in warning and "torch" not in warning
