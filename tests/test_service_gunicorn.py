"""Real gunicorn (service/gunicorn.conf.py, 2 gthread workers) on a free port, over HTTP:
contract, metrics summed across workers, access log, hot reload under load, a corrupt
publish refused, SIGHUP, and `epgembed serve` on a single model directory."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from epgembed.registry import publish
from service import Limits
from polling import holds_for, wait_until
from service_util import make_root, publish_corrupt, version_of

pytestmark = pytest.mark.system

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "service" / "gunicorn.conf.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, argv: list[str], env: dict[str, str], port: int, log_dir: Path):
        self.url = f"http://127.0.0.1:{port}"
        self.stderr = log_dir / "stderr.log"
        self.proc = subprocess.Popen(argv, env=env, cwd=log_dir, stdout=open(log_dir / "stdout.log", "wb"),
                                     stderr=open(self.stderr, "wb"), start_new_session=True)
        try:
            wait_until(self.ready, timeout=40, interval=0.1, what="gunicorn to be ready")
        except BaseException:
            self.stop()
            raise

    def ready(self) -> bool:
        """Both workers have loaded their first model and /readyz answers 200."""
        assert self.proc.poll() is None, self.stderr.read_text()
        try:
            return (requests.get(self.url + "/readyz", timeout=1).status_code == 200
                    and self.stderr.read_text().count('"event": "model_loaded"') >= 2)
        except requests.RequestException:   # not listening yet, or no worker accepting yet
            return False

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=5, **kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(tmp_path: Path, models: Path, poll: str = "0.2", cli: bool = False, port: int | None = None) -> Server:
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EPGEMBED_", "PROMETHEUS_"))}
    env.update(EPGEMBED_ACCESS_LOG=str(tmp_path / "access.log"), PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"))
    (tmp_path / "prom").mkdir()
    if cli:
        argv = [sys.executable, "-m", "epgembed.cli.main", "serve", "--models", str(models), "--port", str(port),
                "--workers", "2", "--poll-seconds", poll]
    else:
        env.update(EPGEMBED_MODELS=str(models), EPGEMBED_BIND=f"127.0.0.1:{port}", EPGEMBED_WORKERS="2",
                   EPGEMBED_POLL_SECONDS=poll)
        argv = [sys.executable, "-m", "gunicorn", "-c", str(CONF)]
    return Server(argv, env, port, tmp_path)


@pytest.fixture
def served(tmp_path, tiny_model_dir):
    root = tmp_path / "root"
    make_root(root, tiny_model_dir)
    server = start(tmp_path, root)
    yield server, root
    server.stop()


def every_worker(server: Server, check, tries: int = 10) -> bool:
    """`check(/v1/model answer)` holds on `tries` new connections in a row: the kernel spreads
    new connections over the workers' SO_REUSEPORT sockets, so that is every worker."""
    return all(check(requests.get(server.url + "/v1/model", timeout=5, headers={"Connection": "close"}).json())
               for _ in range(tries))


def metric(text: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def test_http_contract_metrics_and_access_log(served, tmp_path, tiny_model_dir):
    server, _ = served
    r = server.get("/v1/related", params={"title": "Football Weekly", "k": 3})
    assert r.status_code == 200 and r.json()["model"]["version"] == version_of(tiny_model_dir)
    assert len(r.json()["related"]) == 3 and r.headers["X-Model-Version"] == version_of(tiny_model_dir)
    assert server.get("/v1/titles/999/related").json()["error"]["status"] == 404
    bad = requests.put(server.url + "/v1/related", timeout=5)
    assert bad.status_code == 405 and bad.headers["Content-Type"] == "application/json"
    big = requests.post(server.url + "/v1/related", data="x" * (Limits().max_body_bytes + 1000), timeout=5,
                        headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    long_title = server.get("/v1/related", params={"title": "é" * 500})   # 4.5 kB request line fits
    assert long_title.status_code == 200
    for _ in range(40):
        assert requests.get(server.url + "/healthz", timeout=5, headers={"Connection": "close"}).ok
    for _ in range(4):   # every scrape, whichever worker answers it, sums the samples of both workers
        text = requests.get(server.url + "/metrics", timeout=5, headers={"Connection": "close"}).text
        assert metric(text, 'epgembed_http_requests_total{endpoint="/healthz",method="GET",status="200"}') == 40
        assert metric(text, 'epgembed_model_info{') == 2                       # one line per live worker
        assert metric(text, 'epgembed_model_reloads_total{result="ok"}') == 2  # each worker loaded once
    lines = [json.loads(x) for x in (tmp_path / "access.log").read_text().splitlines()]
    health = [x for x in lines if x["path"] == "/healthz"]
    assert len(health) == 40 and all(x["status"] == 200 and x["ms"] >= 0 for x in health)
    assert {"method", "endpoint", "status", "ms", "bytes", "model", "query"} <= set(lines[0])


def test_reload_under_load_then_corrupt_publish(served, tiny_model_dir, tiny_model_b):
    server, root = served
    a, b = version_of(tiny_model_dir), version_of(tiny_model_b)
    stop, failures, seen = threading.Event(), [], []

    def client():
        with requests.Session() as s:
            urls = ["/v1/related?title=Football%20Weekly&k=5", "/v1/titles/7/related?k=5",
                    "/v1/related?title=Saturday%20Cartoon%20Club&k=5"]
            while not stop.is_set():
                for url in urls:
                    try:
                        r = s.get(server.url + url, timeout=5)
                        (seen.append(r.json()["model"]["version"]) if r.status_code == 200
                         else failures.append(r.status_code))
                    except requests.RequestException as e:
                        failures.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: seen.count(a) >= 40, what="40 answers from the first version")
    publish(root, tiny_model_b, move=False)
    wait_until(lambda: seen[-40:].count(b) == 40, what="40 answers in a row from the new version")
    name = publish_corrupt(root, tiny_model_dir, "truncated_index")
    wait_until(lambda: every_worker(server, lambda m: (m["reload"]["refused"] or {}).get("name") == name),
               what="both workers to refuse the corrupt version")
    n = len(seen)
    wait_until(lambda: len(seen) >= n + 40, what="40 answers after the refusal")
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert seen[0] == a and set(seen[n:]) == {b}       # switched, and the corrupt version never served
    text = server.get("/metrics").text
    # tried once, by the worker that resolved `current`; the other follows the recorded refusal
    assert metric(text, 'epgembed_model_reloads_total{result="refused"}') == 1
    assert metric(text, 'epgembed_model_info{pid=') == 2
    assert f'version="{b}"}} 1.0' in text and f'version="{a}"}} 0.0' in text
    assert server.get("/v1/model").json()["reload"]["refused"]["name"] == name
    assert server.get("/readyz").status_code == 200


def test_cli_serve_and_sighup_reload(tmp_path, tiny_model_dir, tiny_model_b):
    root = tmp_path / "root"
    make_root(root, tiny_model_dir)
    server = start(tmp_path, root, poll="0", cli=True)     # no polling: only SIGHUP reloads
    try:
        a, b = version_of(tiny_model_dir), publish(root, tiny_model_b, move=False)
        holds_for(lambda: every_worker(server, lambda m: m["version"] == a, tries=4), 0.5,
                  what="the old version on every worker until the signal")
        os.kill(server.proc.pid, signal.SIGHUP)   # the master forwards it to every worker
        wait_until(lambda: every_worker(server, lambda m: m["version"] == b), what="every worker on the new version")
        assert "SIGHUP: asking 2 worker(s)" in server.stderr.read_text()
    finally:
        server.stop()
    assert server.proc.returncode == 0                      # graceful shutdown on SIGTERM


def test_single_model_directory_and_a_taken_port(tmp_path, tiny_model_dir):
    server = start(tmp_path, tiny_model_dir)
    try:
        # the master has no socket of its own (reuse_port): the configured address is logged
        assert f"Listening at: {server.url} ({server.proc.pid})" in server.stderr.read_text()
        m = server.get("/v1/model").json()
        assert m["version"] == version_of(tiny_model_dir) and m["reload"]["mode"] == "model_dir"
        assert server.get("/v1/titles", params={"q": "foot"}).json()["titles"]
        # workers listen with SO_REUSEPORT: a second instance must not silently share the port
        port = server.url.rsplit(":", 1)[1]
        env = {**os.environ, "EPGEMBED_MODELS": str(tiny_model_dir), "EPGEMBED_BIND": f"127.0.0.1:{port}",
               "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom2")}
        second = subprocess.run([sys.executable, "-m", "gunicorn", "-c", str(CONF)], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=30)
        assert second.returncode != 0 and "cannot serve on 127.0.0.1" in second.stderr
        assert server.get("/readyz").status_code == 200
    finally:
        server.stop()
