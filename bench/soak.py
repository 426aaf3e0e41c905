"""`make bench-soak`: a long run of mixed traffic against gunicorn with a model reload every
minute. Writes bench/results/soak.json.

    python bench/soak.py [--seconds 300] [--connections 16] [--reload-every 60] [--window 60]

Two small models of data/sample.xml.gz (seeds 1 and 2: same catalog and ids, other vectors,
other versions) are trained once into bench/cache/ and published into a fresh models root;
gunicorn runs with the repo's config (2 gthread workers x 4 threads, access log on, polling
`current` every 2 s). An asyncio client in this process keeps `--connections` keep-alive
HTTP/1.1 connections busy with a fixed mix: catalog ids, known titles, unseen titles,
10-title batch POSTs, title search, and deliberately bad requests that must get their 4xx.
Every `--reload-every` seconds `current` is switched to the other version with
registry.rollback(to=...) (loads and validates it first), and the workers swap under load.

Counted as unexpected: a 5xx, a connection error or timeout, a good request not answered
200 with a known model version, a bad request not answered with its expected status.
Reported: per-window p50/p99 and counts, error counts by kind, RSS and open fds of every
worker (from /proc) at the start, at each window and at the end, the reloads counted by
/metrics, worker restarts, and the CPU time of the client itself (it shares the 2 cores).
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from importlib import metadata
from pathlib import Path
from urllib.parse import quote

import requests

from epgembed.artifact.manifest import read_manifest
from epgembed.query.load import load_model
from service import Limits
from epgembed.config import Config
from epgembed.registry import current_version, publish, rollback
from serve import free_port, sample_titles, start_gunicorn, wait_ready, worker_pids   # bench/serve.py

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample.xml.gz"
CACHE = REPO / "bench" / "cache"
OUT = REPO / "bench" / "results" / "soak.json"
MIX = {"by_id": 30, "known_title": 15, "unseen_title": 25, "batch": 10, "search": 5, "bad": 15}


# ---------------------------------------------------------------------------- setup
def soak_models() -> list[Path]:
    """Two versions of a sample model (seeds 1 and 2), trained once into bench/cache/."""
    h = hashlib.sha256(json.dumps(Config().to_dict(), sort_keys=True).encode() + SAMPLE.read_bytes())
    out = []
    for seed in (1, 2):
        d = CACHE / f"soak-{h.hexdigest()[:10]}-seed{seed}"
        if not (d / "manifest.json").is_file():
            from epgembed.build.pipeline import train_model
            print(f"training {d.name} (once) ...", flush=True)
            train_model([SAMPLE], d, Config().with_seed(seed), threads=1)
        out.append(d)
    for old in CACHE.glob("soak-*-seed*"):        # models of an earlier config or sample
        if old not in out and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return out


def http(method: str, target: str, body: bytes = b"", ctype: str | None = None) -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (f"Content-Type: {ctype}\r\n" if ctype else "")
    head += f"Content-Length: {len(body)}\r\n" if body or method in ("POST", "PUT") else ""
    return head.encode("latin-1") + b"\r\n" + body


def traffic(model_dir: Path, n: int = 2000) -> dict[str, list[tuple[bytes, int]]]:
    """(raw request, expected status) per kind."""
    model = load_model(model_dir, verify=False)
    ids, known, unseen = sample_titles(model, n)
    get = lambda path: http("GET", path)                                        # noqa: E731
    post = lambda obj, ctype="application/json": http("POST", "/v1/related", obj, ctype)  # noqa: E731
    bad = [(get("/v1/related?title=News&k=0"), 400), (get("/v1/related?title=News&k=1.5"), 400),
           (get("/v1/related?title=News&k=-3"), 400), (get("/v1/related?title=%ff%fe"), 400),
           (get("/v1/related?title=abc%zz"), 400), (get("/v1/related?title=News&bogus=1"), 400),
           (get("/v1/related?title=" + "x" * 600), 400), (get("/v1/titles/999999999/related"), 404),
           (get("/v1/titles/..%2f..%2fetc%2fpasswd/related"), 404), (get("/nowhere"), 404),
           (http("PUT", "/v1/related"), 405), (post(b'{"titles": ["News"]}', "text/plain"), 415),
           (post(json.dumps({"titles": ["News"] * 65}).encode()), 400),
           (post(b'{"titles": ' + b"[" * 3000 + b"]" * 3000 + b"}"), 400),
           (post(b'{"titles": ["News"], "k": 1e999}'), 400), (post(b"x" * (Limits().max_body_bytes + 1)), 413)]
    return {
        "by_id": [(get(f"/v1/titles/{i}/related?k=10"), 200) for i in ids],
        "known_title": [(get(f"/v1/related?title={quote(t)}&k=10"), 200) for t in known],
        "unseen_title": [(get(f"/v1/related?title={quote(t)}&k=10"), 200) for t in unseen],
        "batch": [(post(json.dumps({"titles": known[j:j + 5] + unseen[j:j + 5], "k": 10}).encode()), 200)
                  for j in range(0, 500, 10)],
        "search": [(get(f"/v1/titles?q={quote(model.catalog.shows[i].key[:3])}&limit=20"), 200) for i in ids],
        "bad": bad,
    }


def proc_stats(pid: int) -> dict:
    status = {line.split(":")[0]: line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
              if line.split(":")[0] in ("VmRSS", "RssAnon", "RssFile", "Threads")}
    fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]   # sockets come and go
    return {"pid": pid, "rss_mb": round(int(status["VmRSS"]) / 1024, 1),
            "anon_mb": round(int(status["RssAnon"]) / 1024, 1), "file_mb": round(int(status["RssFile"]) / 1024, 1),
            "fds": len(fds), "socket_fds": sum(f.startswith("socket:") for f in fds), "threads": int(status["Threads"])}


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])          # utime + stime
        except FileNotFoundError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def metric_sum(text: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


# ---------------------------------------------------------------------------- load
class Recorder:
    def __init__(self, t0: float, window: float, versions: set[str]):
        self.t0, self.window, self.versions = t0, window, versions
        self.latency: dict[tuple[int, str], list[float]] = {}      # (window, kind) -> ms
        self.errors: Counter = Counter()
        self.errors_by_window: Counter = Counter()
        self.error_examples: list[str] = []
        self.served: Counter = Counter()

    def ok(self, kind: str, t: float, seconds: float) -> None:
        self.latency.setdefault((int((t - self.t0) // self.window), kind), []).append(seconds * 1000)

    def error(self, kind: str, what: str, detail: str) -> None:
        self.errors[f"{kind}: {what}"] += 1
        self.errors_by_window[int((time.perf_counter() - self.t0) // self.window)] += 1
        if len(self.error_examples) < 20:
            self.error_examples.append(f"{kind}: {what}: {detail[:200]}")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:] if ":" in x)}
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while (size := int((await reader.readline()).split(b";")[0], 16)):
            body += await reader.readexactly(size)
            await reader.readline()
        await reader.readline()
    else:
        body = await reader.read()
    return status, headers, body


async def connection(cid: int, port: int, load: dict, rec: Recorder, end: float, timeout: float) -> None:
    rng = random.Random(cid)
    kinds, weights = list(MIX), list(MIX.values())
    reader = writer = None
    while time.perf_counter() < end:
        kind = rng.choices(kinds, weights)[0]
        raw, expected = rng.choice(load[kind])
        t = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
            writer.write(raw)
            status, headers, body = await asyncio.wait_for(read_response(reader), timeout)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
            rec.error(kind, "connection", repr(e))
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.05)
            continue
        elapsed = time.perf_counter() - t
        if status != expected:
            rec.error(kind, f"status {status} (expected {expected})", body.decode("utf-8", "replace"))
        elif expected == 200:
            version = json.loads(body)["model"]["version"]
            if version in rec.versions:
                rec.ok(kind, t, elapsed)
                rec.served[version] += 1
            else:
                rec.error(kind, "unknown model version", version)
        elif not headers.get("content-type", "").startswith("application/json"):
            rec.error(kind, "error not JSON", body.decode("utf-8", "replace"))
        else:
            rec.ok(kind, t, elapsed)
        if headers.get("connection", "").lower() == "close":
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q / 100 * len(xs)))], 2)


async def drive(port: int, load: dict, rec: Recorder, seconds: float, connections: int, timeout: float) -> None:
    end = time.perf_counter() + seconds
    await asyncio.gather(*(connection(c, port, load, rec, end, timeout) for c in range(connections)))


def window_stats(rec: Recorder, seconds: float) -> list[dict]:
    out = []
    for w in sorted({w for w, _ in rec.latency if w * rec.window < seconds}):   # not the last moment's stragglers
        every = [x for (ww, _), xs in rec.latency.items() if ww == w for x in xs]
        single = [x for (ww, k), xs in rec.latency.items() if ww == w and k not in ("batch", "bad") for x in xs]
        out.append({"window": w, "from_s": w * rec.window, "requests": len(every),
                    "rps": round(len(every) / rec.window, 1), "p50_ms": percentile(every, 50),
                    "p99_ms": percentile(every, 99), "single_get_p99_ms": percentile(single, 99),
                    "batch_p99_ms": percentile(rec.latency.get((w, "batch"), []), 99),
                    "unexpected": rec.errors_by_window.get(w, 0)})
    return out


def kind_stats(rec: Recorder) -> dict:
    out = {}
    for kind in MIX:
        xs = [x for (_, k), v in rec.latency.items() if k == kind for x in v]
        out[kind] = {"requests": len(xs), "p50_ms": percentile(xs, 50), "p99_ms": percentile(xs, 99),
                     "max_ms": round(max(xs), 2) if xs else None}
    return out


# ---------------------------------------------------------------------------- main
def sampler(pids: list[int], every: float, stop: threading.Event, t0: float, out: list) -> None:
    while not stop.wait(every):
        try:
            out.append({"at_s": round(time.perf_counter() - t0), "workers": [proc_stats(p) for p in pids]})
        except FileNotFoundError:          # a worker died: reported at the end
            out.append({"at_s": round(time.perf_counter() - t0), "workers": "a worker is gone"})


def reloader(root: Path, versions: list[str], every: float, stop: threading.Event, t0: float, out: list) -> None:
    while not stop.wait(every):
        target = versions[0] if current_version(root) == versions[1] else versions[1]
        t = time.perf_counter()
        try:
            rollback(root, to=target)          # loads + validates, then one atomic rename of `current`
            out.append({"at_s": round(t - t0, 1), "to": target, "seconds": round(time.perf_counter() - t, 2)})
        except Exception as e:                 # reported, and the soak fails on it
            out.append({"at_s": round(t - t0, 1), "to": target, "error": repr(e)})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, default in (("--seconds", 300.0), ("--connections", 16), ("--reload-every", 60.0), ("--window", 60.0),
                          ("--warmup", 5.0), ("--workers", 2), ("--threads", 4), ("--timeout", 10.0),
                          ("--ready-timeout", 120.0)):     # bench/serve.py's start_gunicorn/wait_ready read these
        ap.add_argument(flag, type=type(default), default=default)    # window: p50/p99, RSS, fds; timeout: per request
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    load_at_start = os.getloadavg()
    models = soak_models()
    versions = [read_manifest(m).version for m in models]
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="soak-", dir=CACHE))
    proc = None
    try:
        root = tmp / "root"
        for m in models:
            publish(root, m, move=False)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        load = traffic(models[0])
        proc = start_gunicorn(root, port, args, tmp)
        wait_ready(proc, args, tmp)
        asyncio.run(drive(port, load, Recorder(time.perf_counter(), 1e9, set(versions)), args.warmup,
                          args.connections, args.timeout))
        workers = worker_pids(proc.pid)
        start_stats = [proc_stats(p) for p in workers]
        reloads_before = metric_sum(requests.get(url + "/metrics", timeout=10).text,
                                    'epgembed_model_reloads_total{result="ok"}')
        stop, samples, switches = threading.Event(), [], []
        t0 = time.perf_counter()
        threads = [threading.Thread(target=sampler, args=(workers, args.window, stop, t0, samples)),
                   threading.Thread(target=reloader, args=(root, versions, args.reload_every, stop, t0, switches))]
        [t.start() for t in threads]
        rec = Recorder(t0, args.window, set(versions))
        client_cpu0, server_cpu0 = time.process_time(), cpu_seconds([proc.pid, *workers])
        print(f"soak: {args.seconds:g} s, {args.connections} connections, reload every {args.reload_every:g} s, "
              f"gunicorn {args.workers}x{args.threads} on :{port} ...", flush=True)
        asyncio.run(drive(port, load, rec, args.seconds, args.connections, args.timeout))
        wall = time.perf_counter() - t0
        client_cpu, server_cpu = time.process_time() - client_cpu0, cpu_seconds([proc.pid, *workers]) - server_cpu0
        stop.set()
        [t.join() for t in threads]
        time.sleep(3)                                   # the last switch reaches both workers (poll 2 s)
        end_workers = worker_pids(proc.pid)
        end_stats = [proc_stats(p) for p in end_workers]
        metrics = requests.get(url + "/metrics", timeout=10).text
        final = {requests.get(url + "/v1/model", headers={"Connection": "close"}, timeout=10).json()["version"]
                 for _ in range(12)}             # new connections: both workers answer
        expected_final = current_version(root)
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    log = (tmp / "gunicorn.err").read_text()
    shutil.rmtree(tmp, ignore_errors=True)
    reloads = metric_sum(metrics, 'epgembed_model_reloads_total{result="ok"}') - reloads_before
    return report(args, rec, {
        "wall": wall, "client_cpu": client_cpu, "server_cpu": server_cpu, "load_at_start": load_at_start,
        "versions": versions, "switches": switches, "samples": samples, "start": start_stats, "end": end_stats,
        "restarted": sorted(end_workers) != sorted(workers), "reloads": reloads,
        "refused": metric_sum(metrics, 'epgembed_model_reloads_total{result="refused"}'),
        "final": sorted(final), "expected_final": expected_final,
        "log": {"tracebacks": log.count("Traceback"), "worker_timeouts": log.count("WORKER TIMEOUT"),
                "worker_boots": log.count("Booting worker")}})


def report(args: argparse.Namespace, rec: Recorder, run: dict) -> int:
    windows, kinds = window_stats(rec, args.seconds), kind_stats(rec)
    full = [w for w in windows if (w["window"] + 1) * args.window <= args.seconds + 1e-6] or windows
    p99s = [w["p99_ms"] for w in full if w["p99_ms"] is not None]
    unexpected = sum(rec.errors.values())
    growth = [round(e["rss_mb"] - s["rss_mb"], 1) for s, e in zip(run["start"], run["end"])]
    fd_change = [(e["fds"] - e["socket_fds"]) - (s["fds"] - s["socket_fds"]) for s, e in zip(run["start"], run["end"])]
    good = sum(v["requests"] for v in kinds.values())
    checks = {
        "zero_unexpected_errors": unexpected == 0,
        "every_switch_applied": all("error" not in x for x in run["switches"]) and run["final"] == [run["expected_final"]],
        "reloads_seen_by_metrics": run["reloads"] == args.workers * len(run["switches"]),
        "no_worker_restart": not run["restarted"] and run["log"]["worker_timeouts"] == 0,
        "p99_stable (max/min window p99 <= 3)": bool(p99s) and max(p99s) <= 3 * min(p99s),
        "rss_growth_per_worker <= 10 MB": all(g <= 10 for g in growth),
        "fds_stable (files/pipes +-2, sockets at the end <= start)": all(abs(d) <= 2 for d in fd_change) and all(
            e["socket_fds"] <= s["socket_fds"] for s, e in zip(run["start"], run["end"])),
    }
    print(f"{'window':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'GET p99':>8} {'batch p99':>9} {'unexpected':>10}")
    for w in windows:
        print(f"{w['from_s']:>7.0f}s {w['rps']:>8.1f} {w['p50_ms']:>8} {w['p99_ms']:>8} {w['single_get_p99_ms']!s:>8} "
              f"{w['batch_p99_ms']!s:>9} {w['unexpected']:>10}")
    for kind, k in kinds.items():
        print(f"  {kind:13s} {k['requests']:8d} answered as expected  p50 {k['p50_ms']} ms  p99 {k['p99_ms']} ms")
    for s_, e in zip(run["start"], run["end"]):
        print(f"  worker {s_['pid']}: RSS {s_['rss_mb']} -> {e['rss_mb']} MB (anon {s_['anon_mb']} -> {e['anon_mb']}), "
              f"fds {s_['fds']} -> {e['fds']} (sockets {s_['socket_fds']} -> {e['socket_fds']}), threads {s_['threads']} -> {e['threads']}")
    print(f"  switches of `current`: {len(run['switches'])}; reloads counted by /metrics: {run['reloads']:g} "
          f"(refused {run['refused']:g}); served after: {run['final']}")
    print(f"  unexpected: {unexpected} {dict(rec.errors) or ''}")
    print(f"  CPU: client {run['client_cpu']:.0f} s = {run['client_cpu'] / run['wall']:.2f} cores, "
          f"gunicorn {run['server_cpu']:.0f} s = {run['server_cpu'] / run['wall']:.2f} cores (of {os.cpu_count()})")
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    result = {
        "command": "make bench-soak  (python bench/soak.py " + " ".join(sys.argv[1:]) + ")",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": run["load_at_start"], "loadavg_at_end": os.getloadavg(),
                    "note": "client and gunicorn share the machine's cores with other jobs"},
        "versions": {"python": sys.version.split()[0], **{m: metadata.version(m) for m in
                     ("gunicorn", "flask", "werkzeug", "annoy", "numpy")}},
        "config": {"seconds": args.seconds, "connections": args.connections, "reload_every_s": args.reload_every,
                   "window_s": args.window, "warmup_s": args.warmup, "workers": args.workers, "threads": args.threads,
                   "worker_class": "gthread", "access_log": "on (file)", "poll_seconds": 2, "mix_percent": MIX,
                   "client": "asyncio, raw HTTP/1.1 keep-alive, one process", "models": run["versions"]},
        "checks": checks, "requests_as_expected": good, "rps": round(good / run["wall"], 1),
        "unexpected": unexpected, "unexpected_by_kind": dict(rec.errors), "unexpected_examples": rec.error_examples,
        "windows": windows, "by_kind": kinds, "served_by_version": dict(rec.served),
        "switches": run["switches"], "reloads_by_metrics": run["reloads"], "refused_by_metrics": run["refused"],
        "served_after": run["final"], "workers": {"start": run["start"], "end": run["end"], "rss_growth_mb": growth,
                                                   "non_socket_fd_change": fd_change, "samples": run["samples"]},
        "worker_restarts": run["restarted"], "gunicorn_log": run["log"],
        "cpu": {"wall_s": round(run["wall"], 1), "client_cpu_s": round(run["client_cpu"], 1),
                "client_cores": round(run["client_cpu"] / run["wall"], 2), "gunicorn_cpu_s": round(run["server_cpu"], 1),
                "gunicorn_cores": round(run["server_cpu"] / run["wall"], 2)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"-> {args.out}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
