"""`python bench/work_bounds.py`: what one request costs by its answer rows (k + offset) and
titles, in process, on the shared-data model: the measurement behind Limits.max_answer_rows
and Limits.max_batch_rows (service/config.py; issue 26.9). Writes bench/results/work_bounds.json.
Also the saturation phase of `make bench-replicas` (`saturation_phase`): clients sending the
largest legal request while /healthz is probed.

    python bench/work_bounds.py [--runs 30]

Every request goes through the app (Flask's test client: validation, the queries, the JSON
answer) with the bounds lifted, on one thread (and one BLAS thread, as gunicorn.conf.py
sets it): the CPU one request takes from a worker
(gunicorn runs 2 workers x 4 threads on 2 cores, so a request that costs t of CPU holds a
core for t). Shapes: GET /v1/related of an unseen and of a known title at k + offset = 10
... 1100 (k = min(rows, 100), the rest offset), and POST batches of unseen titles at 10
and 64 titles. Reported per shape: median and p90 ms over `--runs` requests (other titles
each time) and the answer's bytes. The model: bench/replicas.py's (the 7 shared dumps).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import quote

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")     # as service/gunicorn.conf.py: before numpy
REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "bench"), str(REPO)]
from common import PyLoad, probe_apart, sample_titles, write_results  # noqa: E402

OUT = REPO / "bench" / "results" / "work_bounds.json"
ROWS = (10, 50, 100, 200, 500, 1100)
BATCHES = ((10, 10), (10, 100), (10, 200), (64, 10), (64, 15), (64, 100), (64, 1100))   # (titles, rows)


def shape(rows: int) -> dict:
    k = min(rows, 100)
    return {"k": k, "offset": rows - k}


def timed(client, requests_: list[tuple[str, str, dict | None]]) -> dict:
    ms, size = [], 0
    for method, path, body in requests_:
        t = time.perf_counter()
        r = client.open(path, method=method, json=body)
        ms.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.get_data(as_text=True)[:300]
        size = max(size, len(r.get_data()))
    ms.sort()
    return {"median_ms": round(statistics.median(ms), 2), "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 2),
            "bytes": size}


def largest_legal_request(unseen: list[str]) -> dict:
    """The POST /v1/related that the bounds allow the most work for: the most titles, then the
    most answer rows each (titles dominate the cost: an unseen title is a search of the catalog)."""
    from service import Limits
    lim = Limits()
    rows = min(lim.max_answer_rows, lim.max_batch_rows // lim.max_batch)
    k = min(rows, lim.max_k)
    return {"titles": unseen[:lim.max_batch], "k": k, "offset": rows - k}


def saturation_phase(port: int, body: dict, seconds: float, clients: int = 16) -> dict:
    """`clients` keep-alive clients sending `body` (POST /v1/related) in a loop while /healthz is
    probed on new connections, one after another, from a process of its own: the probes'
    p50/p99/max and the load's figures."""
    load = PyLoad(port, [("POST", "/v1/related", json.dumps(body))], n=clients)
    try:
        time.sleep(1.0)                      # every client has its first request in flight
        probes = probe_apart(port, ["/healthz"], seconds, timeout=2.0, min_n=50)["/healthz"]
    finally:
        stats = load.stop()
    stats.pop("failures") if not stats["failed"] else None
    return {"clients": clients, "request": {"titles": len(body["titles"]), "k": body["k"], "offset": body["offset"]},
            "healthz": probes, "load": stats}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    from epgembed.query.load import load_model
    from epgembed.registry import publish
    from service import Limits, ServiceConfig, create_app
    from service.state import state
    import tempfile
    from replicas import DUMPS, bench_model

    model_dir, what = bench_model(sorted(DUMPS.glob("*.xml.gz")))
    model = load_model(model_dir, verify=False)
    rng = random.Random(0)
    _, known, unseen = sample_titles(model, 64 * args.runs, rng)
    root = Path(tempfile.mkdtemp(prefix="work-bounds-")) / "root"
    publish(root, model_dir, move=False)
    lifted = Limits(max_answer_rows=2000, max_batch_rows=200_000)
    app = create_app(ServiceConfig(models=root, poll_seconds=0, limits=lifted))
    client = app.test_client()
    load0 = os.getloadavg()
    out: dict = {"single": {}, "batch": {}}
    for kind, titles in (("unseen", unseen), ("known", known)):
        for rows in ROWS:
            q = "&".join(f"{k}={v}" for k, v in shape(rows).items())
            reqs = [("GET", f"/v1/related?title={quote(t)}&{q}", None) for t in titles[:args.runs]]
            out["single"][f"{kind} k+offset={rows}"] = r = timed(client, reqs)
            print(f"GET {kind:6s} k+offset={rows:5d}: {r['median_ms']:8.2f} ms median, {r['p90_ms']:8.2f} p90, "
                  f"{r['bytes']:8d} bytes", flush=True)
    for n, rows in BATCHES:
        reqs = [("POST", "/v1/related", {"titles": unseen[j * n:(j + 1) * n], **shape(rows)})
                for j in range(max(3, args.runs // 3))]
        out["batch"][f"{n} titles x {rows} rows"] = r = timed(client, reqs)
        print(f"POST {n:2d} unseen titles x k+offset={rows:5d} ({n * rows:6d} rows): {r['median_ms']:8.2f} ms "
              f"median, {r['p90_ms']:8.2f} p90, {r['bytes']:8d} bytes", flush=True)
    state(app).holder.stop()
    write_results(args.out, {
        "command": "python bench/work_bounds.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": load0, "loadavg_at_end": os.getloadavg(),
                    "note": "one thread, in process; other jobs share the cores"},
        "model": {"what": what, "shows": len(model)}, "runs": args.runs, **out})
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
