"""The package's layers (docs/DESIGN.md), as pyproject.toml's import-linter contracts state
them: the serving side never imports the building side, torch or numba; the model folder's
format knows no query; each layer imports only those below it. `lint-imports` checks the
code as it is, and a copy of it with one planted import must fail."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).parent / "lint-imports"


def lint(repo: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo), "NO_COLOR": "1"}
    return subprocess.run([str(LINT), "--no-cache"], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_layers_hold():
    r = lint(REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 kept, 0 broken" in r.stdout


@pytest.mark.parametrize("where, planted, broken", [
    ("epgembed/query/related.py", "import epgembed.build.pipeline", "never imports the building side"),
    ("service/api.py", "import torch", "never imports the building side"),
    ("epgembed/artifact/bundle.py", "import epgembed.query.related", "knows no query"),
    ("epgembed/text/features.py", "import epgembed.artifact.catalog", "layers"),
])
def test_a_planted_import_breaks_its_contract(tmp_path, where, planted, broken):
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("epgembed", "service"):
        shutil.copytree(REPO / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    path = copy / where
    path.write_text(path.read_text() + f"\n{planted}  # planted\n")
    r = lint(copy)
    assert r.returncode != 0, r.stdout
    verdicts = re.findall(r"(\S[^\n]*?) (KEPT|BROKEN)\b", " ".join(r.stdout.split()).replace(" KEPT", " KEPT\n")
                          .replace(" BROKEN", " BROKEN\n"))
    assert any(broken in name and verdict == "BROKEN" for name, verdict in verdicts), verdicts
