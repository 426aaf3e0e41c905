"""kill -9 at every rename of a nightly run (issue 26.3; slow: `make test-slow`).

A nightly run in a subprocess whose os.rename / os.replace SIGKILLs the process at its Nth
call, for every N of one run (counted by a first run that kills nothing): deterministic,
no timing. After each kill: `current` is a complete version, the history holds the new
night exactly when `current` is the new version (after the next run's recovery), and the
next run deletes nothing published.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict, replace
from datetime import date
from pathlib import Path

import pytest

from epgembed import registry
from epgembed.query.load import load_model
from epgembed.nightly import history
from epgembed.nightly.run import EXIT_GATED, EXIT_PUBLISHED, run_nightly
from nightly_util import CFG, NCFG, leftovers, nights_of

pytestmark = [pytest.mark.slow, pytest.mark.system, pytest.mark.usefixtures("one_torch_thread")]

NIGHT = "2022-07-26"
RUN = r"""
import json, os, signal, sys
import torch
from epgembed.config import Config
from epgembed.nightly.run import NightlyConfig, run_nightly
kill_at, log, root, dump, cfg, ncfg = sys.argv[1:7]
kill_at, calls = int(kill_at), []
torch.set_num_threads(1)

def killing(real):
    def rename(src, dst, *args, **kwargs):
        calls.append([os.fspath(src), os.fspath(dst)])
        if len(calls) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *args, **kwargs)
    return rename

os.rename, os.replace = killing(os.rename), killing(os.replace)
result = run_nightly([dump], root, NightlyConfig(**json.loads(ncfg)), Config.from_dict(json.loads(cfg)))
with open(log, "w") as f:
    json.dump({"status": result.status, "renames": calls}, f)
"""


def nightly(kill_at: int, root: Path, dump: Path, log: Path) -> subprocess.CompletedProcess:
    quick = CFG.replace(train={"epochs": 1})        # a warm-started epoch passes the gate
    args = [str(kill_at), str(log), str(root), str(dump), json.dumps(quick.to_dict()),
            json.dumps({**asdict(NCFG), "night": NIGHT})]
    return subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True, timeout=300)


def test_kill_9_at_every_rename_of_a_nightly_run(five_nights, daily_dumps, tmp_path):
    base, dump = five_nights[0], daily_dumps[-1]
    before, nights = registry.current_version(base), nights_of(base)
    counting = tmp_path / "count"
    shutil.copytree(base, counting, symlinks=True)
    done = nightly(0, counting, dump, tmp_path / "count.json")
    assert done.returncode == 0, done.stderr[-2000:]
    log = json.loads((tmp_path / "count.json").read_text())
    assert log["status"] == "published", log
    renames = log["renames"]
    assert len(renames) >= 8, renames        # build, staging, version, current, history x2, reports
    empty = tmp_path / "empty.xml"
    empty.write_bytes(b"")
    outcomes = []
    for n in range(1, len(renames) + 1):
        root = tmp_path / f"kill-{n}"
        shutil.copytree(base, root, symlinks=True)
        killed = nightly(n, root, dump, tmp_path / f"kill-{n}.json")
        assert killed.returncode == -9, (n, renames[n - 1], killed.stderr[-2000:])
        current = registry.current_version(root)
        assert current is not None and load_model(registry.current_dir(root)).version == current, n
        new = current != before
        # the next run (gated at once: an empty dump) recovers or cleans what the kill left
        after = run_nightly([empty], root, replace(NCFG, night=NIGHT), CFG)
        assert after.exit_code == EXIT_GATED, (n, after.summary)
        assert registry.current_version(root) == current, n
        if new:                     # the oldest night may have been pruned before the kill
            assert NIGHT in nights_of(root), (n, renames[n - 1], after.report["cleaned"])
            assert set(nights[1:]) <= set(nights_of(root)), n
            meta = history.read_meta(root, date.fromisoformat(NIGHT))
            assert meta["version"] == current, n
            assert len(list(history.read_night(root, date.fromisoformat(NIGHT)))) \
                == meta["stats"]["programmes"], n
        else:
            assert nights_of(root) == nights, (n, renames[n - 1])
        for v in registry.list_versions(root):                         # no half-written version
            load_model(registry.versions_dir(root) / v["version"])
        assert leftovers(root) == [], (n, leftovers(root))
        outcomes.append((n, Path(renames[n - 1][1]).name, new))
    assert any(new for *_, new in outcomes) and not all(new for *_, new in outcomes), outcomes
    # and the run after the latest recovery publishes on top of it
    last = tmp_path / f"kill-{len(renames)}"
    result = run_nightly([daily_dumps[-1]], last, replace(NCFG, night="2022-07-27"), CFG)
    assert result.exit_code == EXIT_PUBLISHED, result.summary
    assert NIGHT in nights_of(last) and "2022-07-27" in nights_of(last)
