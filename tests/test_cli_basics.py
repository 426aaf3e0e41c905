"""The command line as a person meets it (issue 17): --help without heavy imports, silent
when piped into head."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.system

EXE = str(Path(sys.executable).with_name("epgembed"))


def test_help_imports_neither_numpy_nor_torch():
    probe = ("import sys\nfrom epgembed.cli.main import main\n"
             "for argv in (['--help'], ['related', '--help'], ['nightly', '--help'], ['inspect', '--help']):\n"
             "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
             "print(sorted(m for m in ('numpy', 'torch', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_piping_into_head_is_silent(tiny_model_dir):
    proc = subprocess.run(f"'{EXE}' info '{tiny_model_dir}' | head -1", shell=True,
                          capture_output=True, text=True)
    assert proc.stdout.startswith("model ") and proc.stderr == ""
