"""`make bench-index`: Annoy recall@10 against exact search, and query latency, per setting
(bench/unseen.py measures the searches of unseen titles).

    python bench/index.py [--sizes 100000,1000000] [--trees 10,25,50,100] [--queries 1000]

Vectors: vectors.npy of the scale benchmark's models (bench/cache/scale/model-N, trained by
`bench/scale.py`; the 100k one is trained here when missing, a missing 1M one is skipped
with a note). Queries: 1000 catalog titles (seeded), by their stored vector, as the service
asks for a known title: the 10 nearest other titles (the query itself is dropped).
Ground truth: exact cosine over all vectors (numpy matmul, torch.topk). For every n_trees
an index is built (seeded, 1 thread, timed, size on disk) and searched with search_k = -1
(Annoy's default: n_trees * 11) and larger budgets. Latency: each query timed alone
(p50/p99) and the same 1000 back to back ("batched": mean per query and queries/s), and
the exact matmul for comparison (alone and in batches of 100).
Writes bench/results/index.json and index.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import RESULTS, model_dir, run_child, synth_path, versions  # noqa: E402

K = 10


def percentiles(ns: list[int]) -> dict:
    a = np.asarray(ns, dtype=np.float64) / 1e6
    return {"p50_ms": round(float(np.percentile(a, 50)), 4), "p99_ms": round(float(np.percentile(a, 99)), 4),
            "mean_ms": round(float(a.mean()), 4)}


def exact_truth(vectors: np.ndarray, q: np.ndarray, own: np.ndarray | None, k: int = K,
                block: int = 50) -> np.ndarray:
    """The k nearest catalog rows of each query (exact; never the query's own row `own`)."""
    import torch
    out = []
    for lo in range(0, len(q), block):
        scores = torch.from_numpy(q[lo: lo + block] @ vectors.T)      # [b, S]
        if own is not None:
            scores[torch.arange(len(scores)), torch.from_numpy(np.asarray(own[lo: lo + block]))] = -np.inf
        out.append(scores.topk(k, dim=1).indices.numpy())
    return np.concatenate(out)


def search_all(index, vectors: np.ndarray, qids: np.ndarray, search_k: int) -> tuple[list, list[int], float]:
    found, times = [], []
    qs = [vectors[i].tolist() for i in qids]
    for q in qs[:50]:                                                 # warm the mmapped pages
        index.get_nns_by_vector(q, K + 1, search_k=search_k)
    for i, q in zip(qids, qs):
        t0 = time.perf_counter_ns()
        ids = index.get_nns_by_vector(q, K + 1, search_k=search_k)
        times.append(time.perf_counter_ns() - t0)
        found.append([j for j in ids if j != i][:K])
    t0 = time.perf_counter()
    for q in qs:
        index.get_nns_by_vector(q, K + 1, search_k=search_k)
    batched = time.perf_counter() - t0
    return found, times, batched


def bench_size(shows: int, args: argparse.Namespace) -> dict | None:
    from epgembed.config import IndexConfig
    from epgembed.query.annoy import open_index
    from epgembed.build.index.build import build_index
    model = model_dir(shows)
    if not (model / "vectors.npy").is_file():
        if shows > 100_000:
            print(f"[{shows:,}] no model at {model} (make bench-scale trains it): skipped")
            return None
        print(f"[{shows:,}] training the model first ...", flush=True)
        model.parent.mkdir(parents=True, exist_ok=True)
        run_child(["train", str(synth_path(shows)), str(model), "2", "1"], args.nice)
    vectors = np.load(model / "vectors.npy")
    manifest = json.loads((model / "manifest.json").read_text())
    rng = np.random.default_rng(0)
    qids = np.sort(rng.choice(len(vectors), size=min(args.queries, len(vectors)), replace=False))
    t0 = time.perf_counter()
    truth = exact_truth(vectors, vectors[qids], qids)
    exact_batched = (time.perf_counter() - t0) / len(qids)
    single = []
    for i in qids[:100]:
        t0 = time.perf_counter_ns()
        s = vectors @ vectors[i]
        np.argpartition(-s, K)[: K + 1]
        single.append(time.perf_counter_ns() - t0)
    row = {"shows": len(vectors), "dim": int(vectors.shape[1]), "model": str(model.name),
           "epochs_trained": manifest["training"]["epochs_run"],
           "exact": {"single": percentiles(single), "batched_ms_per_query": round(exact_batched * 1e3, 4)},
           "settings": []}
    print(f"[{shows:,}] exact numpy: single p50 {row['exact']['single']['p50_ms']:.2f} ms, "
          f"batched {row['exact']['batched_ms_per_query']:.3f} ms/query", flush=True)
    if (model / "neighbours.npy").is_file():     # the model's own table: what catalog queries read
        table = np.load(model / "neighbours.npy", mmap_mode="r")
        times, found = [], []
        for q in qids:
            t0 = time.perf_counter_ns()
            r = np.asarray(table[q])
            found.append([int(i) for i in r if i != q][:K])
            times.append(time.perf_counter_ns() - t0)
        recall = float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth.tolist())]))
        row["table"] = {**(manifest.get("neighbour_table") or {}), "recall_at_10": round(recall, 4),
                        "single": percentiles(times)}
        print(f"[{shows:,}] neighbour table ({row['table'].get('method')}): recall@10 {recall:.4f}, "
              f"p99 {row['table']['single']['p99_ms']:.4f} ms", flush=True)
    from epgembed.build.index.clustered import clustered_neighbours
    for probe in args.table_probes:               # the clustered table at other probe counts
        t0 = time.perf_counter()
        ids, _ = clustered_neighbours(vectors, 100, probe, threads=args.table_threads)
        build_s = time.perf_counter() - t0
        found = [[int(i) for i in ids[q] if i != q][:K] for q in qids]
        recall = float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth.tolist())]))
        row.setdefault("table_probes", []).append({"probe": probe, "recall_at_10": round(recall, 4),
                                                   "build_s": round(build_s, 1),
                                                   "threads": args.table_threads})
        print(f"[{shows:,}] clustered table, probe {probe}: recall@10 {recall:.4f}, build {build_s:.0f} s",
              flush=True)
        del ids
    for n_trees in args.trees:
        path = model.parent / f".bench-index-{shows}-{n_trees}.ann"
        t0 = time.perf_counter()
        build_index(vectors, IndexConfig(n_trees=n_trees), path)
        build_s = time.perf_counter() - t0
        size = path.stat().st_size
        index = open_index(path, vectors.shape[1])
        budgets = [-1] + [m * K * n_trees for m in args.multiples]
        for search_k in budgets:
            found, times, batched = search_all(index, vectors, qids, search_k)
            recall = float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth.tolist())]))
            r = {"n_trees": n_trees, "search_k": search_k, "recall_at_10": round(recall, 4),
                 "single": percentiles(times), "batched_ms_per_query": round(batched / len(qids) * 1e3, 4),
                 "batched_qps": round(len(qids) / batched, 1), "build_s": round(build_s, 2),
                 "index_mb": round(size / 2**20, 1)}
            row["settings"].append(r)
            print(f"[{shows:,}] trees {n_trees:3d} search_k {search_k:7d}: recall@10 {recall:.4f}  "
                  f"p50 {r['single']['p50_ms']:.3f} ms  p99 {r['single']['p99_ms']:.3f} ms  "
                  f"batched {r['batched_ms_per_query']:.3f} ms/q  build {build_s:.1f} s  {r['index_mb']} MB",
                  flush=True)
        index.unload()
        path.unlink()
    return row


def markdown(rows: list[dict], started: str, command: str) -> str:
    out = [f"# Index quality and speed ({started}, `{command}`)", "",
           "Annoy (angular, seeded, built with 1 thread) vs exact cosine (numpy matmul) on the "
           "scale benchmark's model vectors; 1000 catalog titles as queries, their 10 nearest other "
           "titles. Single = one query timed alone; batched = 1000 back to back, mean per query.", ""]
    for r in rows:
        out += [f"## {r['shows']:,} titles, dim {r['dim']} ({r['epochs_trained']} training epochs)", "",
                f"Exact numpy: single p50 {r['exact']['single']['p50_ms']:.2f} ms / p99 "
                f"{r['exact']['single']['p99_ms']:.2f} ms, batched {r['exact']['batched_ms_per_query']:.3f} ms per query.",
                "", *([f"The model's neighbour table ({r['table'].get('method')}, read for catalog titles): "
                       f"recall@10 {r['table']['recall_at_10']:.4f}, lookup p50 {r['table']['single']['p50_ms']:.4f} ms "
                       f"/ p99 {r['table']['single']['p99_ms']:.4f} ms.", ""] if r.get("table") else []),
                *([f"The clustered table rebuilt at other probe counts ({r['table_probes'][0]['threads']} threads): "
                   + ", ".join(f"probe {t['probe']}: recall@10 {t['recall_at_10']:.4f} in {t['build_s']:.0f} s"
                               for t in r["table_probes"]) + ".", ""] if r.get("table_probes") else []),
                "| n_trees | search_k | recall@10 | p50 ms | p99 ms | batched ms/query | build s | index MB |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in r["settings"]:
            out.append(f"| {s['n_trees']} | {s['search_k']} | {s['recall_at_10']:.4f} | {s['single']['p50_ms']:.3f} | "
                       f"{s['single']['p99_ms']:.3f} | {s['batched_ms_per_query']:.3f} | {s['build_s']:.1f} | {s['index_mb']} |")
        out.append("")
    return "\n".join(out)


def parse(ap: argparse.ArgumentParser, lists) -> tuple[argparse.Namespace, str]:
    """Both index benchmarks' start: the arguments (each of `lists` split at commas into
    its type), the load average, --nice, one torch thread; (args, the start time)."""
    args = ap.parse_args()
    args.load_start = os.getloadavg()
    for name, kind in lists:
        setattr(args, name, [kind(x) for x in getattr(args, name).split(",") if x])
    os.nice(args.nice)
    import torch
    torch.set_num_threads(1)
    return args, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--trees", default="10,25,50,100")
    ap.add_argument("--multiples", default="3,10,30,100", help="search_k = m * 10 * n_trees, besides -1")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--table-probes", default="", help="also build the clustered table at these probes")
    ap.add_argument("--table-threads", type=int, default=2, help="threads building those tables")
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--out", type=Path, default=RESULTS / "index.json")
    args, started = parse(ap, (("trees", int), ("multiples", int), ("table_probes", int)))
    command = "python bench/index.py " + " ".join(sys.argv[1:])
    rows = [r for r in (bench_size(int(s), args) for s in args.sizes.split(",")) if r]
    report = {"command": command, "date": started,
              "machine": {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg()},
              "versions": versions(), "args": vars(args) | {"out": str(args.out)}, "sizes": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    md = args.out.with_suffix(".md")
    # the "chosen defaults and why" section is written by hand below the generated tables
    keep = ""
    if md.is_file() and "<!-- choice -->" in md.read_text():
        keep = md.read_text()[md.read_text().index("<!-- choice -->"):]
    md.write_text(markdown(rows, started, command) + "\n" + keep)
    print(f"-> {args.out}, {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
