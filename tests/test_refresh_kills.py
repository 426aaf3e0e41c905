"""kill -9 at every rename of a refresh (issue 24; slow: `make test-slow`).

A refresh in a subprocess whose os.rename / os.replace SIGKILLs the process at its Nth call,
for every N of one run (counted by a first run that kills nothing), as
tests/test_nightly_kills.py does for the nightly. The root is the five nights' with one
refresh already published, so the killed run also prunes (keep one refresh). After each
kill: `current` is a complete version that loads, the old one or the new one; the history
is the nightly's, untouched; the next refresh cleans what the kill left and publishes (or
finds nothing new), and a nightly after it publishes on top.
"""
from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from epgembed import registry
from epgembed.nightly.refresh import RefreshConfig, run_refresh
from epgembed.nightly.run import EXIT_PUBLISHED, run_nightly
from epgembed.query.load import load_model
from guide import programme_xml, write_xmltv
from nightly_util import CFG, KILLING_RENAMES, NCFG, counted_renames, killed_at, leftovers, nights_of

pytestmark = [pytest.mark.slow, pytest.mark.system, pytest.mark.usefixtures("one_torch_thread")]

RUN = KILLING_RENAMES + r"""
from epgembed.nightly.refresh import RefreshConfig, run_refresh
log, root, dump = sys.argv[2:5]
result = run_refresh([dump], root, RefreshConfig(keep_refreshes=1))
with open(log, "w") as f:
    json.dump({"status": result.status, "summary": result.summary, "renames": calls}, f)
"""


def refresh(kill_at: int, root: Path, log: Path, dump: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUN, str(kill_at), str(log), str(root), str(dump)],
                          capture_output=True, text=True, timeout=300)


def dump_of(path: Path, titles: list[str]) -> Path:
    return write_xmltv(path, [programme_xml(t, ["Krimi"], channel="ch1", start=f"20220726{i:02d}0000 +0200")
                              for i, t in enumerate(titles)])


def test_kill_9_at_every_rename_of_a_refresh(five_nights, daily_dumps, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(five_nights[0], base, symlinks=True)
    first = run_refresh([dump_of(tmp_path / "first.xml", ["Mord im Watt: Teil Eins"])], base)
    assert first.status == "published", first.summary
    nights, dump = nights_of(base), dump_of(tmp_path / "second.xml", ["Mord am Deich", "Der Fall Kessler"])
    run = functools.partial(refresh, dump=dump)
    renames = counted_renames(run, base, tmp_path)
    assert len(renames) >= 5, renames        # manifest, build folder, staging, version, current, prune
    outcomes = []
    for n in range(1, len(renames) + 1):
        root = killed_at(run, n, base, tmp_path, renames)
        current = registry.current_version(root)
        served = load_model(registry.current_dir(root))          # complete: it loads and self-tests
        new = current != first.version
        assert served.version == current and (not new or served.manifest.refresh.of == first.version), n
        assert nights_of(root) == nights, (n, renames[n - 1])
        after = run_refresh([dump], root, RefreshConfig(keep_refreshes=1))      # cleans, then adds or not
        assert after.status == ("unchanged" if new else "published"), (n, after.summary)
        assert leftovers(root) == [], (n, leftovers(root))
        for v in registry.list_versions(root):                       # no half-written version
            load_model(registry.versions_dir(root) / v["version"])
        assert nights_of(root) == nights, n
        outcomes.append((n, Path(renames[n - 1][1]).name, new))
    assert any(new for *_, new in outcomes) and not all(new for *_, new in outcomes), outcomes
    # and a nightly after the latest one publishes on top of it
    last = tmp_path / f"kill-{len(renames)}"
    result = run_nightly([daily_dumps[-1], dump], last, replace(NCFG, night="2022-07-26"), CFG)
    assert result.exit_code == EXIT_PUBLISHED, result.summary
