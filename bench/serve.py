"""`make bench-serve`: gunicorn (service/gunicorn.conf.py) on a model of every shared dump,
loaded by wrk from the same machine. Writes bench/results/serve.json.

    python bench/serve.py [--seconds 20] [--connections 16] [--workers 2] [--threads 4]
    python bench/serve.py --model bench/cache/scale/model-1000000 --no-reload --out bench/results/serve-1m.json

Per endpoint: requests/s, p50/p90/p99 latency, errors. The ratio of /v1/titles/<id>/related
to /healthz throughput is measured in the same run (target >= 0.70, p99 <= 15 ms). Then a
run on /v1/titles/<id>/related with a new version published in the middle (target: zero
errors, and every worker ends on the new version), and resident memory per worker
(RSS, of which file-backed = the shared mmapped index and arrays, and PSS).
wrk comes from Debian's packages; it is installed with apt-get when missing (as root).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import requests

from epgembed.artifact.manifest import read_manifest
from epgembed.query.load import load_model
from epgembed.config import Config
from epgembed.registry import publish

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ensure_wrk, free_port, sample_titles, second_version, write_results  # noqa: E402
from common import run_wrk as common_run_wrk  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DUMPS = REPO.parent / "shared" / "data" / "epg"
CACHE = REPO / "bench" / "cache"
OUT = REPO / "bench" / "results" / "serve.json"
LUA_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n', summary.requests, summary.duration,
    summary.bytes, e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


# ---------------------------------------------------------------------------- setup
def bench_model(dumps: list[Path]) -> Path:
    """A model of all dumps, trained once per (inputs, default config) into bench/cache/."""
    h = hashlib.sha256(json.dumps(Config().to_dict(), sort_keys=True).encode())
    for p in dumps:
        h.update(f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}".encode())
    out = CACHE / f"epg-all-{h.hexdigest()[:10]}"
    if not (out / "manifest.json").is_file():
        from epgembed.build.pipeline import train_model
        print(f"training the bench model on {len(dumps)} dumps -> {out} (once) ...", flush=True)
        train_model(dumps, out, Config(), threads=os.cpu_count())
        for old in CACHE.glob("epg-all-*"):      # models of earlier code/config are not needed
            if old != out and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    return out


def start_gunicorn(root: Path, port: int, args: argparse.Namespace, tmp: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EPGEMBED_", "PROMETHEUS_"))}
    env.update(EPGEMBED_MODELS=str(root), EPGEMBED_BIND=f"127.0.0.1:{port}", EPGEMBED_WORKERS=str(args.workers),
               EPGEMBED_THREADS=str(args.threads), EPGEMBED_POLL_SECONDS="2",
               EPGEMBED_ACCESS_LOG=str(tmp / "access.log"))
    if getattr(args, "compute_slots", None) is not None:      # bench/soak.py has no such option
        env["EPGEMBED_COMPUTE_SLOTS"] = str(args.compute_slots)
    return subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(REPO / "service" / "gunicorn.conf.py")],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "gunicorn.err", "wb"),
                            start_new_session=True)


def wait_ready(proc: subprocess.Popen, args: argparse.Namespace, tmp: Path) -> None:
    end = time.monotonic() + args.ready_timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit((tmp / "gunicorn.err").read_text())
        log = (tmp / "gunicorn.err").read_text()
        if log.count('"event": "model_loaded"') >= args.workers:
            return
        time.sleep(0.2)
    sys.exit("gunicorn did not start:\n" + (tmp / "gunicorn.err").read_text())


def worker_pids(master: int) -> list[int]:
    text = Path(f"/proc/{master}/task/{master}/children").read_text()
    return [int(p) for p in text.split()]


def memory(pid: int) -> dict:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.split(":")[0] in ("VmRSS", "RssAnon", "RssFile"):
            fields[line.split(":")[0]] = int(line.split()[1])
    pss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
               if line.startswith("Pss:"))
    return {"pid": pid, "rss_mb": round(fields["VmRSS"] / 1024, 1), "anon_mb": round(fields["RssAnon"] / 1024, 1),
            "file_mb": round(fields["RssFile"] / 1024, 1), "pss_mb": round(pss / 1024, 1)}


# ---------------------------------------------------------------------------- load
def queries(model_dir: Path, n: int = 2000) -> dict[str, list[str]]:
    """Paths for each endpoint: random ids, known titles, unseen titles (words of two shows)."""
    model = load_model(model_dir, verify=False)
    ids, known, unseen = sample_titles(model, n)
    prefixes = [model.catalog.shows[i].key[:3] for i in ids]
    return {"/healthz": ["/healthz"],
            "/v1/titles/<id>/related": [f"/v1/titles/{i}/related?k=10" for i in ids],
            "/v1/related?title= (known)": [f"/v1/related?title={quote(t)}&k=10" for t in known],
            "/v1/related?title= (unseen)": [f"/v1/related?title={quote(t)}&k=10" for t in unseen],
            "/v1/titles?q= (search)": [f"/v1/titles?q={quote(p)}&limit=20" for p in prefixes],
            "POST /v1/related (10 titles)": [json.dumps({"titles": known[j:j + 5] + unseen[j:j + 5], "k": 10})
                                             for j in range(0, 500, 10)]}


def lua_script(name: str, items: list[str], tmp: Path) -> Path:
    table = ",\n".join(json.dumps(x) for x in items)   # JSON strings are valid Lua strings here
    if name.startswith("POST"):
        body = (f"local bodies = {{\n{table}\n}}\nlocal i = 0\nrequest = function()\n  i = i % #bodies + 1\n"
                f'  return wrk.format("POST", "/v1/related", {{["Content-Type"] = "application/json"}}, bodies[i])\nend\n')
    else:
        body = (f"local paths = {{\n{table}\n}}\nlocal i = 0\nrequest = function()\n  i = i % #paths + 1\n"
                f"  return wrk.format(nil, paths[i])\nend\n")
    path = tmp / f"load-{abs(hash(name))}.lua"
    path.write_text(body + LUA_DONE)
    return path


def run_wrk(wrk: str, url: str, script: Path, args: argparse.Namespace, seconds: int) -> dict:
    return common_run_wrk(url, script, seconds, args.connections, args.wrk_threads, wrk)


def versions_served(url: str, n: int = 20) -> set[str]:
    return {requests.get(url + "/v1/model", headers={"Connection": "close"}, timeout=5).json()["version"]
            for _ in range(n)}


def reload_run(wrk: str, url: str, script: Path, args: argparse.Namespace, root: Path, model_b: Path) -> dict:
    published: dict = {}

    def publish_midway():
        time.sleep(args.seconds / 2)
        t0 = time.perf_counter()
        published["version"] = publish(root, model_b, move=False)
        published["publish_s"] = round(time.perf_counter() - t0, 2)

    t = threading.Thread(target=publish_midway)
    t.start()
    result = run_wrk(wrk, url, script, args, args.seconds)
    t.join()
    served = versions_served(url)
    return {**result, "published": published.get("version"), "publish_seconds": published.get("publish_s"),
            "versions_served_after": sorted(served), "switched": served == {published.get("version")}}


# ---------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--compute-slots", type=int, help="EPGEMBED_COMPUTE_SLOTS (default: the service's)")
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--dumps", type=Path, default=DUMPS)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--model", type=Path, help="serve this model directory (default: a model of --dumps)")
    ap.add_argument("--no-reload", action="store_true", help="skip the publish-mid-run test (and its copy)")
    ap.add_argument("--ready-timeout", type=int, default=600, help="seconds for the workers to load")
    args = ap.parse_args()
    load_at_start = os.getloadavg()
    wrk = ensure_wrk()
    dumps = [] if args.model else sorted(args.dumps.glob("*.xml.gz"))
    model_dir = args.model.resolve() if args.model else bench_model(dumps)
    manifest = read_manifest(model_dir)
    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-", dir=CACHE))
    proc = None
    try:
        root = tmp / "root"
        publish(root, model_dir, move=False)
        model_b = None if args.no_reload else second_version(model_dir, tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        load = queries(model_dir)
        proc = start_gunicorn(root, port, args, tmp)
        t_start = time.perf_counter()
        wait_ready(proc, args, tmp)
        startup_s = round(time.perf_counter() - t_start, 1)
        print(f"{args.workers} workers loaded the model in {startup_s} s", flush=True)
        results = {}
        for name, items in load.items():
            script = lua_script(name, items, tmp)
            run_wrk(wrk, url, script, args, 2)                       # warm-up
            results[name] = run_wrk(wrk, url, script, args, args.seconds)
            r = results[name]
            print(f"{name:32s} {r['rps']:9.1f} req/s  p50 {r['p50_ms']:6.2f} ms  p90 {r['p90_ms']:6.2f} ms  "
                  f"p99 {r['p99_ms']:6.2f} ms  errors {r['errors']}", flush=True)
        mem = [memory(p) for p in worker_pids(proc.pid)]
        reload, mem_after = None, None
        if model_b is not None:
            reload = reload_run(wrk, url, lua_script("/v1/titles/<id>/related", load["/v1/titles/<id>/related"], tmp),
                                args, root, model_b)
            print(f"{'reload mid-run (by id)':32s} {reload['rps']:9.1f} req/s  p50 {reload['p50_ms']:6.2f} ms  "
                  f"p99 {reload['p99_ms']:6.2f} ms  errors {reload['errors']}  switched {reload['switched']}")
            mem_after = [memory(p) for p in worker_pids(proc.pid)]
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    by_id, floor = results["/v1/titles/<id>/related"], results["/healthz"]
    ratio = round(by_id["rps"] / floor["rps"], 3)
    for m in mem:
        print(f"worker {m['pid']}: RSS {m['rss_mb']} MB (file-backed {m['file_mb']} MB, anon {m['anon_mb']} MB), "
              f"PSS {m['pss_mb']} MB")
    print(f"ratio /v1/titles/<id>/related : /healthz = {ratio:.2f} (target >= 0.70); "
          f"p99 {by_id['p99_ms']:.2f} ms (target <= 15)")
    report = {
        "command": "python bench/serve.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": load_at_start, "loadavg_at_end": os.getloadavg(),
                    "note": "wrk runs on the same 2 shared cores as gunicorn; other jobs may be running"},
        "setup": {"workers": args.workers, "threads": args.threads,
                  "compute_slots": args.compute_slots or "the service's default", "worker_class": "gthread", "reuse_port": True,
                  "connections": args.connections, "wrk_threads": args.wrk_threads, "seconds": args.seconds,
                  "access_log": "on (JSON line per request, to a file)", "k": 10},
        "model": {"version": manifest.version, "shows": manifest.n_shows, "dim": manifest.dim,
                  "n_trees": manifest.n_trees, "search_k": manifest.config["index"]["search_k"],
                  "dir": str(model_dir), "dumps": [p.name for p in dumps] or manifest.data.inputs,
                  "bytes": sum(f.bytes for f in manifest.files.values())},
        "startup_s": startup_s,
        "endpoints": results,
        "ratio_by_id_to_healthz": ratio,
        "targets": {"ratio>=0.70": ratio >= 0.70, "p99<=15ms": by_id["p99_ms"] <= 15,
                    "reload_zero_errors": None if reload is None else reload["errors"] == 0 and reload["switched"]},
        "reload_run": reload,
        "memory_per_worker": {"after_load_runs": mem, "after_reload": mem_after},
    }
    write_results(args.out, report)
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
