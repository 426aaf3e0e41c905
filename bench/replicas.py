"""`make bench-replicas`: replicas behind nginx on loopback (docs/DEPLOY.md). Writes
bench/results/replicas.json.

    python bench/replicas.py [--seconds 20] [--replicas 2] [--workers 2] [--threads 4]
    python bench/replicas.py --quick          # 4 s phases, about a minute in all

Set-up: N `epgembed serve` instances (default 2 x 2 gthread workers, own ports, own run and
metrics folders, as on N hosts) on one models root holding the shared-data model (any
bench/cache model of ../shared/data/epg/*.xml.gz that loads, else `epgembed train` once
into bench/cache/; the sample model when the shared data is absent); nginx from
deploy/nginx (deploy/render_nginx.py) in front of all of them, and a second nginx in front
of the first replica only. Phases, on mixed traffic (by id 40%, known titles 30%, unseen
titles 20%, batches of 8 titles 10%):

1. throughput (wrk, 16 connections): through nginx to N replicas, through nginx to 1
   replica, and straight to that replica (bare gunicorn): the cost of the proxy, and what
   N replicas on one 2-core host do (nothing: the same cores);
2. a new version published under load (a Python load generator: threads, http.client
   keep-alive, every answer's X-Model-Version header against its body's model.version):
   time until every replica (every worker of each) serves it, mixed-version answers;
3. one whole instance killed with SIGKILL under load and restarted 1 s later (systemd's
   RestartSec=1): failed requests, requests nginx retried, time until it is ready and
   until nginx sends it traffic again;
4. slow clients: 100 connections sending a request head one byte per second and 100 idle
   ones, against nginx, then the same against one bare gunicorn instance: p50/p99 of
   /healthz and of a by-id query on new connections while they hang.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import importlib.util
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
DUMPS = REPO.parent / "shared" / "data" / "epg"
CACHE = REPO / "bench" / "cache"
OUT = REPO / "bench" / "results" / "replicas.json"
EPGEMBED = Path(sys.executable).parent / "epgembed"

_spec = importlib.util.spec_from_file_location("render_nginx", REPO / "deploy" / "render_nginx.py")
render_nginx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_nginx)

LUA = r"""
local spec = {
%s
}
local reqs = {}
local i = 0
init = function(args)
  for j, r in ipairs(spec) do
    if r[1] == "POST" then
      reqs[j] = wrk.format("POST", r[2], {["Content-Type"] = "application/json"}, r[3])
    else
      reqs[j] = wrk.format("GET", r[2])
    end
  end
end
request = function()
  i = i %% #reqs + 1
  return reqs[i]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, ' ..
    '"max_us": %%d}\n', summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


# ---------------------------------------------------------------------------- model
def loads(model_dir: Path) -> bool:
    from epgembed.artifact.bundle import load_model
    try:
        load_model(model_dir, verify=False)
        return True
    except Exception:  # noqa: BLE001 - an older format, a half-written folder: not this one
        return False


def bench_model(dumps: list[Path]) -> tuple[Path, str]:
    """(model dir, what it is): a cached model of exactly `dumps`, trained once when none loads."""
    if not dumps:
        sample = REPO / "models" / "sample"
        if not (sample / "manifest.json").is_file():
            sample = CACHE / "replicas-sample"
            if not (sample / "manifest.json").is_file():
                subprocess.run([str(EPGEMBED), "train", str(REPO / "data" / "sample.xml.gz"), "--out", str(sample),
                                "--quiet"], check=True)
        return sample, "the sample model (no ../shared/data/epg dumps found)"
    wanted = [str(p.resolve()) for p in dumps]
    h = hashlib.sha256()
    for p in dumps:
        h.update(f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}".encode())
    own = CACHE / f"replicas-model-{h.hexdigest()[:10]}"
    candidates = [own] + sorted(CACHE.glob("epg-all-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for d in candidates:
        try:
            inputs = json.loads((d / "manifest.json").read_text())["data"]["inputs"]
        except (OSError, ValueError, KeyError):
            continue
        if sorted(inputs) == sorted(wanted) and loads(d):
            return d, f"a model of the {len(dumps)} shared dumps (cached: {d.name})"
    print(f"training a model of {len(dumps)} dumps -> {own} (once) ...", flush=True)
    subprocess.run([str(EPGEMBED), "train", *map(str, dumps), "--out", str(own), "--quiet"], check=True)
    return own, f"a model of the {len(dumps)} shared dumps (trained: {own.name})"


def second_version(model_dir: Path, tmp: Path) -> Path:
    """The same files under another version name: a real load + validate + swap of a same-size model."""
    copy = tmp / "model-b"
    shutil.copytree(model_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["version"] = manifest["version"] + "-b"
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return copy


def mixed_requests(model_dir: Path, n: int = 1000) -> list[tuple[str, str, str | None]]:
    """(method, path, body): by id 40%, known titles 30%, unseen titles 20%, batches of 8 titles 10%."""
    from epgembed.artifact.bundle import load_model
    model = load_model(model_dir, verify=False)
    rng = random.Random(0)
    shows = model.catalog.shows
    known = [shows[rng.randrange(len(shows))].title for _ in range(n)]
    unseen: list[str] = []
    while len(unseen) < n:
        a, b = rng.choice(shows).title.split(), rng.choice(shows).title.split()
        t = " ".join(a[: max(1, len(a) // 2)] + b[len(b) // 2:] + ["Spezial"])
        if model.resolve(t) is None:
            unseen.append(t)
    out: list[tuple[str, str, str | None]] = []
    for j in range(n):
        x = rng.random()
        if x < 0.4:
            out.append(("GET", f"/v1/titles/{rng.randrange(len(shows))}/related?k=10", None))
        elif x < 0.7:
            out.append(("GET", f"/v1/related?title={quote(known[j])}&k=10", None))
        elif x < 0.9:
            out.append(("GET", f"/v1/related?title={quote(unseen[j])}&k=10", None))
        else:
            titles = rng.sample(known, 4) + rng.sample(unseen, 4)
            out.append(("POST", "/v1/related", json.dumps({"titles": titles, "k": 10})))   # ASCII (\u escapes)
    return out


# ---------------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(host: str, port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Connection": "close"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class Replica:
    """One instance: `epgembed serve` in its own process group, with its own run and metrics folders."""

    def __init__(self, root: Path, folder: Path, workers: int, threads: int, poll: float):
        self.root, self.folder, self.workers, self.threads, self.poll = root, folder, workers, threads, poll
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.stderr = folder / "stderr.log"
        self.proc: subprocess.Popen | None = None
        self._from = 0
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EPGEMBED_", "PROMETHEUS_"))}
        env.update(EPGEMBED_RUN_DIR=str(self.folder / "run"), PROMETHEUS_MULTIPROC_DIR=str(self.folder / "prom"),
                   EPGEMBED_ACCESS_LOG=str(self.folder / "access.log"))
        argv = [str(EPGEMBED), "serve", "--models", str(self.root), "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", str(self.workers), "--threads", str(self.threads), "--poll-seconds", str(self.poll)]
        self._from = self.stderr.stat().st_size if self.stderr.exists() else 0
        self.proc = subprocess.Popen(argv, env=env, cwd=self.folder, stdout=subprocess.DEVNULL,
                                     stderr=open(self.stderr, "ab"), start_new_session=True)

    def log(self) -> str:
        with open(self.stderr, "rb") as f:
            f.seek(self._from)
            return f.read().decode("utf-8", "replace")

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            sys.exit(f"replica {self.addr} exited:\n{self.log()[-3000:]}")
        if self.log().count('"event": "model_loaded"') < self.workers:
            return False
        try:
            return get("127.0.0.1", self.port, "/readyz", 1)[0] == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 300) -> float:
        t0 = time.monotonic()
        while not self.ready():
            if time.monotonic() - t0 > timeout:
                sys.exit(f"replica {self.addr} not ready after {timeout} s:\n{self.log()[-3000:]}")
            time.sleep(0.05)
        return time.monotonic() - t0

    def serves_only(self, version: str) -> bool:
        """/readyz: ready, and every live worker of this instance serves `version`."""
        try:
            status, body = get("127.0.0.1", self.port, "/readyz", 1)
            d = json.loads(body)
        except (OSError, ValueError):
            return False
        return (status == 200 and d["model"]["version"] == version
                and bool(d.get("workers")) and set(d["workers"].values()) == {version})

    def kill9(self) -> None:
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
    def __init__(self, nginx: str, replicas: list[str]):
        self.prefix = Path(tempfile.mkdtemp(prefix="epgembed-nginx-"))
        self.prefix.chmod(0o755)           # its workers run as nobody (started as root)
        self.port = free_port()
        render_nginx.write_prefix(self.prefix, f"127.0.0.1:{self.port}", replicas)
        self.proc = subprocess.Popen(render_nginx.command(self.prefix, nginx), stdout=subprocess.DEVNULL,
                                     stderr=open(self.prefix / "logs" / "stderr.log", "wb"), start_new_session=True)
        end = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                sys.exit("nginx exited:\n" + (self.prefix / "logs" / "stderr.log").read_text())
            try:
                if get("127.0.0.1", self.port, "/healthz", 1)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > end:
                sys.exit("nginx did not answer:\n" + (self.prefix / "logs" / "error.log").read_text())
            time.sleep(0.05)

    def access(self) -> list[dict]:
        out = []
        for line in (self.prefix / "logs" / "access.log").read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass                        # a line being written
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        shutil.rmtree(self.prefix, ignore_errors=True)


# ---------------------------------------------------------------------------- load
def run_wrk(url: str, script: Path, seconds: float, connections: int = 16, threads: int = 2) -> dict:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "5s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    r = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    errors = {k: r[k] for k in ("connect", "read", "write", "status", "timeout")}
    return {"requests": r["requests"], "rps": round(r["requests"] / (r["duration_us"] / 1e6), 1),
            "p50_ms": r["p50_us"] / 1000, "p90_ms": r["p90_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
            "max_ms": r["max_us"] / 1000, "errors": sum(errors.values()), "error_detail": errors}


class PyLoad:
    """`n` threads, each one http.client keep-alive connection, cycling through `reqs`; every
    answer recorded: (sent, answered [wall clock], status, X-Model-Version, body model.version)."""

    def __init__(self, port: int, reqs: list[tuple[str, str, str | None]], n: int = 8):
        self.port, self.reqs = port, reqs
        self._stop = threading.Event()
        self.records: list[list[tuple]] = [[] for _ in range(n)]
        self.errors: list[list[tuple[float, str]]] = [[] for _ in range(n)]
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]
        self.t0 = time.time()
        for t in self.threads:
            t.start()

    def _run(self, i: int) -> None:
        rec, err = self.records[i], self.errors[i]
        j = i * 97
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self._stop.is_set():
            method, path, body = self.reqs[j % len(self.reqs)]
            j += 1
            sent = time.time()
            try:
                headers = {"Content-Type": "application/json"} if body else {}
                conn.request(method, path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                version = None
                if r.status == 200:
                    version = json.loads(data)["model"]["version"]
                rec.append((sent, time.time(), r.status, r.getheader("X-Model-Version"), version))
                if r.status != 200:
                    err.append((sent, f"{method} {path[:60]}: {r.status} {data[:120]!r}"))
            except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
                rec.append((sent, time.time(), 0, None, None))
                err.append((sent, f"{method} {path[:60]}: {e!r}"))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.close()

    def stop(self) -> dict:
        self._stop.set()
        for t in self.threads:
            t.join(15)
        self.t1 = time.time()
        self.all = sorted(x for r in self.records for x in r)
        self.failures = sorted(x for e in self.errors for x in e)
        ok = [x for x in self.all if x[2] == 200]
        lat = sorted((x[1] - x[0]) * 1000 for x in ok)
        return {"requests": len(self.all), "rps": round(len(self.all) / (self.t1 - self.t0), 1),
                "failed": len(self.failures), "failures": [f for _, f in self.failures[:10]],
                "mixed_version_answers": sum(1 for x in ok if x[3] != x[4]),
                "p50_ms": round(pct(lat, 50), 2), "p99_ms": round(pct(lat, 99), 2)}


def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values), max(1, math.ceil(q / 100 * len(sorted_values)))) - 1]   # nearest rank


class SlowClients:
    """`slow` connections sending a request head one byte per second, `idle` ones sending
    nothing; one the server closes is opened again (a slowloris keeps coming back)."""

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
            return True
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

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for c in self.conns:
            if c[0] is not None:
                c[0].close()


def probe(port: int, paths: list[str], seconds: float, timeout: float = 2.0, min_n: int = 0) -> dict:
    """Sequential GETs, each on a new connection, alternating `paths`, for `seconds` (and at
    least min_n of each): per path p50/p99/max in ms (a timeout counts as `timeout`), errors."""
    lat: dict[str, list[float]] = {p: [] for p in paths}
    errors: dict[str, int] = {p: 0 for p in paths}
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end or min(len(v) for v in lat.values()) < min_n:
        p = paths[i % len(paths)]
        i += 1
        t = time.perf_counter()
        try:
            ok = get("127.0.0.1", port, p, timeout)[0] == 200
        except OSError:
            ok = False
        lat[p].append((time.perf_counter() - t) * 1000)
        errors[p] += not ok
    out = {}
    for p, v in lat.items():
        v.sort()
        out[p] = {"n": len(v), "p50_ms": round(pct(v, 50), 2), "p99_ms": round(pct(v, 99), 2),
                  "max_ms": round(v[-1], 2), "failed_or_timed_out": errors[p]}
    return out


# ---------------------------------------------------------------------------- phases
def publish_phase(load_port: int, reqs, replicas: list[Replica], root: Path, model_b: Path, tail: float) -> dict:
    from epgembed.artifact.registry import publish
    b = json.loads((model_b / "manifest.json").read_text())["version"]
    load = PyLoad(load_port, reqs)
    time.sleep(1.0)
    t_call = time.time()
    publish(root, model_b, move=False)
    t_moved = time.time()               # `current` names b from here on
    switched: dict[str, float] = {}
    while len(switched) < len(replicas) and time.time() - t_moved < 60:
        for r in replicas:
            if r.addr not in switched and r.serves_only(b):
                switched[r.addr] = round(time.time() - t_moved, 3)
        time.sleep(0.02)
    t_all = t_moved + max(switched.values(), default=60)
    time.sleep(tail)
    stats = load.stop()
    ok = [x for x in load.all if x[2] == 200]
    first_b = min((x[0] for x in ok if x[4] == b), default=None)
    last_old = max((x[0] for x in ok if x[4] != b), default=None)
    return {**stats, "publish_call_s": round(t_moved - t_call, 3), "poll_seconds": replicas[0].poll,
            "switched_after_s": switched, "all_switched_after_s": round(t_all - t_moved, 3),
            "old_answers_after_all_switched": sum(1 for x in ok if x[0] > t_all and x[4] != b),
            "both_versions_answered_for_s": round(last_old - first_b, 3) if first_b and last_old else 0.0}


def kill_phase(nginx: Nginx, reqs, victim: Replica, tail: float) -> dict:
    mark = len(nginx.access())
    load = PyLoad(nginx.port, reqs)
    time.sleep(1.0)
    t_kill = time.time()
    victim.kill9()
    time.sleep(1.0)                        # systemd's RestartSec=1
    t_restart = time.time()
    victim.start()
    ready_s = victim.wait_ready()
    t_ready = time.time()

    def first_answer() -> float | None:
        """When nginx got the restarted instance's first 200 (it may precede `ready`: that waits
        for every worker, nginx needs one)."""
        return next((e["msec"] for e in nginx.access()[mark:] if e["msec"] > t_restart and e["status"] == 200
                     and e["upstream"].split(",")[-1].strip() == victim.addr), None)

    t_back = first_answer()
    while t_back is None and time.time() - t_ready < 30:
        time.sleep(0.1)
        t_back = first_answer()
    time.sleep(tail)
    stats = load.stop()
    entries = [e for e in nginx.access()[mark:] if e["msec"] >= t_kill]
    return {**stats,
            "retried_by_nginx": sum(1 for e in entries if "," in e["upstream"]),
            "restart_delay_s": round(t_restart - t_kill, 2),
            "restart_to_ready_s": round(ready_s, 2),
            "restart_to_traffic_via_nginx_s": round(t_back - t_restart, 2) if t_back else None,
            "kill_to_traffic_via_nginx_s": round(t_back - t_kill, 2) if t_back else None}


def slow_phase(port: int, paths: list[str], seconds: float, slow: int, idle: int) -> dict:
    attack = SlowClients(port, slow, idle)
    try:
        time.sleep(1.2)
        opened = attack.open_count()
        result = probe(port, paths, seconds, timeout=2.0)
        still = attack.open_count()
    finally:
        attack.close()
    t0 = time.monotonic()
    while True:                            # how long until it answers promptly again
        try:
            if get("127.0.0.1", port, paths[0], 1)[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() - t0 > 30:
            break
    return {"slow": slow, "idle": idle, "open_at_start": opened, "open_at_end": still,
            "reopened_after_server_close": attack.reopened, "failed_opens": attack.failed_opens,
            "probes": result, "recovered_after_attack_s": round(time.monotonic() - t0, 2)}


# ---------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20, help="length of each measured phase")
    ap.add_argument("--quick", action="store_true", help="4 s phases (a short run, about a minute in all)")
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--poll-seconds", type=float, default=2.0)
    ap.add_argument("--connections", type=int, default=16, help="wrk connections")
    ap.add_argument("--slow", type=int, default=100, help="slow clients (request head 1 byte/s)")
    ap.add_argument("--idle", type=int, default=100, help="idle connections")
    ap.add_argument("--dumps", type=Path, default=DUMPS)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.quick:
        args.seconds = 4.0
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(nginx_bin, os.X_OK):
        sys.exit("nginx is missing: apt-get install -y nginx (make bench-replicas installs it)")
    if not shutil.which("wrk"):             # Debian's, as for bench/serve.py: installed once when missing
        if os.geteuid() != 0:
            sys.exit("wrk is missing: sudo apt-get install -y wrk")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
            subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, check=True)
    load_at_start = os.getloadavg()
    t_begin = time.monotonic()
    dumps = sorted(args.dumps.glob("*.xml.gz")) if args.dumps.is_dir() else []
    model_dir, model_what = bench_model(dumps)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    print(f"model: {model_what}, {manifest['n_shows']} shows, version {manifest['version']}", flush=True)
    reqs = mixed_requests(model_dir)
    by_id = next(p for m, p, _ in reqs if p.startswith("/v1/titles/"))
    probe_paths = ["/healthz", by_id]

    tmp = Path(tempfile.mkdtemp(prefix="replicas-bench-", dir=CACHE))
    replicas: list[Replica] = []
    lbs: list[Nginx] = []
    results: dict = {}
    try:
        from epgembed.artifact.registry import publish
        root = tmp / "root"
        publish(root, model_dir, move=False)
        model_b = second_version(model_dir, tmp)
        replicas = [Replica(root, tmp / f"replica{i}", args.workers, args.threads, args.poll_seconds)
                    for i in range(args.replicas)]
        t0 = time.monotonic()
        for r in replicas:
            r.start()
        for r in replicas:
            r.wait_ready()
        startup = round(time.monotonic() - t0, 2)
        print(f"{args.replicas} replicas x {args.workers} workers ready in {startup} s", flush=True)
        lb_all = Nginx(nginx_bin, [r.addr for r in replicas])
        lb_one = Nginx(nginx_bin, [replicas[0].addr])
        lbs = [lb_all, lb_one]

        results["idle_latency"] = {"nginx": probe(lb_all.port, probe_paths, 0, min_n=100),
                                   "bare_gunicorn": probe(replicas[0].port, probe_paths, 0, min_n=100)}

        script = tmp / "mixed.lua"
        script.write_text(LUA % ",\n".join(
            "{" + ", ".join(json.dumps(x) for x in (m, p, b) if x is not None) + "}" for m, p, b in reqs))
        tput = {}
        for name, port in ((f"nginx -> {args.replicas} replicas", lb_all.port), ("nginx -> 1 replica", lb_one.port),
                           ("bare gunicorn (1 replica)", replicas[0].port)):
            if not args.quick:
                run_wrk(f"http://127.0.0.1:{port}", script, 2, args.connections)      # warm-up
            tput[name] = r = run_wrk(f"http://127.0.0.1:{port}", script, args.seconds, args.connections)
            print(f"{name:28s} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
                  f"errors {r['errors']}", flush=True)
        results["throughput_mixed"] = tput

        tail = 1.0 if args.quick else args.seconds / 4
        pub = publish_phase(lb_all.port, reqs, replicas, root, model_b, tail)
        results["publish_under_load"] = pub
        print(f"publish under load: every replica switched {pub['all_switched_after_s']} s after `current` moved "
              f"(poll {args.poll_seconds} s; per replica {pub['switched_after_s']}); mixed-version answers "
              f"{pub['mixed_version_answers']}; failed {pub['failed']} of {pub['requests']}", flush=True)

        kill = kill_phase(lb_all, reqs, replicas[-1], tail)
        results["kill9_one_instance"] = kill
        print(f"kill -9 of one instance under load: failed {kill['failed']} of {kill['requests']} "
              f"(retried by nginx {kill['retried_by_nginx']}); restarted after {kill['restart_delay_s']} s: "
              f"answering through nginx {kill['restart_to_traffic_via_nginx_s']} s later, every worker ready "
              f"{kill['restart_to_ready_s']} s later", flush=True)

        slow_n = slow_phase(lb_all.port, probe_paths, args.seconds, args.slow, args.idle)
        results["slow_clients_nginx"] = slow_n
        slow_g = slow_phase(replicas[0].port, probe_paths, args.seconds, args.slow, args.idle)
        results["slow_clients_bare_gunicorn"] = slow_g
        for name, s in (("through nginx", slow_n), ("bare gunicorn", slow_g)):
            h, q = s["probes"]["/healthz"], s["probes"][by_id]
            print(f"{args.slow} slow + {args.idle} idle clients, {name:14s}: /healthz p50 {h['p50_ms']} ms "
                  f"p99 {h['p99_ms']} ms ({h['failed_or_timed_out']} of {h['n']} failed/timed out at 2 s); "
                  f"by id p99 {q['p99_ms']} ms ({q['failed_or_timed_out']} of {q['n']})", flush=True)
    finally:
        for lb in lbs:
            lb.stop()
        for r in replicas:
            r.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    report = {
        "command": "python bench/replicas.py " + " ".join(sys.argv[1:]),
        "short_run": bool(args.quick),
        "note": ("a SHORT run (--quick: 4 s phases), a smoke test of the set-up; `make bench-replicas` "
                 "(20 s phases) gives the figures to quote") if args.quick else "full run (make bench-replicas)",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": load_at_start, "loadavg_at_end": os.getloadavg(),
                    "note": "nginx, every replica and the load generators share the same cores; "
                            "other jobs may be running"},
        "setup": {"replicas": args.replicas, "workers": args.workers, "threads": args.threads,
                  "poll_seconds": args.poll_seconds, "phase_seconds": args.seconds,
                  "wrk_connections": args.connections, "python_load_threads": 8,
                  "nginx": subprocess.run([nginx_bin, "-v"], capture_output=True, text=True).stderr.strip(),
                  "nginx_config": "deploy/nginx/epgembed.conf.template via deploy/render_nginx.py",
                  "mix": "by id 40%, known title 30%, unseen title 20%, POST batch of 8 titles 10%; k=10"},
        "model": {"what": model_what, "dir": str(model_dir), "version": manifest["version"],
                  "shows": manifest["n_shows"]},
        "startup_s": startup,
        "run_seconds": round(time.monotonic() - t_begin, 1),
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"{report['run_seconds']} s in all -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
