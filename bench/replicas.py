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
   /healthz and of a by-id query on new connections while they hang;
5. saturation (issue 26.9): 16 keep-alive clients sending the largest legal request (the
   most titles and answer rows service/config.py Limits allow, unseen titles) through
   nginx (to every replica, then to one), then to that instance bare: /healthz p50/p99 on
   new connections meanwhile, probed from a process of its own (targets: p99 <= 50 ms
   through nginx, <= 250 ms bare; bench/work_bounds.py); then through nginx to replicas
   with a compute slot per thread
   (EPGEMBED_COMPUTE_SLOTS = threads: the service before its gate), the same run;
6. feeds (issue 27): 2 feeds x N replicas behind one nginx, traffic to both, a publish on
   one, kill -9 of a replica of the other (bench/replicas_feeds.py; its own replicas).

`--only PHASE` runs one phase (with the idle latencies, but for feeds): throughput, publish,
kill, slow, saturation, feeds; its figures go under the key PHASE of the results file, whose
other figures are kept.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "bench"), str(REPO)]       # bench/common.py, deploy/local_stack.py
from common import (PyLoad, ensure_wrk, kill_and_restart, probe, run_wrk, sample_titles,  # noqa: E402
                    second_version, write_results)
from deploy.local_stack import LocalStack, Nginx, Replica, SlowClients, StackError, find_nginx, get  # noqa: E402
from replicas_feeds import feeds_phase  # noqa: E402
from work_bounds import largest_legal_request, saturation_phase  # noqa: E402

PHASES = ("throughput", "publish", "kill", "slow", "saturation", "feeds")

DUMPS = REPO.parent / "shared" / "data" / "epg"
CACHE = REPO / "bench" / "cache"
OUT = REPO / "bench" / "results" / "replicas.json"
EPGEMBED = Path(sys.executable).parent / "epgembed"

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
    from epgembed.query.load import load_model
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



def mixed_requests(model_dir: Path, n: int = 1000) -> list[tuple[str, str, str | None]]:
    """(method, path, body): by id 40%, known titles 30%, unseen titles 20%, batches of 8 titles 10%."""
    from epgembed.query.load import load_model
    model = load_model(model_dir, verify=False)
    rng = random.Random(0)
    _, known, unseen = sample_titles(model, n, rng)
    n_shows = len(model.catalog.shows)
    out: list[tuple[str, str, str | None]] = []
    for j in range(n):
        x = rng.random()
        if x < 0.4:
            out.append(("GET", f"/v1/titles/{rng.randrange(n_shows)}/related?k=10", None))
        elif x < 0.7:
            out.append(("GET", f"/v1/related?title={quote(known[j])}&k=10", None))
        elif x < 0.9:
            out.append(("GET", f"/v1/related?title={quote(unseen[j])}&k=10", None))
        else:
            titles = rng.sample(known, 4) + rng.sample(unseen, 4)
            out.append(("POST", "/v1/related", json.dumps({"titles": titles, "k": 10})))   # ASCII (\u escapes)
    return out


# ---------------------------------------------------------------------------- phases
def publish_phase(load_port: int, reqs, replicas: list[Replica], root: Path, model_b: Path, tail: float) -> dict:
    from epgembed.registry import publish
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
    k = kill_and_restart(nginx, victim, mark)
    time.sleep(tail)
    stats = load.stop()
    entries = [e for e in nginx.access()[mark:] if e["msec"] >= k["t_kill"]]
    back = k["t_back"]
    return {**stats,
            "retried_by_nginx": sum(1 for e in entries if "," in e["upstream"]),
            "restart_delay_s": round(k["t_restart"] - k["t_kill"], 2),
            "restart_to_ready_s": round(k["ready_s"], 2),
            "restart_to_traffic_via_nginx_s": round(back - k["t_restart"], 2) if back else None,
            "kill_to_traffic_via_nginx_s": round(back - k["t_kill"], 2) if back else None}


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


def slow_phases(args: argparse.Namespace, stack: LocalStack, paths: list[str]) -> dict:
    """slow_phase through nginx, then against one bare gunicorn instance."""
    slow_n = slow_phase(stack.nginx.port, paths, args.seconds, args.slow, args.idle)
    slow_g = slow_phase(stack.replicas[0].port, paths, args.seconds, args.slow, args.idle)
    for name, s in (("through nginx", slow_n), ("bare gunicorn", slow_g)):
        h, q = s["probes"]["/healthz"], s["probes"][paths[1]]
        print(f"{args.slow} slow + {args.idle} idle clients, {name:14s}: /healthz p50 {h['p50_ms']} ms "
              f"p99 {h['p99_ms']} ms ({h['failed_or_timed_out']} of {h['n']} failed/timed out at 2 s); "
              f"by id p99 {q['p99_ms']} ms ({q['failed_or_timed_out']} of {q['n']})", flush=True)
    return {"slow_clients_nginx": slow_n, "slow_clients_bare_gunicorn": slow_g}


def throughput(args: argparse.Namespace, stack: LocalStack, lb_one: Nginx, reqs, tmp: Path) -> dict:
    """wrk on the mix: nginx -> N replicas, nginx -> 1 replica, that replica bare."""
    script = tmp / "mixed.lua"
    script.write_text(LUA % ",\n".join(
        "{" + ", ".join(json.dumps(x) for x in (m, p, b) if x is not None) + "}" for m, p, b in reqs))
    tput = {}
    for name, port in ((f"nginx -> {args.replicas} replicas", stack.nginx.port), ("nginx -> 1 replica", lb_one.port),
                       ("bare gunicorn (1 replica)", stack.replicas[0].port)):
        if not args.quick:
            run_wrk(f"http://127.0.0.1:{port}", script, 2, args.connections)      # warm-up
        tput[name] = r = run_wrk(f"http://127.0.0.1:{port}", script, args.seconds, args.connections)
        print(f"{name:28s} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
              f"errors {r['errors']}", flush=True)
    return tput


def saturation_phases(args: argparse.Namespace, stack: LocalStack, lb_one: Nginx, body: dict, before) -> dict:
    """Through nginx to every replica, through nginx to the one replica that bare is (nginx's
    own cost: the same workers on the cores), bare, then (`before`: replicas each with as many
    compute slots as threads, the service before issue 26.9's gate) through nginx, one run."""
    out = {}
    for name, port in (("through nginx", stack.nginx.port), ("through nginx, 1 replica", lb_one.port),
                       ("bare gunicorn", stack.replicas[0].port),
                       (f"through nginx, {args.threads} compute slots a worker", None)):
        if port is None:
            with before() as old:
                out[name] = s = saturation_phase(old.nginx.port, body, args.seconds)
        else:
            out[name] = s = saturation_phase(port, body, args.seconds)
        h, r = s["healthz"], s["request"]
        print(f"{s['clients']} clients x the largest legal request ({r['titles']} unseen titles, k={r['k']}, "
              f"offset={r['offset']}), {name:14s}: /healthz p50 {h['p50_ms']} ms p99 {h['p99_ms']} ms max "
              f"{h['max_ms']} ms ({h['failed_or_timed_out']} of {h['n']} failed); the requests "
              f"{s['load']['rps']} req/s p50 {s['load']['p50_ms']} ms p99 {s['load']['p99_ms']} ms, "
              f"failed {s['load']['failed']}", flush=True)
    return {"saturation": out}


def run_phases(args: argparse.Namespace, nginx_bin: str, model_dir: Path, reqs, tmp: Path) -> tuple[dict, float]:
    """Every phase on replicas started in `tmp`: (results, seconds until every replica was ready)."""
    from epgembed.registry import publish
    probe_paths = ["/healthz", next(p for m, p, _ in reqs if p.startswith("/v1/titles/"))]
    root = tmp / "root"
    publish(root, model_dir, move=False)
    model_b = second_version(model_dir, tmp)
    with LocalStack(root, tmp, args.replicas, nginx_bin, workers=args.workers, threads=args.threads,
                    poll=args.poll_seconds, command=[str(EPGEMBED)]) as stack:
        print(f"{args.replicas} replicas x {args.workers} workers ready in {stack.startup_s} s", flush=True)
        lb_all, lb_one, replicas = stack.nginx, stack.add_nginx(stack.replicas[:1]), stack.replicas
        results = {"idle_latency": {"nginx": probe(lb_all.port, probe_paths, 0, min_n=100),
                                    "bare_gunicorn": probe(replicas[0].port, probe_paths, 0, min_n=100)}}
        if "throughput" in args.phases:
            results["throughput_mixed"] = throughput(args, stack, lb_one, reqs, tmp)

        tail = 1.0 if args.quick else args.seconds / 4
        if "publish" in args.phases:
            results["publish_under_load"] = pub = publish_phase(lb_all.port, reqs, replicas, root, model_b, tail)
            print(f"publish under load: every replica switched {pub['all_switched_after_s']} s after `current` "
                  f"moved (poll {args.poll_seconds} s; per replica {pub['switched_after_s']}); mixed-version "
                  f"answers {pub['mixed_version_answers']}; failed {pub['failed']} of {pub['requests']}", flush=True)
        if "kill" in args.phases:
            results["kill9_one_instance"] = kill = kill_phase(lb_all, reqs, replicas[-1], tail)
            print(f"kill -9 of one instance under load: failed {kill['failed']} of {kill['requests']} "
                  f"(retried by nginx {kill['retried_by_nginx']}); restarted after {kill['restart_delay_s']} s: "
                  f"answering through nginx {kill['restart_to_traffic_via_nginx_s']} s later, every worker ready "
                  f"{kill['restart_to_ready_s']} s later", flush=True)
        if "slow" in args.phases:
            results.update(slow_phases(args, stack, probe_paths))
        if "saturation" in args.phases:
            before = partial(LocalStack, root, tmp / "slots", args.replicas, nginx_bin, workers=args.workers,
                             threads=args.threads, poll=args.poll_seconds, command=[str(EPGEMBED)],
                             settings={"EPGEMBED_COMPUTE_SLOTS": str(args.threads)})
            results.update(saturation_phases(args, stack, lb_one, largest_legal_request(unseen_titles(model_dir)),
                                             before))
    return results, stack.startup_s


def unseen_titles(model_dir: Path, n: int = 64) -> list[str]:
    from epgembed.query.load import load_model
    return sample_titles(load_model(model_dir, verify=False), n, random.Random(1))[2]


# ---------------------------------------------------------------------------- main
def parse_args() -> argparse.Namespace:
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
    ap.add_argument("--only", choices=PHASES, help="run this phase only (and the idle latencies)")
    args = ap.parse_args()
    args.phases = (args.only,) if args.only else PHASES
    if args.quick:
        args.seconds = 4.0
    return args


def report(args: argparse.Namespace, nginx_bin: str, model: dict, load_at_start, startup: float,
           t_begin: float, results: dict) -> dict:
    return {
        "command": "python bench/replicas.py " + " ".join(sys.argv[1:]),
        "short_run": bool(args.quick),
        "note": ("a SHORT run (--quick: 4 s phases), a smoke test of the set-up; `make bench-replicas` "
                 "(20 s phases) gives the figures to quote") if args.quick else
                (f"one phase, {args.seconds:g} s steps" if args.only else "full run (make bench-replicas)"),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": load_at_start, "loadavg_at_end": os.getloadavg(),
                    "note": "nginx, every replica and the load generators share the same cores; "
                            "other jobs may be running"},
        "setup": {"phases": list(args.phases), "replicas": args.replicas, "workers": args.workers, "threads": args.threads,
                  "poll_seconds": args.poll_seconds, "phase_seconds": args.seconds,
                  "wrk_connections": args.connections, "python_load_threads": 8,
                  "nginx": subprocess.run([nginx_bin, "-v"], capture_output=True, text=True).stderr.strip(),
                  "nginx_config": "deploy/nginx/epgembed.conf.template via deploy/render_nginx.py",
                  "mix": "by id 40%, known title 30%, unseen title 20%, POST batch of 8 titles 10%; k=10"},
        "model": model,
        "startup_s": startup,
        "run_seconds": round(time.monotonic() - t_begin, 1),
        **results,
    }


def main() -> int:
    args = parse_args()
    nginx_bin = find_nginx() or sys.exit("nginx is missing: apt-get install -y nginx (make bench-replicas installs it)")
    if "throughput" in args.phases:
        ensure_wrk()                         # Debian's, as for bench/serve.py: installed once when missing
    load_at_start = os.getloadavg()
    t_begin = time.monotonic()
    dumps = sorted(args.dumps.glob("*.xml.gz")) if args.dumps.is_dir() else []
    model_dir, model_what = bench_model(dumps)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    print(f"model: {model_what}, {manifest['n_shows']} shows, version {manifest['version']}", flush=True)
    reqs = mixed_requests(model_dir)
    tmp = Path(tempfile.mkdtemp(prefix="replicas-bench-", dir=CACHE))
    results, startup = {}, None
    try:
        if set(args.phases) - {"feeds"}:
            results, startup = run_phases(args, nginx_bin, model_dir, reqs, tmp / "one")
        if "feeds" in args.phases:
            results["feeds"] = feeds_phase(args, nginx_bin, model_dir, reqs, tmp / "feeds", [str(EPGEMBED)])
    except StackError as e:                 # a replica or nginx that exited or never answered: its log
        sys.exit(str(e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    model = {"what": model_what, "dir": str(model_dir), "version": manifest["version"], "shows": manifest["n_shows"]}
    own = results.pop("feeds") if args.only == "feeds" else results   # --only: its figures at the top
    write_results(args.out, report(args, nginx_bin, model, load_at_start, startup, t_begin, own), args.only)
    print(f"{round(time.monotonic() - t_begin, 1)} s in all -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
