"""What the serving benchmarks share (bench/serve.py, bench/replicas.py): wrk (installed once
from Debian's packages when missing) and its results, a second version of a model, sampled
titles, a Python load generator that checks every answer's version, sequential probes,
and the results file."""
from __future__ import annotations

import http.client
import json
import math
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))            # deploy/ (the loopback replicas) and service/

from deploy.local_stack import free_port, get  # noqa: E402,F401  (free_port: for bench/serve.py)


SHARED_DUMPS = REPO.parent / "shared" / "data" / "epg"


def dump_paths(folder: str | Path) -> list[Path]:
    """The XMLTV dumps of a folder (the --dumps of the quality benchmarks), sorted; exits
    with status 2 naming the folder when it has none."""
    paths = sorted(Path(folder).glob("*.xml*"))
    if not paths:
        print(f"no dumps in {folder}", file=sys.stderr)
        raise SystemExit(2)
    return paths


# ---------------------------------------------------------------------------- wrk
def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() != 0:
        sys.exit("wrk is missing: sudo apt-get install -y wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, check=True)
    return shutil.which("wrk") or sys.exit("wrk could not be installed")


def run_wrk(url: str, script: Path, seconds: float, connections: int = 16, threads: int = 2,
            wrk: str = "wrk") -> dict:
    """wrk with a Lua script whose done() prints `RESULT {json}` (requests, duration_us, the
    error counts, p50/p90/p99/max in us): requests/s, latency in ms, errors."""
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "5s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    r = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    errors = {k: r[k] for k in ("connect", "read", "write", "status", "timeout")}
    return {"requests": r["requests"], "rps": round(r["requests"] / (r["duration_us"] / 1e6), 1),
            "p50_ms": r["p50_us"] / 1000, "p90_ms": r["p90_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
            "max_ms": r["max_us"] / 1000, "errors": sum(errors.values()), "error_detail": errors}


# ---------------------------------------------------------------------------- models and queries
def second_version(model_dir: Path, tmp: Path, suffix: str = "-b") -> Path:
    """The same files under another version name (the version + `suffix`): a real load +
    validate + swap of a same-size model."""
    import msgspec
    from epgembed.artifact.manifest import read_manifest, write_manifest
    copy = tmp / f"model{suffix}"
    shutil.copytree(model_dir, copy)
    manifest = read_manifest(copy)
    write_manifest(copy, msgspec.structs.replace(manifest, version=manifest.version + suffix))
    return copy


def sample_titles(model, n: int, rng: random.Random | None = None) -> tuple[list[int], list[str], list[str]]:
    """n random catalog ids, their titles, and n unseen titles (halves of two shows' words)."""
    rng = rng or random.Random(0)
    shows = model.catalog.shows
    ids = [rng.randrange(len(shows)) for _ in range(n)]
    known = [shows[i].title for i in ids]
    unseen: list[str] = []
    while len(unseen) < n:
        a, b = rng.choice(shows).title.split(), rng.choice(shows).title.split()
        t = " ".join(a[: max(1, len(a) // 2)] + b[len(b) // 2:] + ["Spezial"])
        if model.resolve(t) is None:
            unseen.append(t)
    return ids, known, unseen


# ---------------------------------------------------------------------------- Python load
def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values), max(1, math.ceil(q / 100 * len(sorted_values)))) - 1]   # nearest rank


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


def kill_and_restart(nginx, victim, mark: int) -> dict:
    """kill -9 of `victim` (a local_stack.Replica behind `nginx`), restarted 1 s later (systemd's
    RestartSec=1): wall-clock times of the kill, the restart and the first 200 nginx got from it
    after the restart (its access log from entry `mark`; it may precede ready, which waits for
    every worker), and the seconds from the restart to ready."""
    t_kill = time.time()
    victim.kill9()
    time.sleep(1.0)
    t_restart = time.time()
    victim.start()
    ready_s = victim.wait_ready()
    t_ready = time.time()

    def first_answer() -> float | None:
        return next((e["msec"] for e in nginx.access()[mark:] if e["msec"] > t_restart and e["status"] == 200
                     and e["upstream"].split(",")[-1].strip() == victim.addr), None)

    t_back = first_answer()
    while t_back is None and time.time() - t_ready < 30:
        time.sleep(0.1)
        t_back = first_answer()
    return {"t_kill": t_kill, "t_restart": t_restart, "t_back": t_back, "ready_s": ready_s}


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


def probe_apart(port: int, paths: list[str], seconds: float, timeout: float = 2.0, min_n: int = 0) -> dict:
    """probe() in a process of its own, as a real health checker is: a prober sharing this
    process's GIL with the load's client threads (each decoding answers of hundreds of kB)
    would time the client's own waits, not the server's."""
    call = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from common import probe; "
            f"print(json.dumps(probe({port}, {paths!r}, {seconds}, {timeout}, {min_n})))")
    done = subprocess.run([sys.executable, "-c", call], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the prober failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


# ---------------------------------------------------------------------------- results
def write_results(out: Path, report: dict, key: str | None = None) -> None:
    """bench/results/<name>.json (the folder made when missing); with `key`, the report goes
    under that key and the file's other figures are kept (a run of one phase)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if key is not None:
        report = {**(json.loads(out.read_text()) if out.is_file() else {}), key: report}
    out.write_text(json.dumps(report, indent=1))
