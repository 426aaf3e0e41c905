"""Bad input: a generated corpus of hostile and broken dumps fed to the reader and to `epgembed train`.

Every case must end in a clear error (``DumpError``: "FILE:LINE: message", one line) or a
clean skip with a count (``ReadReport``), in bounded time and memory: each case is read in
its own subprocess under ``RLIMIT_AS`` and a timeout, so a hang or a memory blow-up fails
the test instead of the machine. The same files go through the CLI (non-zero exit, one line
on stderr, no traceback, no model directory). EPGEMBED_FUZZ=1 (``make fuzz``) makes the
bombs bigger and adds many more random mutations of a valid dump.
"""
from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from hostile_dumps import (CASE_TIMEOUT, CORPUS, FUZZ, MAX_RSS_MB, MAX_SECONDS, MEMORY_LIMIT, MUTANTS,
                           valid_dump)

pytestmark = pytest.mark.system

PEAK_MB = r"""
def peak_mb():   # VmHWM: this image's peak RSS (ru_maxrss would include the parent's, via vfork + exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""
CHILD = PEAK_MB + r"""
import json, resource, sys, time
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from epgembed.build.ingest.epg import DumpError, ReadReport, read_programmes
out = {}
for path in json.loads(sys.argv[1]):
    print("reading", path, file=sys.stderr, flush=True)      # the last line names a hang
    one = {}
    for skip in (False, True):
        rep, res, t = ReadReport(), {}, time.perf_counter()
        try:
            n = cats = 0
            for p in read_programmes(path, skip_bad_input=skip, report=rep):
                n, cats = n + 1, max(cats, len(p.categories))
            res.update(ok=True, programmes=n, max_categories=cats)
        except DumpError as e:
            res.update(ok=False, error=str(e), path=e.path, line=e.line, message=e.message)
        res.update(seconds=time.perf_counter() - t, reported=rep.programmes, skip_counts=rep.skip_counts(),
                   file_errors=rep.file_errors, summary=rep.summary())
        one["skip" if skip else "default"] = res
    one["maxrss_mb"] = peak_mb()  # peak so far
    out[path] = one
print(json.dumps(out))
"""


def read_in_child(paths: list[Path], timeout: float) -> dict[str, dict]:
    """Both reading modes of each file, in a fresh process under RLIMIT_AS and a timeout."""
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps([str(p) for p in paths]), str(MEMORY_LIMIT)],
                              cwd=paths[0].parent, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        last = (e.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
        pytest.fail(f"reading did not finish within {timeout} s (hang): {last}")
    assert proc.returncode == 0, f"reader crashed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fuzz_corpus")
    for name, (write, _) in CORPUS.items():
        write(d / f"{name}.xml")
    return d


@pytest.fixture(scope="module")
def read_results(corpus_dir) -> dict[str, dict]:
    """make test: the corpus read in one subprocess (peak RSS is then the worst case so far);
    make fuzz: one subprocess per case, so each case has the whole memory limit to itself."""
    paths = [corpus_dir / f"{name}.xml" for name in CORPUS]
    if not FUZZ:
        return read_in_child(paths, CASE_TIMEOUT * 2)
    return {str(p): read_in_child([p], CASE_TIMEOUT)[str(p)] for p in paths}


def check_error(path: Path, res: dict, detail: str) -> None:
    assert not res["ok"], f"{path.name}: expected an error, read {res}"
    assert res["path"] == str(path) and res["error"].startswith(f"{path}:")
    assert res["error"] == (f"{path}:{res['line']}: " if res["line"] else f"{path}: ") + res["message"]
    msg = res["message"]
    assert msg and "\n" not in msg and "Traceback" not in msg and len(msg) < 300, msg
    assert detail in msg.lower(), (detail, msg)


@pytest.mark.parametrize("name", list(CORPUS))
def test_reader_on_bad_input(corpus_dir, read_results, name):
    case = CORPUS[name][1]
    path = corpus_dir / f"{name}.xml"
    got = read_results[str(path)]
    default, skip = got["default"], got["skip"]
    assert got["maxrss_mb"] < MAX_RSS_MB, got
    assert default["seconds"] < MAX_SECONDS and skip["seconds"] < MAX_SECONDS, got
    if case.expect == "error":
        check_error(path, default, case.detail)
        # skip_bad_input: the same error recorded once, as a file error; nothing raised
        assert skip["ok"] and skip["file_errors"] == [[str(path), default["line"], default["message"]]]
        assert skip["skip_counts"].get("file error") == 1
        assert skip["programmes"] == skip["reported"]          # what was read before the failure
    else:
        for res in (default, skip):
            assert res["ok"], f"{name}: {res}"
            assert res["file_errors"] == [] and res["skip_counts"] == case.skips, res
            if case.programmes is not None:
                assert res["programmes"] == res["reported"] == case.programmes, res
            if case.skips:
                assert "skipped" in res["summary"]
    if name == "fifty_categories":
        assert default["max_categories"] == 50


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random damage: flipped bytes, a cut, a spliced copy, inserted markup or garbage."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op, at = rng.randrange(5), rng.randrange(len(data))
        if op == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            del data[at:]
        elif op == 2:
            src = rng.randrange(len(data))
            data[at:at] = data[src: src + rng.randint(1, 2000)]
        elif op == 3:
            data[at:at] = rng.choice([b"<", b">", b"&", b"</programme>", b"<title>", b"<!--", b"]]>",
                                      b"<!DOCTYPE tv [<!ENTITY a 'b'>]>", b"&#0;", b"\xc3", b"\x00"])
        else:
            data[at:at] = rng.randbytes(rng.randint(1, 64))
        if not data:
            break
    return bytes(data)


MUTANT_CHILD = PEAK_MB + r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
from pathlib import Path
from epgembed.build.ingest.epg import DumpError, ReadReport, read_programmes
out = []
for path in sorted(Path(sys.argv[1]).iterdir()):
    t = time.perf_counter()
    try:
        n = sum(1 for _ in read_programmes(path))
        res = {"ok": True, "programmes": n}
    except DumpError as e:
        res = {"ok": False, "error": str(e), "message": e.message}
    rep = ReadReport()
    n_skip = sum(1 for _ in read_programmes(path, skip_bad_input=True, report=rep))
    res.update(name=path.name, seconds=time.perf_counter() - t, skip_mode=n_skip, file_errors=len(rep.file_errors))
    out.append(res)
print(json.dumps({"results": out, "maxrss_mb": peak_mb()}))
"""


def test_random_mutations_of_a_valid_dump(tmp_path):
    """Seeded random damage to a valid dump (plain and gzip): an error naming the file, or a read."""
    rng = random.Random(20260101)
    base = valid_dump()
    for i in range(MUTANTS):
        data = mutate(base, rng)
        (tmp_path / f"m{i:04d}.xml").write_bytes(gzip.compress(data, mtime=0) if i % 4 == 3 else data)
    # and one damage that keeps the XML well-formed (a changed letter in a title): a read
    benign = base.replace(b"<title>Football Weekly", b"<title>Football Weeklx", 1)
    assert benign != base
    (tmp_path / f"m{MUTANTS:04d}.xml").write_bytes(benign)
    proc = subprocess.run([sys.executable, "-c", MUTANT_CHILD, str(tmp_path), str(MEMORY_LIMIT)],
                          capture_output=True, text=True, timeout=CASE_TIMEOUT * (4 if FUZZ else 1))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    assert got["maxrss_mb"] < MAX_RSS_MB
    for res in got["results"]:
        assert res["seconds"] < MAX_SECONDS, res
        if res["ok"]:
            assert res["file_errors"] == 0 and res["skip_mode"] == res["programmes"], res
        else:
            assert res["error"].startswith(str(tmp_path / res["name"]) + ":"), res
            assert "\n" not in res["message"] and res["file_errors"] == 1, res
    errors = sum(not r["ok"] for r in got["results"])
    assert len(got["results"]) == MUTANTS + 1 and 0 < errors < MUTANTS + 1
    assert got["results"][-1]["ok"]                                   # the benign one reads


# ---------------------------------------------------------------- through the CLI
DRIVER = PEAK_MB + r"""
import contextlib, io, json, resource, sys, time, traceback
import torch
torch.set_num_threads(1)
from epgembed.cli.main import main
import numpy as np
from epgembed.build.model.kernels import CompiledStep
from epgembed.build.model.sampling import PackedTitles
# compile (or load) the training kernels first: LLVM's one-time memory is not the input's
CompiledStep(np.zeros((4, 2), np.float32), np.zeros(4, np.float32), np.ones(4, np.float32), 1, 0.1,
             0.1)(PackedTitles(np.array([[1, 2], [3, 0], [2, 3]])), np.array([0, 1, 2]), 1,
                  np.ones((1, 1), bool), 2)
runs = json.loads(sys.argv[1])
base, out = peak_mb(), {}
for name, argv in runs:
    print("running", name, file=sys.stderr, flush=True)
    err, t = io.StringIO(), time.perf_counter()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    except SystemExit as e:
        code = e.code
    except BaseException:
        code = "uncaught"
        err.write(traceback.format_exc())
    out[name] = {"code": code, "stderr": err.getvalue(), "seconds": time.perf_counter() - t,
                 "rss_growth_mb": peak_mb() - base}
print(json.dumps(out))
"""
TINY = {"train": {"dim": 8, "epochs": 1, "min_examples": 0, "val_fraction": 0.0}, "index": {"n_trees": 2}}


def learnable(path: Path) -> bool:
    """Whether a readable dump has a category that can supervise training (on at least 2
    shows, at most 30% of them): without one there is nothing to learn, and no model."""
    from epgembed.config import Config
    from epgembed.build.pipeline import prepare
    return any(prepare([path], Config.from_dict(TINY), skip_bad_input=True).show_categories)


def test_cli_train_on_the_corpus(corpus_dir, tmp_path):
    """`epgembed train` (cli.main, in one process) on every case: exit 2 and one clear line for
    an error, no model directory and no temporary folder left; a model for readable input with
    something to learn (else exit 2, "nothing learned"). Then
    --skip-bad-input over the whole corpus directory trains on the rest and names each skipped file."""
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "out"
    common = ["--config", str(config), "--quiet", "--threads", "1"]
    runs = [[name, ["train", str(corpus_dir / f"{name}.xml"), "--out", str(out / name), *common]] for name in CORPUS]
    runs.append(["ALL", ["train", str(corpus_dir), "--skip-bad-input", "--out", str(out / "ALL"), *common]])
    try:
        proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(runs)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"CLI runs hung: {(e.stderr or b'').decode(errors='replace')[-500:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    for name in CORPUS:
        case, res, path, model = CORPUS[name][1], got[name], corpus_dir / f"{name}.xml", out / name
        assert res["seconds"] < MAX_SECONDS and "Traceback" not in res["stderr"], (name, res)
        if case.expect != "error" and case.programmes != 0 and not learnable(path):
            assert res["code"] == 2 and "nothing learned" in res["stderr"], (name, res)   # issue 26.14
            assert not model.exists(), name
            continue
        if case.expect != "error" and case.programmes != 0:
            assert res["code"] == 0 and (model / "manifest.json").is_file(), (name, res)
            assert res["stderr"].count("skipped: ") == sum(case.skips.values()), (name, res)
            continue
        lines = res["stderr"].splitlines()
        assert res["code"] == 2 and len(lines) == 1, (name, res)
        prefix = f"epgembed train: error: {path}:" if case.expect == "error" else "epgembed train: error: "
        assert lines[0].startswith(prefix), (name, res)
        assert not model.exists(), name
    assert not [p for p in out.iterdir() if p.name.startswith(".")]   # no temporary folders left
    assert max(r["rss_growth_mb"] for r in got.values()) < MAX_RSS_MB

    res = got["ALL"]
    assert res["code"] == 0 and "Traceback" not in res["stderr"], res
    skipped = [line for line in res["stderr"].splitlines() if line.startswith("skipped: ")]
    for name, (_, case) in CORPUS.items():
        named = [line for line in skipped if line.startswith(f"skipped: {corpus_dir / name}.xml")]
        assert len(named) == (1 if case.expect == "error" else sum(case.skips.values())), (name, named)
    manifest = json.loads((out / "ALL" / "manifest.json").read_text())
    assert len(manifest["data"]["skipped"]) == len(skipped)
