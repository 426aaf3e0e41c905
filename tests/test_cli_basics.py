"""The command line as a person meets it (issue 17): --help without heavy imports, silent
when piped into head, progress per stage (a live line on a terminal, one line per stage in
a log, nothing with --quiet), errors that say what was skipped."""
from __future__ import annotations

import io
import re
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


# ---------------------------------------------------------------- progress (issue 17)
def _cli(*args, **kw):
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=300, **kw)


TRAIN_STAGES = ["ingest", "tokenizer", "train", "index, neighbour table and write"]


def _stage_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.startswith(("skipped:", "dropped:"))]


def test_train_in_a_log_writes_one_line_per_stage(tmp_path, tiny_dump):
    """stderr is no terminal here: each stage one line with its time, no carriage returns."""
    r = _cli("train", tiny_dump, "--out", tmp_path / "m", "--epochs", 2, "--dim", 16)
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "\x1b" not in r.stderr
    lines = _stage_lines(r.stderr)
    assert [line.split(":")[0] for line in lines] == TRAIN_STAGES, lines
    assert all(re.search(r" \d+\.\d s$", line) for line in lines), lines
    assert re.match(r"ingest: 1 file, \d+ programmes, \d+ shows in ", lines[0]), lines[0]
    assert re.search(r"\(neighbour table and index \d+\.\d s, write \d+\.\d s\)", lines[3]), lines[3]
    assert r.stdout.startswith("model ")


def test_train_quiet_prints_no_progress(tmp_path, tiny_dump):
    r = _cli("train", tiny_dump, "--out", tmp_path / "m", "--epochs", 2, "--dim", 16, "--quiet")
    assert r.returncode == 0 and _stage_lines(r.stderr) == [], r.stderr


def test_outliers_progress_in_a_log_and_quiet(tiny_model_dir):
    r = _cli("outliers", tiny_model_dir, "--top", 3, "-k", 5, "--json")
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr
    assert [line.split(":")[0] for line in r.stderr.splitlines()] == \
        ["load model", "tokens", "neighbours", "leave-one-out", "explain"], r.stderr
    q = _cli("outliers", tiny_model_dir, "--top", 3, "-k", 5, "--json", "--quiet")
    assert q.returncode == 0 and q.stderr == "" and q.stdout.startswith("{")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_redraws_one_line_then_closes_it():
    from epgembed.progress import Progress
    term = _Terminal()
    progress = Progress.for_stream(term)
    assert progress.live
    with progress.stage("ingest") as st:
        st.status("1 file, 2,000 programmes")
        for _ in st.bar(range(3), total=3, unit="file"):
            pass
        st.note("1 file, 3 shows")
    out = term.getvalue()
    assert out.startswith("\r\x1b[Kingest: ")
    assert out.endswith("\r\x1b[Kingest: 1 file, 3 shows in 0.0 s\n") and out.count("\n") == 1
    log = io.StringIO()
    with pytest.raises(KeyError):
        with Progress.for_stream(log).stage("tokenizer"):
            raise KeyError("x")
    assert log.getvalue() == "tokenizer: failed after 0.0 s\n"
    quiet = _Terminal()
    with Progress.for_stream(quiet, quiet=True).stage("x") as st, Progress().stage("y"):
        st.status("nobody sees this")
    assert quiet.getvalue() == ""


def test_nightly_writes_its_stage_lines_after_the_run(tmp_path, tiny_dump):
    import json
    (tmp_path / "small.json").write_text(json.dumps({"train": {"dim": 16, "epochs": 2, "min_examples": 0},
                                                     "index": {"n_trees": 5}}))
    r = _cli("nightly", "--dumps", tiny_dump, "--models-root", tmp_path / "root",
             "--config", tmp_path / "small.json", "--threads", 1)
    assert r.returncode in (0, 3), r.stderr
    lines = r.stderr.splitlines()
    names = [line.split(":")[0] for line in lines]
    assert names[0] == "ingest" and names[-1] == "nightly" and "\r" not in r.stderr, r.stderr
    assert lines[-1].startswith(("nightly: published in ", "nightly: gated in ")), lines
    if r.returncode == 0:
        assert names == ["ingest", "train", "index and neighbour table", "write", "evaluate",
                         "publish", "nightly"], r.stderr
    q = _cli("nightly", "--dumps", tiny_dump, "--models-root", tmp_path / "root",
             "--config", tmp_path / "small.json", "--threads", 1, "--quiet")
    assert q.returncode in (0, 3) and q.stderr == "", q.stderr


def test_skip_bad_input_with_nothing_readable_names_every_file_and_why(tmp_path):
    """--skip-bad-input and no file gives a show: the error says what was read, every file
    skipped with its reason (not hidden behind the programmes skipped before it), and the
    skipped programmes by reason with the first place."""
    (tmp_path / "a_untitled.xml").write_text(
        '<?xml version="1.0"?>\n<tv>\n' + '<programme start="1" channel="c"></programme>\n' * 5 + "</tv>\n")
    (tmp_path / "b_empty.xml").write_bytes(b"")
    (tmp_path / "c_broken.xml.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    r = _cli("train", tmp_path, "--out", tmp_path / "m", "--skip-bad-input", "--quiet")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    err = r.stderr.strip()
    assert err.startswith("epgembed train: error: no programmes with a title in the input (read 3 files, "
                          "0 programmes;"), err
    for part in ("b_empty.xml: empty file", "c_broken.xml.gz:1: truncated gzip stream",
                 "5 programmes skipped: programme without title (first ", "a_untitled.xml:3)"):
        assert part in err, err
    assert not (tmp_path / "m").exists()
