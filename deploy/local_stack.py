"""N `epgembed serve` replicas behind nginx on loopback: the set-up of tests/test_replicas.py,
tests/test_feeds.py and bench/replicas.py (docs/DEPLOY.md), written once.

    with LocalStack(root, folder, 2, find_nginx(), workers=1, poll=0.2) as stack:
        stack.nginx.url, [r.addr for r in stack.replicas]
    with FeedStack({"a": root_a, "b": root_b}, folder, 2, find_nginx()) as stack:
        stack.nginx.url + "/feeds/a/v1/model", stack.feeds["a"]      # nginx routes by feed

Every replica is an `epgembed serve` in its own process group on a free loopback port, with
its own run, metrics and access-log folder (as on N hosts), all on one models root; nginx
runs in the foreground on a prefix folder written by deploy/render_nginx.py. Also the
loopback tools both use against it: a plain GET and slow clients. Standard library only;
imported as `deploy.local_stack` with the repo root on sys.path.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from deploy import render_nginx
from deploy.feeds import Feed

SERVE = (sys.executable, "-m", "epgembed.cli.main")   # `epgembed` of this interpreter


class StackError(RuntimeError):
    """A replica or nginx exited or did not come up; the message ends with its log."""


def find_nginx() -> str | None:
    """Debian's nginx (on PATH, else /usr/sbin/nginx), or None when it is not installed."""
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(host: str, port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """One GET on a new connection (Connection: close): (status, body)."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Connection": "close"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def _answers(port: int, path: str) -> bool:
    try:
        return get("127.0.0.1", port, path, 1)[0] == 200
    except (OSError, http.client.HTTPException):
        return False


class Replica:
    """One instance: `epgembed serve` in its own process group, with its own run and metrics folders."""

    def __init__(self, root: Path, folder: Path, workers: int = 1, threads: int | None = None,
                 poll: float = 0.2, command: Sequence[str] = SERVE, ready_timeout: float = 300,
                 settings: dict[str, str] | None = None):
        self.root, self.folder, self.workers, self.threads, self.poll = root, folder, workers, threads, poll
        self.settings = dict(settings or {})     # EPGEMBED_* variables of this instance (this env's are not passed)
        self.command, self.ready_timeout = list(command), ready_timeout
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.addr}"
        self.stderr = folder / "stderr.log"
        self.proc: subprocess.Popen | None = None
        self._from = 0
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        """Start (or restart: same port, same folders) the instance; log() reads from here on."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EPGEMBED_", "PROMETHEUS_"))}
        env.update(EPGEMBED_RUN_DIR=str(self.folder / "run"), PROMETHEUS_MULTIPROC_DIR=str(self.folder / "prom"),
                   EPGEMBED_ACCESS_LOG=str(self.folder / "access.log"), **self.settings)
        argv = [*self.command, "serve", "--models", str(self.root), "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", str(self.workers), "--poll-seconds", str(self.poll)]
        if self.threads is not None:
            argv += ["--threads", str(self.threads)]
        self._from = self.stderr.stat().st_size if self.stderr.exists() else 0
        self.proc = subprocess.Popen(argv, env=env, cwd=self.folder, stdout=subprocess.DEVNULL,
                                     stderr=open(self.stderr, "ab"), start_new_session=True)

    def log(self) -> str:
        with open(self.stderr, "rb") as f:
            f.seek(self._from)
            return f.read().decode("utf-8", "replace")

    def ready(self) -> bool:
        """Every worker loaded the model and /readyz says 200 (StackError when the instance exited)."""
        if self.proc.poll() is not None:
            raise StackError(f"replica {self.addr} exited:\n{self.log()[-3000:]}")
        return self.log().count('"event": "model_loaded"') >= self.workers and _answers(self.port, "/readyz")

    def wait_ready(self, timeout: float | None = None) -> float:
        """Seconds until ready(); StackError after `timeout` (default: ready_timeout) s."""
        timeout = self.ready_timeout if timeout is None else timeout
        t0 = time.monotonic()
        while not self.ready():
            if time.monotonic() - t0 > timeout:
                raise StackError(f"replica {self.addr} not ready after {timeout} s:\n{self.log()[-3000:]}")
            time.sleep(0.05)
        return time.monotonic() - t0

    def version(self) -> str | None:
        """The version /v1/model names, None when it does not answer."""
        try:
            return json.loads(get("127.0.0.1", self.port, "/v1/model", 2)[1])["version"]
        except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
            return None

    def serves_only(self, version: str) -> bool:
        """/readyz: ready, and every live worker of this instance serves `version`."""
        try:
            status, body = get("127.0.0.1", self.port, "/readyz", 1)
            d = json.loads(body)
        except (OSError, http.client.HTTPException, ValueError):
            return False
        return (status == 200 and d["model"]["version"] == version
                and bool(d.get("workers")) and set(d["workers"].values()) == {version})

    def kill9(self) -> None:
        """SIGKILL to the whole instance: the gunicorn master and its workers (one process group)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Nginx:
    """nginx in the foreground on its own prefix folder (config, logs, pid, temp files), in
    front of one replica set or (`feeds`) of each feed's."""

    def __init__(self, binary: str, replicas: list[str] | None = None, timeout: float = 10,
                 feeds: list[Feed] | None = None):
        # not under pytest's 0700 basetemp: started as root, nginx's workers run as nobody,
        # which must reach the temp folders inside the prefix
        self.prefix = Path(tempfile.mkdtemp(prefix="epgembed-nginx-"))
        self.prefix.chmod(0o755)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        render_nginx.write_prefix(self.prefix, f"127.0.0.1:{self.port}", replicas, feeds=feeds)
        check = subprocess.run(render_nginx.command(self.prefix, binary, "-t"), capture_output=True, text=True)
        if check.returncode != 0:
            self.stop()
            raise StackError("nginx -t:\n" + check.stderr)
        self.proc = subprocess.Popen(render_nginx.command(self.prefix, binary), stdout=subprocess.DEVNULL,
                                     stderr=open(self.prefix / "logs" / "stderr.log", "wb"), start_new_session=True)
        try:
            self._wait_up(timeout)
        except StackError:
            self.stop()
            raise

    def _wait_up(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not _answers(self.port, "/healthz"):
            if self.proc.poll() is not None:
                raise StackError("nginx exited:\n" + (self.prefix / "logs" / "stderr.log").read_text())
            if time.monotonic() > end:
                raise StackError("nginx did not answer:\n" + (self.prefix / "logs" / "error.log").read_text())
            time.sleep(0.05)

    def access(self) -> list[dict]:
        """The JSON lines of its access log (a line still being written is left out)."""
        out = []
        for line in (self.prefix / "logs" / "access.log").read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)     # fast shutdown, master and workers
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)


class LocalStack:
    """`n` replicas on `root` (folders FOLDER/replica0 ...), started together and all ready,
    then `nginx` in front of all of them; add_nginx() puts another one in front of some.
    Everything is stopped on leaving the `with` (or when the start fails)."""

    def __init__(self, root: Path, folder: Path, n: int, nginx_binary: str, **replica_kw):
        self._init(nginx_binary, [Replica(root, folder / f"replica{i}", **replica_kw) for i in range(n)])

    def _init(self, nginx_binary: str, replicas: list[Replica]) -> None:
        self.binary = nginx_binary
        self.replicas = replicas
        self.balancers: list[Nginx] = []
        self.startup_s = 0.0                 # start to every replica ready

    def __enter__(self) -> LocalStack:
        try:
            t0 = time.monotonic()
            for r in self.replicas:
                r.start()
            for r in self.replicas:
                r.wait_ready()
            self.startup_s = round(time.monotonic() - t0, 2)
            self.nginx = self._front()
        except BaseException:
            self.stop()
            raise
        return self

    def _front(self) -> Nginx:
        return self.add_nginx(self.replicas)

    def add_nginx(self, replicas: list[Replica]) -> Nginx:
        lb = Nginx(self.binary, [r.addr for r in replicas])
        self.balancers.append(lb)
        return lb

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        for lb in self.balancers:
            lb.stop()
        for r in self.replicas:
            r.stop()


class FeedStack(LocalStack):
    """Several feeds: `n` replicas per feed on the feed's own models root (FOLDER/NAME/replica0
    ...), all started together and ready, then one nginx routing /feeds/NAME/ to each feed's
    replicas (deploy/feeds.py); `feeds` maps each name to its replicas."""

    def __init__(self, roots: dict[str, Path], folder: Path, n: int, nginx_binary: str, **replica_kw):
        self.feeds = {name: [Replica(root, folder / name / f"replica{i}", **replica_kw) for i in range(n)]
                      for name, root in roots.items()}
        self._init(nginx_binary, [r for rs in self.feeds.values() for r in rs])

    def _front(self) -> Nginx:
        feeds = [Feed(name, str(rs[0].root), tuple(r.addr for r in rs)) for name, rs in self.feeds.items()]
        lb = Nginx(self.binary, feeds=feeds)
        self.balancers.append(lb)
        return lb


class SlowClients:
    """`slow` connections sending a request head one byte per second, `idle` ones sending
    nothing; one the server closes is opened again (a slowloris keeps coming back):
    `reopened` counts those, `failed_opens` the connections that could not be opened."""

    HEAD = b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: " + b"s" * 4000

    def __init__(self, port: int, slow: int, idle: int):
        self.addr = ("127.0.0.1", port)
        self.reopened = 0
        self.failed_opens = 0
        self.conns = [[self._open(), 0, i < slow] for i in range(slow + idle)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _open(self) -> socket.socket | None:
        try:
            s = socket.create_connection(self.addr, timeout=5)
            s.setblocking(False)
            return s
        except OSError:
            self.failed_opens += 1
            return None

    @staticmethod
    def _alive(s: socket.socket | None) -> bool:
        if s is None:
            return False
        try:
            return s.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            return True            # nothing to read: still open
        except OSError:
            return False

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for c in self.conns:
                ok = self._alive(c[0])
                if ok and c[2]:
                    try:
                        c[0].send(self.HEAD[c[1] % len(self.HEAD):][:1])
                        c[1] += 1
                    except OSError:
                        ok = False
                if not ok:
                    if c[0] is not None:
                        c[0].close()
                        self.reopened += 1
                    c[0], c[1] = self._open(), 0

    def open_count(self) -> int:
        return sum(self._alive(c[0]) for c in self.conns)

    def heads_started(self) -> bool:
        """Every slow connection has sent the first byte of its request head."""
        return all(c[1] > 0 for c in self.conns if c[2])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for c in self.conns:
            if c[0] is not None:
                c[0].close()
