"""`make bench-index`: Annoy recall@10 against exact search, and query latency, per setting;
with --search, the searches of unseen titles (exact / cluster probe / Annoy).

    python bench/index.py [--sizes 100000,1000000] [--trees 10,25,50,100] [--queries 1000]
    python bench/index.py --search --sizes shared,1000000 [--rows 4096,8192] [--train]

Vectors: vectors.npy of the scale benchmark's models (bench/cache/scale/model-N, trained by
`bench/scale.py`; the 100k one is trained here when missing, a missing 1M one is skipped
with a note). Queries: 1000 catalog titles (seeded), by their stored vector, as the service
asks for a known title: the 10 nearest other titles (the query itself is dropped).
Ground truth: exact cosine over all vectors (numpy matmul, torch.topk). For every n_trees
an index is built (seeded, 1 thread, timed, size on disk) and searched with search_k = -1
(Annoy's default: n_trees * 11) and larger budgets. Latency: each query timed alone
(p50/p99) and the same 1000 back to back ("batched": mean per query and queries/s), and
the exact matmul for comparison (alone and in batches of 100).
Writes bench/results/index.json and index.md. --search: `search_queries` (how the queries
are made), `search_variants` (what is measured); writes --out and its .md (docs/SCALE.md).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import CACHE as CACHE_DIR, RESULTS, model_dir, run_child, synth_path, versions  # noqa: E402

SHARED = Path("/work/shared/data/epg")
K = 10


def percentiles(ns: list[int]) -> dict:
    a = np.asarray(ns, dtype=np.float64) / 1e6
    return {"p50_ms": round(float(np.percentile(a, 50)), 4), "p99_ms": round(float(np.percentile(a, 99)), 4),
            "mean_ms": round(float(a.mean()), 4)}


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
    from epgembed.index.serve import open_index
    from epgembed.index.build import build_index
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
    from epgembed.index.clustered import clustered_neighbours
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


# ---------------------------------------------------------------------------- searches
# `--search`: the searches of vectors that are no catalog row (unseen titles, deep pages).
SEARCH_KINDS = ("unseen", "held_out", "mixed")


def search_model(name: str, args: argparse.Namespace) -> tuple[Path, dict | None]:
    """A model folder for `name` (a size: the scale model, trained when --train or missing
    at <= 100k; "shared": the model of the shared dumps; else a path) and its build record."""
    if name == "shared":
        model = CACHE_DIR / "index-shared"
        if not (model / "manifest.json").is_file():
            print(f"training the shared-data model -> {model} ...", flush=True)
            subprocess.run([str(Path(sys.executable).parent / "epgembed"), "train",
                            *map(str, sorted(SHARED.glob("*.xml.gz"))), "--out", str(model)], check=True)
    elif name.isdigit():
        model = model_dir(int(name))
        if args.train or (not (model / "manifest.json").is_file() and int(name) <= 100_000):
            print(f"[{name}] training the model (bench/scale.py's train child) ...", flush=True)
            model.parent.mkdir(parents=True, exist_ok=True)
            started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            record = run_child(["train", str(synth_path(int(name))), str(model), "2", "1"], args.nice)
            (model.parent / f"{model.name}.train.json").write_text(json.dumps({**record, "date": started}, indent=1))
    else:
        model = Path(name)
    record = model.parent / f"{model.name}.train.json"
    return model, json.loads(record.read_text()) if record.is_file() else None


def search_queries(model, vectors: np.ndarray, n: int) -> dict[str, tuple[np.ndarray, np.ndarray | None, list]]:
    """kind -> (query vectors [n, D], the catalog row each leaves out or None, titles):
    unseen: titles in no catalog (first half of one show's words + second half of
    another's), embedded from their text as the service does (model.embed); held_out: catalog
    rows, each left out of its own truth and answers; mixed: normalize(v_i + v_j)."""
    rng = np.random.default_rng(1)
    shows = len(vectors)
    titles, out = [], []
    while len(titles) < n:
        a, b = (model.catalog.shows[int(i)].title.split() for i in rng.integers(0, shows, 2))
        t = " ".join(a[: max(1, len(a) // 2)] + b[len(b) // 2:])
        if t not in titles and model.resolve(t) is None:
            titles.append(t)
            out.append(model.embed(t))
    held = np.sort(rng.choice(shows, size=n, replace=False))
    i, j = rng.integers(0, shows, (2, n))
    mixed = vectors[i] + vectors[j]
    mixed /= np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-12)
    return {"unseen": (np.asarray(out, np.float32), None, titles),
            "held_out": (np.ascontiguousarray(vectors[held]), held, []),
            "mixed": (mixed.astype(np.float32), None, [])}


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


def run_search(fn, q: np.ndarray, own: np.ndarray | None, truth: np.ndarray, fetch: int = K) -> dict:
    """recall@10 and per-query latency of fn(vector, k) over the queries (each timed alone)."""
    extra = 0 if own is None else 1
    for v in q[:50]:
        fn(v, fetch + extra)                                        # warm up
    times, found = [], 0
    for n, v in enumerate(q):
        t0 = time.perf_counter_ns()
        ids, _ = fn(v, fetch + extra)
        times.append(time.perf_counter_ns() - t0)
        got = [i for i in ids if own is None or i != own[n]][:K]
        found += len(set(got) & set(truth[n].tolist()))
    return {"recall_at_10": round(found / truth.size, 4), "fetch": fetch, **percentiles(times)}


def search_variants(model, vectors: np.ndarray, args: argparse.Namespace) -> list[tuple[str, dict, object]]:
    """(name, settings, fn) of each search measured: exact; the cluster probe at each --rows
    budget over c * sqrt(S) clusters for each --cluster-factors (the model's stored clusters
    when it has that many, else made here, seeded, as the build makes them); the probe with
    Annoy over the centroids as the coarse step; Annoy at the model's search_k."""
    from epgembed.index.clustered import spherical_kmeans
    from epgembed.index.probe import ClusterProbe, ExactSearch
    from epgembed.index.serve import query_vector
    out, bases = [("exact", {}, ExactSearch(vectors))], []
    stored = isinstance(model.search, ClusterProbe)
    for factor in args.cluster_factors:
        lists = int(factor * len(vectors) ** 0.5)
        if stored and len(model.search.centroids) == lists:
            bases.append((model.search, "stored"))
            continue
        t0 = time.perf_counter()
        c, order, bounds = spherical_kmeans(vectors, threads=2, lists=lists)
        print(f"  {len(c)} clusters made in {time.perf_counter() - t0:.0f} s", flush=True)
        bases.append((ClusterProbe(np.ascontiguousarray(vectors[order]), c, order, bounds, 1), "made by the bench"))
    for base, origin in bases:
        for rows in args.rows:
            out.append(("probe", {"rows": rows, "clusters": len(base.centroids), "clusters_from": origin},
                        ClusterProbe(base.ordered, base.centroids, base.order, base.bounds, rows)))
    base = bases[-1][0]
    coarse = annoy_coarse(base, args.rows[len(args.rows) // 2] if args.rows else 8192)
    out.append(("probe, Annoy over centroids", coarse[0], coarse[1]))
    sk = model._search_k(K + 1)
    out.append(("annoy", {"n_trees": model.n_trees, "search_k": sk},
                lambda v, k: query_vector(model.index, v, k, max(sk, model.n_trees * k))))
    return out


def annoy_coarse(base, rows: int, n_trees: int = 10):
    """The cluster probe with the coarse step in Annoy (an index over the centroids): as many
    clusters as hold `rows` titles on average."""
    from annoy import AnnoyIndex
    from epgembed.index.probe import ClusterProbe
    idx = AnnoyIndex(base.centroids.shape[1], "angular")
    idx.set_seed(0)
    for i, c in enumerate(base.centroids):
        idx.add_item(i, c)
    idx.build(n_trees)
    probe = int(min(len(base.centroids), max(1, round(rows / base.sizes.mean()))))
    search_k = probe * n_trees * 4

    class Coarse(ClusterProbe):
        def clusters_for(self, vector, k):
            return np.sort(np.asarray(idx.get_nns_by_vector(vector.tolist(), probe, search_k=search_k)))
    return ({"probe": probe, "coarse_trees": n_trees, "coarse_search_k": search_k},
            Coarse(base.ordered, base.centroids, base.order, base.bounds, rows))


def bench_search(name: str, args: argparse.Namespace) -> dict | None:
    from epgembed.artifact.bundle import load_model
    model_path, build = search_model(name, args)
    if not (model_path / "manifest.json").is_file():
        print(f"[{name}] no model at {model_path}: skipped (--train builds it)")
        return None
    model = load_model(model_path, verify=False)
    vectors = np.ascontiguousarray(np.load(model_path / "vectors.npy"))
    if hasattr(model.search, "ordered"):
        np.asarray(model.search.ordered).sum()                      # warm page cache, as a serving worker
    row = {"model": str(model_path.name), "shows": len(vectors), "dim": int(vectors.shape[1]),
           "manifest_search": model.manifest.get("search"), "served_by": type(model.search).__name__ if model.search else "Annoy",
           "neighbour_table": model.manifest.get("neighbour_table"), "build": build, "results": []}
    queries = search_queries(model, vectors, args.search_queries)
    truths = {kind: exact_truth(vectors, q, own) for kind, (q, own, _) in queries.items()}
    for variant, settings, fn in search_variants(model, vectors, args):
        for kind, (q, own, _) in queries.items():
            r = {"search": variant, **settings, "queries": kind, **run_search(fn, q, own, truths[kind])}
            row["results"].append(r)
            print(f"[{name}] {variant:28s} {json.dumps(settings):60s} {kind:9s} recall@10 {r['recall_at_10']:.4f} "
                  f"p50 {r['p50_ms']:.3f} p99 {r['p99_ms']:.3f} ms", flush=True)
    row["related"] = related_latency(model, queries["unseen"][2])
    return row


def related_latency(model, titles: list[str]) -> dict:
    """model.related(title, 10) end to end for the unseen titles (embedding, the search at the
    model's own setting, fetch 50, the answer filter), each timed alone after 50 warm-ups."""
    times = []
    for t in titles[:50] + titles:
        t0 = time.perf_counter_ns()
        model.related(t, 10)
        times.append(time.perf_counter_ns() - t0)
    print(f"  model.related(unseen title): {percentiles(times[50:])}", flush=True)
    return {"search": type(model.search).__name__ if model.search else "Annoy", **percentiles(times[50:])}


def search_markdown(rows: list[dict], started: str, command: str) -> str:
    out = [f"# Searches for unseen titles ({started}, `{command}`)", "", "recall@10 against exact search "
           "over all catalog vectors, p50/p99 ms of each query timed alone (warm page cache). Queries, "
           "1000 of each kind: unseen = titles in no catalog (halves of two shows' words) embedded from "
           "their text (model.embed); held_out = catalog rows, each left out of its truth and answers; "
           "mixed = normalize(v_i + v_j). Annoy = the model's index.ann at its search_k.", ""]
    head = "| search | settings | " + " | ".join(f"{k} recall | p50 | p99" for k in SEARCH_KINDS) + " |"
    for r in rows:
        b = r.get("build") or {}
        out += [f"## {r['model']}: {r['shows']:,} titles (served by {r['served_by']}; manifest search "
                f"{json.dumps(r['manifest_search'])})", ""]
        if b:
            out += [f"Build (`train_model`, {b.get('date', '?')}): {b['train_model_s']:.0f} s, peak RSS "
                    f"{b['peak_rss_mb']:,.0f} MB; neighbour table {json.dumps(b.get('neighbour_table'))}.", ""]
        out += [head, "|---|---|" + "---:|" * 3 * len(SEARCH_KINDS)]
        by = {}
        for x in r["results"]:
            key = (x["search"], ", ".join(f"{k} {v}" for k, v in x.items() if k not in SKIP))
            by.setdefault(key, {})[x["queries"]] = x
        for (name, settings), kinds in by.items():
            out.append(f"| {name} | {settings} | " + " | ".join(
                f"{kinds[k]['recall_at_10']:.4f} | {kinds[k]['p50_ms']:.3f} | {kinds[k]['p99_ms']:.3f}"
                for k in SEARCH_KINDS) + " |")
        rel = r["related"]
        out += ["", f"`model.related(unseen title, 10)` end to end ({rel['search']}): p50 {rel['p50_ms']:.3f} ms, "
                f"p99 {rel['p99_ms']:.3f} ms.", ""]
    return "\n".join(out)


SKIP = ("search", "queries", "recall_at_10", "fetch", "p50_ms", "p99_ms", "mean_ms")


def main_search(args: argparse.Namespace, started: str, command: str) -> int:
    rows = [r for r in (bench_search(m, args) for m in args.sizes.split(",")) if r]
    report = {"command": command, "date": started,
              "machine": {"cpus": os.cpu_count(), "loadavg_at_start": args.load_start, "loadavg_at_end": os.getloadavg()},
              "versions": versions(), "args": {k: v for k, v in vars(args).items()} | {"out": str(args.out)},
              "models": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    args.out.with_suffix(".md").write_text(search_markdown(rows, started, command) + "\n")
    print(f"-> {args.out}, {args.out.with_suffix('.md')}")
    return 0


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
    ap.add_argument("--search", action="store_true", help="the searches of unseen titles instead")
    ap.add_argument("--rows", default="2048,4096,8192,12288,16384,32768", help="--search: probe budgets (titles)")
    ap.add_argument("--search-queries", type=int, default=1000, help="--search: queries of each kind")
    ap.add_argument("--cluster-factors", default="8", help="--search: c * sqrt(S) clusters (8: the default)")
    ap.add_argument("--train", action="store_true", help="--search: (re)build the size models first")
    args = ap.parse_args()
    args.load_start = os.getloadavg()
    for name, kind in (("rows", int), ("cluster_factors", float), ("trees", int), ("multiples", int),
                       ("table_probes", int)):
        setattr(args, name, [kind(x) for x in getattr(args, name).split(",") if x])
    os.nice(args.nice)
    import torch
    torch.set_num_threads(1)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    command = "python bench/index.py " + " ".join(sys.argv[1:])
    if args.search:
        return main_search(args, started, command)
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
