"""Nightly retraining: five real nights published in turn, gates, crash safety, lock, rollback.

The five nights (tests/nightly_util.py: real daily dumps reduced to every fourth channel, a
small config) run once a session (conftest.py); each test works on a private copy.
"""
from __future__ import annotations

import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from epgembed.nightly import history

from epgembed import registry
from epgembed.query.load import load_model
from epgembed.cli.main import main
from epgembed.nightly.run import EXIT_ERROR, EXIT_GATED, EXIT_PUBLISHED, run_nightly
from epgembed.nightly.quality import warm_start_table
from nightly_util import CFG, NCFG, NIGHTS, assert_current_valid, leftovers, nights_of, rewrite_dump

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def dumps(daily_dumps) -> list[Path]:
    return daily_dumps


@pytest.fixture(scope="module")
def published(five_nights):
    """The five nights run in turn into one root; (root, results, current after each)."""
    return five_nights


@pytest.fixture
def root(nightly_root) -> Path:
    return nightly_root


# ---------------------------------------------------------------- the five nights
def test_five_real_nights_publish_in_turn(published):
    root, results, currents = published
    assert [r.exit_code for r in results] == [EXIT_PUBLISHED] * 5, [r.summary for r in results]
    versions = [r.report["version"] for r in results]
    assert currents == versions and len(set(versions)) == 5            # each became current
    assert [r.report["night"] for r in results] == NIGHTS              # dated from start times
    for r in results:
        q = r.report["quality"]
        assert q["new"]["n_test"] >= NCFG.min_test_queries
        assert q["new"]["p_at_10"] > q["random"]["p_at_10"] + NCFG.min_lift_over_random
        assert set(r.report["timings"]) >= {"ingest_s", "train_s", "index_s", "evaluate_s", "publish_s"}
        assert r.summary.startswith(f"nightly {r.report['night']}: PUBLISHED {r.report['version']}")
    for r in results[1:]:                                               # vs the previous version
        assert r.report["warm_start"]["used"] and r.report["warm_start"]["tokens_carried"] > 100
        assert 0.0 < r.report["stability"]["common"] <= 1.0
        assert r.report["quality"]["current"]["n_test"] == r.report["quality"]["new"]["n_test"]
        assert r.report["changes"]["added"] > 0 and "examples" in r.report["changes"]
    # keep=4: the oldest version pruned; history_nights=3: nights 21 and 22 aged out
    assert [v["version"] for v in registry.list_versions(root)] == versions[1:]
    assert results[-1].report["pruned"]["versions"] == [versions[0]]
    assert results[-1].report["history"]["nights_used"] == ["2022-07-23", "2022-07-24"]
    assert [n.isoformat() for n in history.committed_nights(root)] == NIGHTS[2:]
    report = json.loads((registry.current_dir(root) / "report.json").read_text())
    assert report["status"] == "published" and report["gate"]["decision"] == "publish"
    assert "P@10d" in results[-1].summary
    # the served model's manifest holds the held-out figures it was gated on (/v1/model shows them)
    served = load_model(registry.current_dir(root)).manifest.quality
    assert served == results[-1].report["quality"]["new"] and 0 < served["p_at_10d"] <= 1
    assert leftovers(root) == []


# ---------------------------------------------------------------- gates
def test_truncated_and_empty_dumps_are_gated(root, dumps, tmp_path):
    before = registry.current_version(root)
    data = dumps[-1].read_bytes()
    truncated = tmp_path / "truncated.xml.gz"
    truncated.write_bytes(data[: len(data) // 2])
    empty = tmp_path / "empty.xml.gz"
    empty.write_bytes(b"")
    programmes = gzip.decompress(data).decode("utf-8").split("<programme ")
    short = tmp_path / "short.xml"   # well-formed, a tenth of the listings
    short.write_text("<programme ".join(programmes[: len(programmes) // 10]).rsplit("</programme>", 1)[0]
                     + "</programme></tv>\n", encoding="utf-8")
    for dump, why in [(truncated, "failed to parse"), (empty, "empty file"),
                      (short, "far fewer programmes")]:
        result = run_nightly([dump], root, replace(NCFG, night="2022-07-26"), CFG)
        assert result.exit_code == EXIT_GATED, result.summary
        assert result.report["gate"]["stage"] == "input"
        assert any(why in r for r in result.report["gate"]["reasons"]), result.report["gate"]
        assert_current_valid(root, before)
        assert result.report_path.parent == root / "reports" and result.report_path.is_file()
    assert len(registry.list_versions(root)) == 4 and leftovers(root) == []
    assert "2022-07-26" not in [n.isoformat() for n in history.committed_nights(root)]


def test_a_misdated_dump_is_gated_and_never_erases_the_history(root, dumps, tmp_path):
    """Issue 14.1: the last night's dump shifted by a month. Gated with the reason; with
    --force it publishes, and the real nights stay in the window and in the history."""
    before, kept = registry.current_version(root), nights_of(root)
    shifted = rewrite_dump(dumps[-1], tmp_path / "s.xml.gz", lambda t: re.sub(
        r'(start|stop)="202207', r'\1="202208', t))
    result = run_nightly([shifted], root, NCFG, CFG)
    assert result.exit_code == EXIT_GATED and result.report["gate"]["stage"] == "input"
    assert "dump dated 2022-08-25, far outside the recent nights" in result.report["gate"]["reasons"][0]
    assert_current_valid(root, before)
    assert nights_of(root) == kept == NIGHTS[2:]
    forced = run_nightly([shifted], root, replace(NCFG, force=True), CFG)
    assert forced.exit_code == EXIT_PUBLISHED, forced.summary
    assert "far outside" in forced.report["forced"][0]
    assert forced.report["history"]["nights_used"] == NIGHTS[3:]         # the real nights, by count
    # the real nights still feed the catalog: it keeps what the catalog gate asks of a night
    assert forced.report["changes"]["dropped"] < 0.3 * forced.report["catalog"]["shows"]
    assert not any("would drop" in r for r in forced.report["forced"])
    assert nights_of(root) == NIGHTS[3:] + ["2022-08-25"]               # kept by count (3)


@pytest.mark.parametrize("edit, stage, why", [
    (lambda t: re.sub(r"<category([^>]*)>[^<]*</category>", r"<category\1>Sonstiges</category>", t),
     "input", "far fewer usable categories"),
    (lambda t: re.sub(r"<category([^>]*)>([^<]*)</category>", r"<category\1>Neu \2</category>", t),
     "input", "category names appear tonight"),
    (lambda t: shuffle_categories(t), "catalog", "keep any of their categories"),
], ids=["collapsed", "renamed", "shuffled"])
def test_broken_categories_are_gated(root, dumps, tmp_path, edit, stage, why):
    """Issue 14.2: one category on every programme, every category renamed one to one,
    or the labels shuffled between programmes: refused before any training."""
    before, kept = registry.current_version(root), nights_of(root)
    broken = rewrite_dump(dumps[-1], tmp_path / "c.xml.gz", edit)
    result = run_nightly([broken], root, replace(NCFG, night="2022-07-26"), CFG)
    assert result.exit_code == EXIT_GATED, result.summary
    assert result.report["gate"]["stage"] == stage
    assert any(why in r for r in result.report["gate"]["reasons"]), result.report["gate"]
    assert "training" not in result.report
    assert_current_valid(root, before)
    assert nights_of(root) == kept


def shuffle_categories(text: str) -> str:
    """Every <category> text moved to another programme's (seeded)."""
    pattern = re.compile(r"(<category[^>]*>)([^<]*)(</category>)")
    labels = [m.group(2) for m in pattern.finditer(text)]
    random.Random(0).shuffle(labels)
    it = iter(labels)
    return pattern.sub(lambda m: m.group(1) + next(it) + m.group(3), text)


def test_a_night_that_drops_most_of_the_catalog_is_gated(root, dumps, tmp_path):
    """Issue 14.1: with no history to fall back on (history_nights=1), a dump whose titles
    are all new would drop every current show: gated, and --force accepts it."""
    before = registry.current_version(root)
    renamed = rewrite_dump(dumps[-1], tmp_path / "r.xml.gz",
                           lambda t: re.sub(r"<title([^>]*)>", r"<title\1>Neu ", t))
    ncfg = replace(NCFG, history_nights=1, night="2022-07-26")
    result = run_nightly([renamed], root, ncfg, CFG)
    assert result.exit_code == EXIT_GATED and result.report["gate"]["stage"] == "catalog"
    assert "tonight would drop" in result.report["gate"]["reasons"][0]
    assert_current_valid(root, before)
    forced = run_nightly([renamed], root, replace(ncfg, force=True), CFG)
    assert forced.exit_code == EXIT_PUBLISHED and "tonight would drop" in forced.report["forced"][0]


def test_a_retry_with_the_same_inputs_publishes_nothing(root, dumps, capsys):
    """Issue 17: a cron retry of the night just published is "unchanged" (exit 0, no new
    version); --force retrains."""
    before, versions = registry.current_version(root), registry.list_versions(root)
    again = run_nightly([dumps[-1]], root, NCFG, CFG)
    assert again.exit_code == EXIT_PUBLISHED and again.status == "unchanged", again.summary
    assert "UNCHANGED" in again.summary and "--force retrains" in again.summary
    assert registry.current_version(root) == before and registry.list_versions(root) == versions
    forced = run_nightly([dumps[-1]], root, replace(NCFG, force=True), CFG)
    assert forced.exit_code == EXIT_PUBLISHED and forced.status == "published", forced.summary
    assert registry.current_version(root) != before
    # other settings (the CLI's defaults) are not the same inputs; this run may publish a
    # model of the full config, so it comes last (a later small-config run would be gated)
    assert main(["nightly", "--dumps", str(dumps[-1]), "--models-root", str(root)]) in (0, 3)
    assert "UNCHANGED" not in capsys.readouterr().out


def test_quality_drop_is_gated(root, dumps):
    before = registry.current_version(root)
    broken = CFG.replace(train={"lr": 0.0})         # nothing learnt: random token vectors
    result = run_nightly([dumps[-1]], root, replace(NCFG, warm_start=False), broken)
    assert result.exit_code == EXIT_GATED, result.summary
    assert result.report["gate"]["stage"] == "quality"
    assert any("P@10" in r for r in result.report["gate"]["reasons"])
    assert result.report["quality"]["new"]["p_at_10"] < result.report["quality"]["current"]["p_at_10"]
    assert_current_valid(root, before)
    assert len(registry.list_versions(root)) == 4 and leftovers(root) == []


def test_artifact_validation_failure_is_gated(root, dumps, monkeypatch):
    import epgembed.nightly.stages
    from epgembed.artifact.manifest import ModelError
    before = registry.current_version(root)

    def corrupt_new_model(path):                   # the current version still loads
        if ".build-" not in str(path):
            return load_model(path)
        raise ModelError(f"{path}: index.ann does not match its sha256 in the manifest")
    monkeypatch.setattr(epgembed.nightly.stages, "load_model", corrupt_new_model)
    result = run_nightly([dumps[-1]], root, replace(NCFG, night="2022-07-26"), CFG)
    assert result.exit_code == EXIT_GATED and result.report["gate"]["stage"] == "validation"
    assert "sha256" in result.report["gate"]["reasons"][0] and "current_error" not in result.report
    monkeypatch.undo()
    assert_current_valid(root, before)
    assert len(registry.list_versions(root)) == 4 and leftovers(root) == []


def test_cli_exit_codes_and_summary(root, tmp_path, capsys):
    empty = tmp_path / "empty.xml"
    empty.write_bytes(b"")
    code = main(["nightly", "--dumps", str(empty), "--models-root", str(root)])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == EXIT_GATED and len(out) == 1 and "GATED" in out[0]
    assert main(["versions", "--models-root", str(root)]) == 0
    listing = capsys.readouterr().out
    assert f"* {registry.current_version(root)}" in listing


# ---------------------------------------------------------------- crash safety
CRASH = r"""
import json, os, signal, sys
from pathlib import Path
import torch
import epgembed.build.index.build, epgembed.nightly.run, epgembed.registry
from epgembed.config import Config
from epgembed.nightly.run import NightlyConfig, run_nightly
point, root, dump, cfg, ncfg = sys.argv[1:6]
torch.set_num_threads(1)
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if point == "train":        # mid-training
    epgembed.nightly.run.fit = die
elif point == "write":      # mid-write: tokenizer, arrays, catalog written, index not yet
    epgembed.build.index.build.build_index = die
elif point == "validate":   # written and fsynced, moved to staging, before validation
    epgembed.registry.load_model = die
elif point == "swap":       # version complete, temp symlink made, `current` not yet replaced
    real = os.replace
    os.replace = lambda src, dst: die() if Path(dst).name == "current" else real(src, dst)
run_nightly([dump], root, NightlyConfig(**json.loads(ncfg)), Config.from_dict(json.loads(cfg)))
"""


def test_kill_9_at_any_point_leaves_a_valid_current(published, dumps, tmp_path):
    points = ["train", "write", "validate", "swap"]
    roots, procs = {}, {}
    for point in points:
        roots[point] = tmp_path / point
        shutil.copytree(published[0], roots[point], symlinks=True)
        quick = CFG.replace(train={"epochs": 1})    # a warm-started epoch passes the gate
        args = [point, str(roots[point]), str(dumps[-1]), json.dumps(quick.to_dict()),
                json.dumps({**asdict(NCFG), "night": "2022-07-26"})]
        procs[point] = subprocess.Popen([sys.executable, "-c", CRASH, *args],
                                        stderr=subprocess.PIPE)
    before = registry.current_version(published[0])
    for point in points:
        root, proc = roots[point], procs[point]
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == -9, (point, err.decode()[-2000:])
        assert_current_valid(root, before)
        for v in registry.list_versions(root):                     # no half-written version
            load_model(registry.versions_dir(root) / v["version"])
        assert bool(leftovers(root)) == (point != "train"), (point, leftovers(root))
        if point != "swap":  # what the next run does first, under the lock
            with registry.locked(root):
                assert len(registry.clean_stale(root)) == (point != "train")
            assert leftovers(root) == []
    # the next run after the latest possible crash: cleans up, publishes, current moves on
    root = roots["swap"]
    result = run_nightly([dumps[-1]], root, replace(NCFG, night="2022-07-26"), CFG)
    assert result.exit_code == EXIT_PUBLISHED, result.summary
    # what the swap crash left: the temp symlink, and tonight's staged (uncounted) history night
    cleaned = sorted(result.report["cleaned"])
    assert len(cleaned) == 3 and cleaned[0].startswith(".current.tmp-"), cleaned
    assert all(c.startswith("history/.2022-07-26.json") and ".tmp-" in c for c in cleaned[1:]), cleaned
    assert leftovers(root) == []
    assert_current_valid(root, result.report["version"])


# ---------------------------------------------------------------- lock
def test_lock_refuses_a_concurrent_run(root, dumps, capsys, tiny_model_dir):
    before = registry.current_version(root)
    with registry.locked(root):
        with pytest.raises(registry.RootLocked, match="held by another run"):
            run_nightly([dumps[-1]], root, NCFG, CFG)
        assert main(["nightly", "--dumps", str(dumps[-1]), "--models-root", str(root)]) == EXIT_ERROR
        assert "held by another run" in capsys.readouterr().err
        assert main(["rollback", "--models-root", str(root)]) == EXIT_ERROR
        assert main(["publish", str(tiny_model_dir), "--root", str(root)]) == EXIT_ERROR
        assert "held by another run" in capsys.readouterr().err
    assert registry.current_version(root) == before
    with registry.locked(root):                     # released: can be taken again
        pass


# ---------------------------------------------------------------- rollback
def test_rollback_and_the_service_follows(root, capsys):
    names = [v["version"] for v in registry.list_versions(root)]
    assert registry.current_version(root) == names[-1]
    assert main(["rollback", "--models-root", str(root)]) == 0
    assert f"-> {names[-2]}" in capsys.readouterr().out
    assert_current_valid(root, names[-2])
    registry.rollback(root, names[0])
    assert_current_valid(root, names[0])
    # a broken version is refused; current stays
    broken = registry.versions_dir(root) / names[1] / "vectors.npy"
    broken.write_bytes(broken.read_bytes()[:-8])
    assert main(["rollback", "--models-root", str(root), "--to", names[1]]) == EXIT_ERROR
    assert "manifest says" in capsys.readouterr().err       # size differs from the manifest
    assert_current_valid(root, names[0])
    assert main(["rollback", "--models-root", str(root), "--to", "../etc"]) == EXIT_ERROR
    # pruning never deletes the current version, even when it is the oldest
    assert registry.prune(root, 2) == names[1:3]
    assert [v["version"] for v in registry.list_versions(root)] == [names[0], names[3]]
    assert_current_valid(root, names[0])


def test_warm_start_maps_tokens_by_string(published):
    root = published[0]
    model = load_model(registry.current_dir(root))
    table, carried = warm_start_table(model.tokenizer, model.tokenizer, np.asarray(model.embeddings),
                                      0.01, 0)
    assert carried == model.tokenizer.vocab_size - 1
    assert np.array_equal(table, np.asarray(model.embeddings))
