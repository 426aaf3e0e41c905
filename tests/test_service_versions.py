"""All workers serve one version (issue 14.5): the shared decision in the run directory.

- in process: a served folder that is deleted moves the workers, within a tick, to the
  newest other version that loads, recorded as a refusal of `current`; with no other
  version, /readyz says the folder is missing (503, the `served_folder_missing` gauge) while
  the held model answers on; /readyz never waits for a hung models root; a second holder that starts later
  follows the recorded decision instead of choosing for itself; a worker record that names
  another version makes /readyz not ready until that worker is gone.
- real gunicorn (2 workers): the current version's folder is deleted, an older version
  present, and one worker is killed with SIGKILL: both workers converge on the older
  version, and /readyz never answers 200 while the live workers serve two versions.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest
import requests

from epgembed.query.requests import Options
from epgembed.registry import point_current, versions_dir
from service.holder import ModelHolder
from service.shared import Shared
from service.state import state
from polling import holds_for, wait_until
from service_util import make_root, publish_corrupt, serving_app
from test_faults_process import children
from test_service_gunicorn import start

pytestmark = pytest.mark.system

INFO = re.compile(r'^epgembed_model_info\{pid="(\d+)",version="([^"]+)"\} 1\.0$', re.M)


def gauge(text: str, problem: str) -> float:
    prefix = "epgembed_model_problem{"
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix) and f'problem="{problem}"' in line)


# ---------------------------------------------------------------- in process
def test_a_deleted_served_folder_moves_every_worker_to_the_older_version(two_versions, tmp_path):
    root, a, b = two_versions
    with serving_app(root, run_dir=tmp_path / "run") as app:
        c, holder = app.test_client(), state(app).holder
        assert c.get("/readyz").get_json()["model"]["version"] == b
        shutil.rmtree(versions_dir(root) / b)
        wait_until(lambda: holder.get().name == a, timeout=5, what="the watcher to move to the older version")
        ready = wait_until(lambda: (r := c.get("/readyz")).status_code == 200 and r.get_json(), timeout=5,
                           what="/readyz to be ready on the older version")
        assert ready["model"]["version"] == a and ready["current"] == b and ready["decision"]["serve"] == a
        assert ready["decision"]["refused"]["name"] == b and "no manifest.json" in ready["decision"]["refused"]["reason"]
        wait_until(lambda: gauge(t := c.get("/metrics").get_data(as_text=True), "current_refused") == 1
                   and gauge(t, "served_folder_missing") == 0, timeout=5, what="the gauges of this check")
        decision = json.loads((tmp_path / "run" / "decision.json").read_text())
        assert decision["current"] == b and decision["serve"] == a and decision["refused"]["name"] == b
        point_current(root, a)                          # the operator points `current` back
        assert holder.check() is False and holder.get().name == a
        assert gauge(c.get("/metrics").get_data(as_text=True), "current_refused") == 0


def test_a_deleted_served_folder_with_no_other_version_is_reported_and_serves_on(tmp_path, tiny_model_dir):
    """The only version's folder goes: the held model answers on, and within a tick of the
    watcher /readyz says the folder is missing and the gauge is 1."""
    root = tmp_path / "root"
    a = make_root(root, tiny_model_dir)
    with serving_app(root, run_dir=tmp_path / "run") as app:
        c = app.test_client()
        assert c.get("/readyz").status_code == 200
        shutil.rmtree(versions_dir(root) / a)
        r = wait_until(lambda: (x := c.get("/readyz")).status_code == 503 and x, timeout=5,
                       what="/readyz to report the missing folder")
        assert f"versions/{a} is missing" in r.get_json()["reason"], r.get_json()
        wait_until(lambda: gauge(c.get("/metrics").get_data(as_text=True), "served_folder_missing") == 1,
                   timeout=5, what="the served_folder_missing gauge")
        assert c.get("/v1/titles/0/related?k=3").status_code == 200


def test_readiness_never_waits_for_a_hung_models_root(two_versions, tmp_path, monkeypatch):
    """A hung mount (every read of the root blocks) holds the watcher, not /readyz: the probe
    answers at once from the last check, and once the check has run past stuck_seconds it
    says not ready, naming the root; the held model answers on; when the storage answers
    again, readiness returns."""
    import threading
    import service.holder as holder_module
    root, a, b = two_versions
    holder = ModelHolder(root, poll_seconds=0, run_dir=tmp_path / "run", stuck_seconds=0.5)
    holder.start()
    try:
        assert holder.readiness()[0] is True
        release, entered = threading.Event(), threading.Event()
        real = holder_module.current_version
        monkeypatch.setattr(holder_module, "current_version",                 # readlink on a hung mount
                            lambda path: (entered.set(), release.wait(30))[1] and real(path))
        checking = threading.Thread(target=holder.check, daemon=True)
        checking.start()
        assert entered.wait(5)                                             # the check is in the root
        t0 = time.perf_counter()
        ready, body = holder.readiness()
        assert time.perf_counter() - t0 < 0.1 and ready is True, body     # the check runs, not yet stuck
        ready, body = wait_until(lambda: (r := holder.readiness()) and not r[0] and r, timeout=5,
                                 what="readiness to notice the hung root")
        assert "the models root has not answered" in body["reason"], body
        assert holder.get().name == b and holder.get().model.related_to_id(0, Options(k=3)).related
        release.set()
        checking.join(5)
        assert not checking.is_alive() and holder.readiness()[0] is True
    finally:
        holder.stop()


def test_a_wait_for_the_decision_lock_is_not_a_hung_root(two_versions, tmp_path):
    """Another worker holding the decision lock (it loads a large model) is a long wait, not
    storage that hangs: this worker's check waits past stuck_seconds and stays ready."""
    import threading
    root, a, b = two_versions
    run = tmp_path / "run"
    holder = ModelHolder(root, poll_seconds=0, run_dir=run, stuck_seconds=0.3)
    holder.start()
    try:
        assert holder.get().name == b
        point_current(root, a)                      # stale decision: the next check needs the lock
        held, release = threading.Event(), threading.Event()

        def loading_worker():
            with Shared(run).locked():
                held.set()
                release.wait(10)
        other = threading.Thread(target=loading_worker)
        other.start()
        assert held.wait(5)
        checking = threading.Thread(target=holder.check, daemon=True)
        checking.start()
        holds_for(lambda: holder.hung() is None and holder.readiness()[0] is True, seconds=0.8,
                  what="a check waiting for the lock counts as no hung root")
        release.set()
        other.join(5)
        checking.join(10)
        assert holder.get().name == a
    finally:
        release.set()
        holder.stop()


def test_a_later_worker_follows_the_recorded_decision(two_versions, tiny_model_dir, tmp_path, caplog):
    root, a, b = two_versions
    run = tmp_path / "run"
    point_current(root, a)                              # a rollback: the older version is served
    first = ModelHolder(root, poll_seconds=0, run_dir=run)
    first.start()
    try:
        name = publish_corrupt(root, tiny_model_dir, "truncated_index")
        assert first.check() is False and first.get().name == a      # refused: a keeps serving
        caplog.clear()
        second = ModelHolder(root, poll_seconds=0, run_dir=run)      # e.g. a replaced worker
        second.start()
        second.stop()
        # on its own it would have served the newest other version that loads (b); the
        # decision says a, and the refused version is not tried again
        assert second.get().name == a and second.status()["refused"]["name"] == name
        assert not [r for r in caplog.records if "model_refused" in r.getMessage()]
    finally:
        first.stop()


def test_a_worker_serving_another_version_makes_every_worker_not_ready(two_versions, tmp_path):
    root, a, b = two_versions
    run = tmp_path / "run"
    other = subprocess.Popen(["sleep", "60"])           # stands for a second, live worker
    try:
        with serving_app(root, run_dir=run) as app:
            c = app.test_client()
            assert c.get("/readyz").status_code == 200
            Shared(run).record(a, pid=other.pid)
            r = c.get("/readyz")
            assert r.status_code == 503 and f"pid {other.pid} serves {a}" in r.get_json()["reason"]
            other.kill()
            other.wait()
            assert c.get("/readyz").status_code == 200   # a dead worker's record does not count
    finally:
        other.kill()
        other.wait()


# ---------------------------------------------------------------- real gunicorn
def served_versions(server, workers: set[int]) -> dict[int, str]:
    """pid -> version of each live worker that serves a model (any worker's /metrics sums all)."""
    text = requests.get(server.url + "/metrics", timeout=5, headers={"Connection": "close"}).text
    return {int(pid): v for pid, v in INFO.findall(text) if int(pid) in workers}


def readyz(server) -> requests.Response:
    return requests.get(server.url + "/readyz", timeout=5, headers={"Connection": "close"})


def test_deleted_current_folder_and_a_killed_worker_converge_on_one_version(two_versions, tmp_path):
    root, a, b = two_versions
    server = start(tmp_path, root)
    try:
        workers = children(server.proc.pid)
        assert len(workers) == 2 and set(served_versions(server, workers).values()) == {b}
        shutil.rmtree(versions_dir(root) / b)           # the served, current version's folder
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        lied, streak, end = [], 0, time.monotonic() + 40
        while time.monotonic() < end and streak < 6:
            live = children(server.proc.pid)
            try:
                before = served_versions(server, live)
                r = readyz(server)
                after = served_versions(server, live)
            except requests.ConnectionError:      # a connection that reached the dying worker's socket
                streak = 0
                continue
            split = len(set(before.values())) > 1 and len(set(after.values())) > 1
            if r.status_code == 200 and split:
                lied.append((before, r.json(), after))
            converged = (len(live) == 2 and victim not in live and len(after) == 2
                         and set(after.values()) == {a})
            streak = streak + 1 if converged and r.status_code == 200 else 0
            time.sleep(0.05)
        assert lied == [], lied                           # never "ready" while split
        assert streak >= 6, (served_versions(server, children(server.proc.pid)), readyz(server).json())
        for _ in range(6):                                # whichever worker answers
            ready = readyz(server).json()
            assert ready["model"]["version"] == a and set(ready["workers"].values()) == {a}, ready
            assert ready["decision"]["refused"]["name"] == b, ready
        text = requests.get(server.url + "/metrics", timeout=5).text
        assert gauge(text, "current_refused") == 2 and gauge(text, "served_folder_missing") == 0
        assert gauge(text, "version_disagreement") == 0
    finally:
        server.stop()
