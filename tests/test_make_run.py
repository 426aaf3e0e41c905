"""`make run` on a taken port: it says how to pick another one and changes nothing (no
install, no training, no publish into the running service's models root)."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.system,
              pytest.mark.skipif(shutil.which("make") is None, reason="needs make")]

REPO = Path(__file__).resolve().parents[1]


def test_make_run_on_a_taken_port_changes_nothing(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # everything it could write points into tmp_path, so that a check that let it through
        # would show here (and not touch the repo's .venv or models/)
        proc = subprocess.run(["make", "--no-print-directory", "run", f"PORT={port}", f"PY={sys.executable}",
                               f"VENV={tmp_path / 'venv'}", f"MODEL={tmp_path / 'model'}", f"ROOT={tmp_path / 'root'}"],
                              cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert f"cannot serve on 127.0.0.1:{port}" in proc.stderr and f"make run PORT={port + 1}" in proc.stderr
    assert "Nothing was installed, trained or published" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_port_check_passes_a_free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "port_free.py"), "127.0.0.1", str(port)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stderr == ""
