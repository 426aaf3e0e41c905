"""The model fallback and the served files' check (issue 26.4 and 26.16), in process: two
holders on one run directory stand for two gunicorn workers (the same over real gunicorn,
with SIGBUS and kill -9: tests/test_service_faults_live.py).

- a replacement worker that serves nothing yet, whose decided version no longer loads
  (`rm versions/$CUR/index.ann`), falls back to the older version instead of crashing in
  the fallback (TypeError: None in the names), and the other worker follows;
- a same-size overwrite of a served file (dd conv=notrunc) is found by the watcher within
  2 poll intervals: every worker falls back to the older version, `current` refused with
  the file named; with no other version, /readyz says not ready and names the file;
- what does not change the content (a new hard link, a touch) is no damage; a change
  the stat cannot see is found by the rolling re-hash.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from epgembed.artifact.manifest import read_manifest
from epgembed.query.load import load_model
from epgembed.query.requests import Options
from epgembed.registry import versions_dir
from polling import holds_for, wait_until
from service.holder import ModelHolder
from service.integrity import ServedFiles, stamps
from service_util import make_root

pytestmark = pytest.mark.integration

POLL = 1.0


def overwrite_in_place(path: Path) -> None:
    """What `dd conv=notrunc` does: other bytes over the middle of the file, same size."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2)
        old = f.read(256)
        f.seek(size // 2)
        f.write(bytes(255 - b for b in old))
    assert path.stat().st_size == size


def holders(root: Path, run: Path, n: int = 2, poll: float = POLL) -> list[ModelHolder]:
    out = []
    for _ in range(n):
        h = ModelHolder(root, poll_seconds=poll, run_dir=run)
        h.start()
        out.append(h)
    return out


def test_a_replacement_worker_falls_back_when_the_decided_version_lost_a_file(two_versions, tmp_path, caplog):
    root, a, b = two_versions
    run = tmp_path / "run"
    (first,) = holders(root, run, 1)
    try:
        assert first.get().name == b
        (versions_dir(root) / b / "index.ann").unlink()     # the first worker still has it mapped
        replacement = ModelHolder(root, poll_seconds=0, run_dir=run)   # a worker killed and replaced
        replacement.start()
        replacement.stop()
        assert "reload_check_failed" not in caplog.text, caplog.text
        assert replacement.get() is not None and replacement.get().name == a
        decision = replacement.shared.read()
        assert decision.serve == a and decision.refused.name == b and "index.ann" in decision.refused.reason
        wait_until(lambda: first.get().name == a, timeout=2 * POLL, what="the first worker to follow")
        ready, body = first.readiness()
        assert ready, body
    finally:
        first.stop()


def test_a_same_size_overwrite_moves_every_worker_to_the_older_version(two_versions, tmp_path):
    root, a, b = two_versions
    hs = holders(root, tmp_path / "run")
    try:
        assert {h.get().name for h in hs} == {b} and all(h.readiness()[0] for h in hs)
        overwrite_in_place(versions_dir(root) / b / "neighbours.npy")
        wait_until(lambda: all(h.get().name == a for h in hs), timeout=2 * POLL,
                   what="every worker on the older version within 2 poll intervals")
        for h in hs:
            ready, body = h.readiness()
            assert ready and body["decision"]["refused"]["name"] == b, body
            assert "neighbours.npy" in body["decision"]["refused"]["reason"], body
        older = load_model(versions_dir(root) / a).related_to_id(0, Options(k=5)).related
        assert all(h.get().model.related_to_id(0, Options(k=5)).related == older for h in hs)
    finally:
        for h in hs:
            h.stop()


def test_an_overwrite_with_no_other_version_makes_the_worker_not_ready(tmp_path, tiny_model_dir):
    root = tmp_path / "root"
    a = make_root(root, tiny_model_dir)
    (h,) = holders(root, tmp_path / "run", 1)
    try:
        assert h.readiness()[0] is True
        overwrite_in_place(versions_dir(root) / a / "vectors.npy")

        def reason() -> str | None:
            ready, body = h.readiness()
            return None if ready else body["reason"]
        why = wait_until(reason, timeout=2 * POLL, what="/readyz to say not ready")
        assert f"versions/{a} changed since it was loaded" in why and "vectors.npy" in why, why
    finally:
        h.stop()


def test_a_new_hard_link_or_a_touch_is_no_damage(two_versions, tmp_path):
    root, a, b = two_versions
    (h,) = holders(root, tmp_path / "run", 1)
    try:
        folder = versions_dir(root) / b
        os.link(folder / "neighbours.npy", tmp_path / "other-name.npy")   # ctime changes, content does not
        os.utime(folder / "vectors.npy")                                    # mtime changes
        holds_for(lambda: h.get().name == b and h.readiness()[0], seconds=2.5 * POLL,
                  what="serving b, ready")
    finally:
        h.stop()


def test_the_rolling_rehash_finds_a_change_the_stat_does_not_show(tmp_path, tiny_model_dir):
    folder = tmp_path / "model"
    folder.mkdir()
    for f in tiny_model_dir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    manifest = read_manifest(folder)
    target = folder / "embeddings.npy"
    overwrite_in_place(target)
    files = ServedFiles(folder, manifest, stamps(folder))     # stamps of the changed files: stat sees nothing
    found = [files.check() for _ in range(len(manifest.files) + 1)]
    why = next(x for x in found if x is not None)
    assert "embeddings.npy" in why and "re-hash" in why
    assert files.check(roll=False) == why                    # remembered: the stat pass reports it on
    intact = ServedFiles(tiny_model_dir, read_manifest(tiny_model_dir), stamps(tiny_model_dir))
    assert [intact.check() for _ in range(len(manifest.files) + 1)] == [None] * (len(manifest.files) + 1)
