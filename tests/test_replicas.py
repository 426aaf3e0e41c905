"""Replicas behind nginx (issue 18; docs/DEPLOY.md): deploy/nginx/epgembed.conf.template, rendered
by deploy/render_nginx.py, in front of two `epgembed serve` instances (1 worker each, polling
`current` every 0.2 s, each with its own run and metrics folder, as on two hosts) reading one
models root, all on free loopback ports:

- both replicas answer through nginx, and nginx's own refusals (413, 414, 431) match the
  service's limits and JSON error shape; every status nginx answers by itself (400, 405,
  501, 505) is the service's JSON error with nosniff;
- a new version is published: every replica switches within the poll window, and no answer
  mixes versions (the X-Model-Version header is the body's model.version);
- one whole instance (gunicorn master and worker) is killed with SIGKILL under load: requests
  through nginx keep succeeding (nginx retries on the other replica); restarted on the same
  port it answers again and gets traffic through nginx again;
- 50 clients sending their headers one byte per second and 50 idle connections hang on
  nginx while /healthz and a by-id query through it keep a p99 under 50 ms;
- the models root's path disappears: both replicas keep serving the model they hold through
  nginx, their /readyz says the served folder is missing, and all is ready again, without
  a reload, once the root is back.

Skipped only when nginx is not installed (`make test` installs Debian's nginx).
"""
from __future__ import annotations

import http.client
import json
import math
import socket
import threading
import time

import pytest
import requests

from deploy.local_stack import LocalStack, Replica, SlowClients, find_nginx
from epgembed.registry import publish
from polling import wait_until
from service import Limits
from service_util import make_root, version_of

pytestmark = pytest.mark.system

NGINX = find_nginx()
if NGINX is None:
    pytest.skip("nginx is not installed (make test installs it: apt-get install -y nginx)", allow_module_level=True)

POLL = 0.2            # each replica's poll of `current`
SWITCH_WINDOW = 5.0   # poll + load + follow, with room for a busy machine


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, tiny_model_dir):
    """Two replicas of one worker each on one models root, nginx in front of both."""
    base = tmp_path_factory.mktemp("replicas")
    root = base / "root"
    make_root(root, tiny_model_dir)
    with LocalStack(root, base, 2, NGINX, workers=1, poll=POLL, ready_timeout=40) as stack:
        yield root, stack.replicas, stack.nginx


# ---------------------------------------------------------------- traffic through nginx
REQUESTS = [("GET", "/v1/titles/7/related?k=5", None),
            ("GET", "/v1/related?title=Football%20Weekly&k=5", None),
            ("GET", "/v1/related?title=Saturday%20Cartoon%20Marathon&k=5", None),     # unseen title
            ("POST", "/v1/related", {"titles": ["Cartoon Club", "Evening News", "Unknown Thing"], "k": 3})]


class Load:
    """`n` threads sending REQUESTS through nginx in a loop (keep-alive sessions); every
    answer's status, header version and body version are recorded."""

    def __init__(self, url: str, n: int = 4):
        self.url, self.stop_event = url, threading.Event()
        self.ok: list[tuple[float, float, str, str]] = []   # (sent, answered, header version, body version)
        self.failures: list[tuple[float, str]] = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]
        for t in self.threads:
            t.start()

    def _run(self, i: int) -> None:
        with requests.Session() as s:
            j = i
            while not self.stop_event.is_set():
                method, path, body = REQUESTS[j % len(REQUESTS)]
                j += 1
                t = time.monotonic()
                try:
                    r = s.request(method, self.url + path, json=body, timeout=10)
                    if r.status_code == 200:
                        self.ok.append((t, time.monotonic(), r.headers.get("X-Model-Version"),
                                        r.json()["model"]["version"]))
                    else:
                        self.failures.append((time.monotonic(), f"{method} {path}: {r.status_code} {r.text[:200]}"))
                except requests.RequestException as e:
                    self.failures.append((time.monotonic(), f"{method} {path}: {e!r}"))

    def close(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(15)


def spread(entries: list[dict]) -> dict[str, int]:
    """Answers per replica in nginx access log entries (the last address tried answered)."""
    out: dict[str, int] = {}
    for e in entries:
        last = e["upstream"].split(",")[-1].strip()
        out[last] = out.get(last, 0) + 1
    return out


def test_both_replicas_answer_through_nginx_and_its_limits_are_the_services(cluster, tiny_model_dir):
    root, replicas, nginx = cluster
    before = len(nginx.access())
    with requests.Session() as s:
        for i in range(40):
            method, path, body = REQUESTS[i % len(REQUESTS)]
            r = s.request(method, nginx.url + path, json=body, timeout=5)
            assert r.status_code == 200, r.text
            assert r.headers["X-Model-Version"] == r.json()["model"]["version"] == version_of(tiny_model_dir)
    answered = spread(nginx.access()[before:])
    assert set(answered) == {r.addr for r in replicas} and min(answered.values()) >= 10, answered
    for r in replicas:          # and each replica's own access log saw them (forwarded by nginx)
        assert (r.folder / "access.log").read_text().count('"path": "/v1/') >= 10

    # nginx refuses what the service would refuse, in the service's JSON shape
    big = requests.post(nginx.url + "/v1/related", data="x" * (Limits().max_body_bytes + 1000), timeout=5,
                        headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    under = requests.post(nginx.url + "/v1/related", data="x" * (Limits().max_body_bytes - 1000), timeout=5,
                          headers={"Content-Type": "application/json"})
    assert under.status_code == 400 and "not valid JSON" in under.json()["error"]["message"]   # the service's answer
    long_line = requests.get(nginx.url + "/v1/related?title=" + "a" * 9000, timeout=5)
    assert long_line.status_code == 414 and long_line.json()["error"]["code"] == "uri_too_long"
    long_header = requests.get(nginx.url + "/healthz", headers={"X-Big": "b" * 9000}, timeout=5)
    assert long_header.status_code == 431 and long_header.json()["error"]["code"] == "headers_too_large"
    fits = requests.get(nginx.url + "/v1/related", params={"title": "é" * 500}, timeout=5)   # 4.5 kB line
    assert fits.status_code == 200
    # no nginx counterpart of gunicorn's limit_request_fields (50): the replica refuses, in JSON
    many = requests.get(nginx.url + "/healthz", headers={f"X-H{i}": "1" for i in range(60)}, timeout=5)
    assert many.status_code == 431 and many.json()["error"]["code"] == "headers_too_large"


def test_a_new_version_reaches_every_replica_and_no_answer_mixes_versions(cluster, tiny_model_dir, tiny_model_b):
    root, replicas, nginx = cluster
    a, b = version_of(tiny_model_dir), version_of(tiny_model_b)
    assert all(r.version() == a for r in replicas)
    load = Load(nginx.url)
    try:
        wait_until(lambda: len(load.ok) >= 40, what="40 answers before the publish")
        t0 = time.monotonic()
        publish(root, tiny_model_b, move=False)
        switched: dict[str, float] = {}

        def all_switched() -> bool:
            for r in replicas:
                if r.addr not in switched and r.version() == b:
                    switched[r.addr] = time.monotonic() - t0
            return len(switched) == len(replicas)

        wait_until(all_switched, timeout=SWITCH_WINDOW, interval=0.02, what="every replica on the new version")
        done = time.monotonic()
        wait_until(lambda: sum(t > done for t, *_ in load.ok) >= 40, what="40 answers after the switch")
    finally:
        load.close()
    assert load.failures == []
    assert all(h == v for *_, h, v in load.ok), [x for x in load.ok if x[2] != x[3]][:5]   # never mixed
    assert {v for *_, v in load.ok} == {a, b} and load.ok[0][3] == a
    assert {v for t, *_, v in load.ok if t > done} == {b}          # through nginx: only b once all switched
    assert max(switched.values()) < SWITCH_WINDOW, switched
    assert all(requests.get(r.url + "/readyz", timeout=2).status_code == 200 for r in replicas)


def test_a_killed_instance_costs_no_request_and_rejoins_after_restart(cluster):
    root, replicas, nginx = cluster
    victim, other = replicas
    load = Load(nginx.url)
    try:
        wait_until(lambda: len(load.ok) >= 40, what="40 answers before the kill")
        victim.kill9()
        killed_at = time.monotonic()
        n = len(load.ok)
        wait_until(lambda: len(load.ok) >= n + 100, timeout=20, what="100 answers after the kill")
        assert other.version() is not None
        mark = len(nginx.access())
        victim.start()                               # same port, same run and metrics folders
        victim.wait_ready()
        assert victim.version() is not None          # answers directly

        def rejoined() -> bool:
            return spread(nginx.access()[mark:]).get(victim.addr, 0) >= 5

        wait_until(rejoined, timeout=20, interval=0.1, what="nginx to send traffic to the restarted replica again")
    finally:
        load.close()
    # at most the requests in flight on the killed instance may fail; nginx retries those too
    assert len(load.failures) <= len(load.threads), load.failures
    assert sum(t > killed_at for _, t, _, _ in load.ok) >= 100


NGINX_OWN = {b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n": 505,                  # not a version it speaks
             b"TRACE /healthz HTTP/1.1\r\nHost: x\r\n\r\n": 405,
             b"POST /v1/related HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n": 501,
             b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n": 400}


def raw_answer(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        out = b""
        while b"\r\n\r\n" not in out or len(out.split(b"\r\n\r\n", 1)[1]) < 20:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    head, body = out.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_nginx_own_errors_are_the_services_json_with_nosniff(cluster):
    root, replicas, nginx = cluster
    for data, status in NGINX_OWN.items():
        got, headers, body = raw_answer(nginx.port, data)
        assert got == status and headers["content-type"] == "application/json", (data, got, headers, body)
        assert headers["x-content-type-options"] == "nosniff", (data, headers)
        assert json.loads(body)["error"]["status"] == status, body


# ---------------------------------------------------------------- slow clients
def p99_ms(host: str, port: int, path: str, n: int = 100) -> tuple[float, int]:
    """p99 (nearest rank) of `n` sequential GETs, each on a new connection; and the errors."""
    times, errors = [], 0
    for _ in range(n):
        t = time.perf_counter()
        try:
            c = http.client.HTTPConnection(host, port, timeout=5)
            c.request("GET", path, headers={"Connection": "close"})
            r = c.getresponse()
            r.read()
            c.close()
            errors += r.status != 200
        except OSError:
            errors += 1
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return times[math.ceil(0.99 * n) - 1], errors


def test_slow_clients_hang_on_nginx_not_on_the_replicas(cluster):
    root, replicas, nginx = cluster
    slow = SlowClients(nginx.port, slow=50, idle=50)
    try:
        wait_until(slow.heads_started, timeout=10, what="every slow client started its request head")
        assert slow.open_count() == 100
        health, e1 = p99_ms("127.0.0.1", nginx.port, "/healthz")
        by_id, e2 = p99_ms("127.0.0.1", nginx.port, "/v1/titles/7/related?k=10")
        still_open = slow.open_count()
    finally:
        slow.close()
    assert e1 == e2 == 0
    assert still_open == 100 and slow.reopened == 0    # they were hanging all along (client_header_timeout 5 s)
    assert health < 50 and by_id < 50, (health, by_id)


# ---------------------------------------------------------------- the models root gone
def test_a_vanished_models_root_keeps_the_held_model_serving(cluster, tiny_model_b):
    """The root's path disappears (an unmounted share, a renamed folder): every worker keeps
    the model it holds, /readyz says so on each replica, nginx keeps answering; when the
    root is back, readiness returns without a reload."""
    root, replicas, nginx = cluster
    b = version_of(tiny_model_b)
    loads = [r.log().count('"event": "model_loaded"') for r in replicas]
    away = root.with_name("root-away")
    root.rename(away)
    try:
        def not_ready(r: Replica) -> bool:
            x = requests.get(r.url + "/readyz", timeout=2)
            return x.status_code == 503 and "missing" in x.json().get("reason", "")

        for r in replicas:
            wait_until(lambda: not_ready(r), timeout=SWITCH_WINDOW, what=f"{r.addr} /readyz to report the root gone")
        with requests.Session() as s:
            for i in range(20):
                method, path, body = REQUESTS[i % len(REQUESTS)]
                x = s.request(method, nginx.url + path, json=body, timeout=5)
                assert x.status_code == 200 and x.headers["X-Model-Version"] == b, x.text
    finally:
        away.rename(root)
    for r in replicas:
        wait_until(lambda: requests.get(r.url + "/readyz", timeout=2).status_code == 200, timeout=SWITCH_WINDOW,
                   what=f"{r.addr} ready again")
    assert [r.log().count('"event": "model_loaded"') for r in replicas] == loads      # no reload
