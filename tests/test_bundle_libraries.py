"""The manifest records the versions of the libraries that built the model's files, and
load_model warns when the running ones differ (the model still loads: it is valid)."""
from __future__ import annotations

import json
import logging
import shutil
from importlib import metadata

import pytest

from epgembed.artifact.manifest import read_manifest
from epgembed.query.load import load_model
from epgembed.artifact.libraries import LIBRARIES

pytestmark = pytest.mark.integration


def test_the_manifest_names_the_libraries_that_built_it(tiny_model_dir):
    libraries = read_manifest(tiny_model_dir).libraries
    assert list(libraries) == ["torch", "numpy", "sentencepiece", "annoy", "numba"] == list(LIBRARIES)
    assert libraries == {name: metadata.version(name) for name in LIBRARIES}


def test_loading_warns_when_a_library_version_differs(tiny_model_dir, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="epgembed.artifact.libraries"):
        load_model(tiny_model_dir)
    assert not [r for r in caplog.records if "library versions" in r.getMessage()]
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["libraries"]["numpy"] = "1.0.0"             # not hashed: the manifest describes the files
    (folder / "manifest.json").write_text(json.dumps(manifest))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="epgembed.artifact.libraries"):
        assert load_model(folder).version == manifest["version"]
    [warning] = [r.getMessage() for r in caplog.records if "library versions" in r.getMessage()]
    assert f"numpy 1.0.0 (running {metadata.version('numpy')})" in warning and "torch" not in warning


def test_reading_the_versions_parses_no_package_metadata(tiny_model_dir):
    """A query command's model load reads the versions from the dist-info folder names, the
    same values importlib.metadata gives (above), without importing it (60 ms of a 0.5 s
    command): a fresh process loads a model and neither it nor the email parser is loaded."""
    import subprocess
    import sys
    probe = ("import sys\nfrom epgembed.query.load import load_model\n"
             f"load_model({str(tiny_model_dir)!r})\n"
             "print(sorted(m for m in ('importlib.metadata', 'email.message') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_an_egg_info_install_falls_back_to_importlib_metadata(monkeypatch):
    """A distribution without a dist-info folder (an egg-info install) still gets its version."""
    from epgembed.artifact import libraries
    monkeypatch.setattr(libraries, "_dist_info_versions", lambda: {})
    libraries._running_libraries.cache_clear()
    try:
        assert libraries.library_versions() == {name: metadata.version(name) for name in LIBRARIES}
    finally:
        libraries._running_libraries.cache_clear()
