"""A models root written at format 1 (tests/data/root-v1, see tests/data/README.md) keeps
working under format 2, through the one converter (artifact/upgrade.py) and without a byte
of it rewritten: every version loads and answers, rollback moves between its versions, the
service serves it and falls back to the older version when the current one is damaged, and
a nightly run warm-starts from its current version, reads its history night and publishes a
format 2 version beside them.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from guide import tiny_programmes, write_xmltv
from epgembed import registry
from epgembed.artifact.manifest import FORMAT_VERSION, read_manifest
from epgembed.cli.main import main
from epgembed.nightly import history
from epgembed.nightly.gates import NightlyConfig
from epgembed.nightly.run import EXIT_PUBLISHED, run_nightly
from epgembed.query.load import load_model
from epgembed.query.requests import Options
from service.state import state
from service_util import serving_app

pytestmark = pytest.mark.integration

ROOT_V1 = Path(__file__).parent / "data" / "root-v1"
OLDER, NEWER = "20261207T150136Z-75561a15", "20261207T150136Z-b6f84c37"     # NEWER is current
# a tiny root's one night cannot meet the real gates' sizes: these test the format, not them
LOOSE = NightlyConfig(min_test_queries=1, min_lift_over_random=-1.0, tolerance=1.0, keep=10)


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


@pytest.fixture
def root(tmp_path) -> Path:
    out = tmp_path / "root"
    shutil.copytree(ROOT_V1, out, symlinks=True)
    return out


def test_the_committed_root_is_of_format_1(root):
    assert registry.current_version(root) == NEWER
    for v in (OLDER, NEWER):
        on_disk = json.loads((registry.versions_dir(root) / v / "manifest.json").read_text())
        assert on_disk["format_version"] == 1 and FORMAT_VERSION == 2
    night = gzip.decompress((root / "history" / "2026-01-01.jsonl.gz").read_bytes())
    assert json.loads(night.splitlines()[0])[0] == "ch1"                  # a row: no header line


def test_every_version_loads_and_answers_and_nothing_is_rewritten(root):
    before = digest(root)
    for v in (OLDER, NEWER):
        model = load_model(registry.versions_dir(root) / v)
        assert model.version == v and model.manifest.format_version == FORMAT_VERSION
        assert model.manifest.feature_kinds == {"channel": 49, "day": 49, "episodic": 49, "slot": 49}
        assert model.manifest.search.method == "exact" and model.neighbours is not None
        titles = [h.title for h in model.related("Football Weekly", Options(k=5)).related]
        assert len(titles) == 5 and "Football Weekly" not in titles
        assert len(model.related("Tennis Highlights Special", Options(k=5)).related) == 5      # never seen
        assert [h.id for h in model.related_to_id(0, Options(k=3)).related]
    assert registry.list_versions(root) == [
        {"version": OLDER, "created": "2026-12-07T15:01:36Z", "n_shows": 49, "quality": {}, "current": False,
         "refresh_of": None, "added": 0},
        {"version": NEWER, "created": "2026-12-07T15:01:36Z", "n_shows": 49, "quality": {}, "current": True,
         "refresh_of": None, "added": 0}]
    assert digest(root) == before


def test_rollback_between_its_versions(root, capsys):
    assert main(["rollback", "--models-root", str(root)]) == 0
    assert registry.current_version(root) == OLDER and f"{NEWER} -> {OLDER}" in capsys.readouterr().out
    assert load_model(registry.current_dir(root)).version == OLDER
    assert registry.rollback(root, NEWER) == (OLDER, NEWER)
    assert load_model(registry.current_dir(root)).version == NEWER


def test_the_service_serves_it_and_falls_back_when_the_current_version_is_damaged(root, tmp_path):
    with serving_app(root, run_dir=tmp_path / "run") as app:
        c = app.test_client()
        assert c.get("/readyz").get_json()["model"]["version"] == NEWER
        info = c.get("/v1/model").get_json()
        assert info["version"] == NEWER and info["shows"] == 49 and info["counts"]["shows"] == 49
        r = c.get("/v1/related", query_string={"title": "Football Weekly", "k": 3})
        assert r.status_code == 200 and len(r.get_json()["related"]) == 3
    vectors = registry.versions_dir(root) / NEWER / "vectors.npy"
    vectors.write_bytes(vectors.read_bytes()[:-16])                         # a damaged current version
    with serving_app(root, run_dir=tmp_path / "run2") as app:
        c = app.test_client()
        ready = c.get("/readyz").get_json()
        assert ready["model"]["version"] == OLDER and ready["decision"]["refused"]["name"] == NEWER
        assert "vectors.npy" in ready["decision"]["refused"]["reason"]
        assert state(app).holder.get().name == OLDER
        r = c.get("/v1/related", query_string={"title": "Football Weekly", "k": 3})
        assert r.status_code == 200 and r.get_json()["model"]["version"] == OLDER


@pytest.mark.usefixtures("one_torch_thread")
def test_a_nightly_run_warm_starts_from_it_and_reads_its_history_night(root, tmp_path):
    dump = write_xmltv(tmp_path / "night.xml.gz", [             # the history night's, a day later,
        p.replace("20260101060000", f"20260102{6 + i // 60:02d}{i % 60:02d}00")  # one airing a minute
        for i, p in enumerate(tiny_programmes())])
    cfg = read_manifest(registry.current_dir(root)).model_config()         # the config it was built with
    result = run_nightly([dump], root, LOOSE, cfg)
    assert result.exit_code == EXIT_PUBLISHED, result.summary
    report = result.report
    assert report["warm_start"]["used"] and report["warm_start"]["tokens_carried"] > 0, report["warm_start"]
    assert report["history"]["nights_used"] == ["2026-01-01"] and report["previous"] == NEWER
    new = report["version"]
    assert registry.current_version(root) == new and read_manifest(registry.current_dir(root)).quality
    on_disk = json.loads((registry.versions_dir(root) / new / "manifest.json").read_text())
    assert on_disk["format_version"] == 2 and on_disk["quality"] == report["quality"]["new"]
    assert [n.isoformat() for n in history.committed_nights(root)] == ["2026-01-01", "2026-01-02"]
    assert len(list(history.read_night(root, history.parse_night("2026-01-01")))) == 97
    assert registry.rollback(root, NEWER) == (new, NEWER)                  # back to the format 1 version
    assert load_model(registry.current_dir(root)).version == NEWER
