"""Faults of a live gunicorn (service/gunicorn.conf.py, 2 workers) from issue 26, each under
traffic, each recovered from without a signal or an operator (`make test-slow`):

- 26.4: a hard link of the served neighbours.npy truncated: the workers die of SIGBUS, and
  every worker then serves the older version (before: the replacements crashed in the
  fallback and answered 503 until SIGHUP); the same after `rm versions/$CUR/index.ann` and
  a kill -9 of one worker;
- 26.7: kill -9 of the master under keep-alive load: its workers die with it, and a new
  master starts on the same port at the first attempt (before: ~20 s of a held port);
- 26.8: 8 malformed requests that never end (LF-only chunked body, chunk size 2^80, a TLS
  hello, CR-only line ends) are cut off within the read deadline while /healthz answers;
  the LF-only body is a 400 at once;
- 26.9: with every request thread held by a POST whose body trickles, /healthz and /readyz
  still answer at once (their own threads) while a query waits.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from epgembed.artifact.manifest import read_manifest
from epgembed.registry import versions_dir
from polling import wait_until
from service_util import make_root
from test_faults_process import children
from test_service_gunicorn import start
from test_service_versions import served_versions

pytestmark = [pytest.mark.system, pytest.mark.slow]

POLL = 1.0
READ_SECONDS = 5.0     # service/gunicorn.conf.py REQUEST_READ_SECONDS


def alive(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


class Traffic:
    """Threads sending by-id queries (they read the neighbour table) until closed."""

    def __init__(self, url: str, shows: int, n: int = 3, keep_alive: bool = False):
        self.url, self.shows, self.keep_alive = url, shows, keep_alive
        self.ok = self.failed = 0
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]
        for t in self.threads:
            t.start()

    def _run(self, i: int) -> None:
        headers = {} if self.keep_alive else {"Connection": "close"}
        with requests.Session() as s:
            while not self._stop.is_set():
                i = (i + 7) % self.shows
                try:
                    r = s.get(f"{self.url}/v1/titles/{i}/related?k=5", timeout=2, headers=headers)
                    self.ok += r.status_code == 200
                    self.failed += r.status_code != 200
                except requests.RequestException:
                    self.failed += 1

    def close(self) -> None:
        self._stop.set()
        for t in self.threads:
            t.join(10)


def every_worker_serves(server, version: str) -> bool:
    live = children(server.proc.pid)
    try:
        served = served_versions(server, live)
        r = requests.get(server.url + "/readyz", timeout=2, headers={"Connection": "close"})
    except requests.RequestException:
        return False
    return (len(live) == 2 and len(served) == 2 and set(served.values()) == {version}
            and r.status_code == 200 and r.json()["model"]["version"] == version)


def converge_after_fault(server, root: Path, fault, a: str, boot: float) -> float:
    """Seconds from `fault()` until every worker serves `a` (2 poll intervals plus twice a boot of
    gunicorn, for the workers killed and replaced, at most)."""
    shows = read_manifest(versions_dir(root) / a).n_shows
    traffic = Traffic(server.url, shows)
    try:
        t0 = time.monotonic()
        fault()
        wait_until(lambda: every_worker_serves(server, a), timeout=2 * POLL + 2 * boot, interval=0.1,
                   what=f"every worker on {a} without a signal")
        took = time.monotonic() - t0
    finally:
        traffic.close()
    with requests.Session() as s:
        versions = {s.get(f"{server.url}/v1/titles/{i}/related?k=3", timeout=5).headers["X-Model-Version"]
                    for i in range(20)}
    assert versions == {a}
    return took


def timed_start(tmp_path: Path, root: Path):
    """gunicorn polling every POLL s, and the seconds it took to boot."""
    t0 = time.monotonic()
    server = start(tmp_path, root, poll=str(POLL))
    return server, time.monotonic() - t0


def test_a_truncated_hard_link_kills_workers_yet_every_worker_falls_back(two_versions, tmp_path):
    root, a, b = two_versions
    server, boot = timed_start(tmp_path, root)
    try:
        served = versions_dir(root) / b / "neighbours.npy"
        link = tmp_path / "another-name.npy"
        os.link(served, link)
        took = converge_after_fault(server, root, lambda: os.truncate(link, 128), a, boot)
        log = server.stderr.read_text()
        assert "Traceback" not in log and "reload_check_failed" not in log, log[-3000:]
        print(f"converged {took:.1f} s after the truncation; SIGBUS seen: {'SIGBUS' in log}")
    finally:
        server.stop()


def test_a_lost_index_file_and_a_killed_worker_fall_back(two_versions, tmp_path):
    root, a, b = two_versions
    server, boot = timed_start(tmp_path, root)
    try:
        victim = min(children(server.proc.pid))

        def fault():
            (versions_dir(root) / b / "index.ann").unlink()
            os.kill(victim, signal.SIGKILL)
        converge_after_fault(server, root, fault, a, boot)
        assert "reload_check_failed" not in server.stderr.read_text()
    finally:
        server.stop()


def test_a_killed_master_takes_its_workers_and_a_restart_gets_the_port(tmp_path, tiny_model_dir):
    root = tmp_path / "root"
    make_root(root, tiny_model_dir)
    (tmp_path / "first").mkdir()
    server = start(tmp_path / "first", root)
    workers = children(server.proc.pid)
    port = int(server.url.rsplit(":", 1)[1])
    traffic = Traffic(server.url, read_manifest(tiny_model_dir).n_shows, n=4, keep_alive=True)
    restarted = None
    try:
        wait_until(lambda: traffic.ok >= 50, what="keep-alive traffic")
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(5)
        t0 = time.monotonic()
        wait_until(lambda: not any(alive(w) for w in workers), timeout=3, interval=0.05,
                   what="the workers to die with their master")
        traffic.close()
        (tmp_path / "second").mkdir()
        restarted = start(tmp_path / "second", root, port=port)     # the first attempt: port free
        took = time.monotonic() - t0
        assert took < 10, took
        assert requests.get(restarted.url + "/v1/titles/1/related?k=3", timeout=5).status_code == 200
    finally:
        traffic.close()
        for w in workers:
            if alive(w):
                os.kill(w, signal.SIGKILL)
        if restarted is not None:
            restarted.stop()


TLS_HELLO = (bytes.fromhex("1603010200010001fc0303") + bytes(range(0x20, 0x40))    # no CR or LF in it
             + b"\x00\x20" + b"\x13\x01" * 16)
MALFORMED = {
    "chunked body, LF-only line ends": (b"POST /v1/related HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                        b"Transfer-Encoding: chunked\r\n\r\n13\n{\"titles\": [\"News\"]}\n0\n\n"),
    "chunk size ffffffffffffffffffff": (b"POST /v1/related HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                        b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n{\"titles\""),
    "a TLS hello": TLS_HELLO,
    "CR-only line ends": b"GET /v1/titles/1/related HTTP/1.1\rHost: x\rAccept: */*\r\r",
}


def until_closed(s: socket.socket, seconds: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection; socket.timeout past `seconds`."""
    t0, out = time.monotonic(), b""
    s.settimeout(seconds)
    while True:
        data = s.recv(65536)
        if not data:
            return out, time.monotonic() - t0
        out += data


def probe_ms(url: str, path: str) -> float:
    t = time.perf_counter()
    r = requests.get(url + path, timeout=5, headers={"Connection": "close"})
    assert r.status_code == 200, r.text
    return (time.perf_counter() - t) * 1000


def test_malformed_requests_are_cut_off_while_healthz_answers(tmp_path, tiny_model_dir):
    root = tmp_path / "root"
    make_root(root, tiny_model_dir)
    server = start(tmp_path, root)
    host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
    conns = []
    try:
        for name, raw in MALFORMED.items():
            for _ in range(2):
                s = socket.create_connection((host, port))
                s.sendall(raw)                      # and then wait, as a client waiting for its answer does
                conns.append((name, s))
        assert max(probe_ms(server.url, "/healthz") for _ in range(8)) < 1000
        for name, s in conns:
            try:
                answer, took = until_closed(s, READ_SECONDS + 5)
            except socket.timeout:
                pytest.fail(f"{name}: the connection was still held after {READ_SECONDS + 5:g} s")
            if name.startswith("chunked body, LF-only"):
                assert answer.startswith(b"HTTP/1.1 400") and b"malformed" in answer and took < 2, (answer, took)
            elif answer:
                status = int(answer.split(b" ", 2)[1])
                assert 400 <= status < 500 and b'"error"' in answer, answer
        assert requests.get(server.url + "/v1/titles/1/related?k=3", timeout=5).status_code == 200
        assert "Traceback" not in server.stderr.read_text()
    finally:
        for _, s in conns:
            s.close()
        server.stop()


def test_probes_answer_while_every_request_thread_is_held(tmp_path, tiny_model_dir):
    root = tmp_path / "root"
    make_root(root, tiny_model_dir)
    server = start(tmp_path, root)
    port = int(server.url.rsplit(":", 1)[1])
    body = json.dumps({"titles": ["Football Weekly"] * 40}).encode()
    held = []
    try:
        for _ in range(32):                         # 4 threads x 2 workers, spread by the kernel
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /v1/related HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
            held.append(s)
        t0 = time.monotonic()
        with pytest.raises(requests.Timeout):       # a query waits behind them ...
            requests.get(server.url + "/v1/titles/1/related?k=3", timeout=1.0)
        times = [probe_ms(server.url, p) for p in ("/healthz", "/readyz") * 10]   # ... a probe does not
        assert time.monotonic() - t0 < READ_SECONDS, "the held requests were released before the probes ran"
        assert max(times) < 250, times
    finally:
        for s in held:
            s.close()
        server.stop()
