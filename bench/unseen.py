"""The searches for unseen titles (issue 18): recall@10 against exact search and the latency
of each search a model can answer vectors that are no catalog row with (exact, the cluster
probe at several budgets, the probe with Annoy over its centroids, Annoy), and, with
--reference, hnswlib's HNSW graph as an outside reference point (not shipped: it tells
what a standard graph index reaches on the same vectors and cores).

    python bench/unseen.py --sizes shared,1000000 [--rows 4096,8192] [--train] [--reference]

Models: "shared" = all of ../shared/data/epg (trained once into bench/cache/index-shared), a
size = the scale benchmark's synthetic model (bench/cache/scale/model-N), else a path.
`search_queries` says how the queries are made, `search_variants` what is measured. Writes
--out and its .md (docs/SCALE.md).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from index import K, exact_truth, parse, percentiles  # noqa: E402
from scale import CACHE as CACHE_DIR, RESULTS, model_dir, run_child, synth_path, versions  # noqa: E402

SEARCH_KINDS = ("unseen", "held_out", "mixed")
SHARED = Path("/work/shared/data/epg")


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
    Annoy over the centroids as the coarse step; Annoy at the model's search_k; with
    --reference, hnswlib's HNSW at each --ef."""
    from epgembed.build.index.clustered import spherical_kmeans
    from epgembed.query.probe import ClusterProbe, ExactSearch
    from epgembed.query.annoy import query_vector
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
    if args.reference:
        out += hnsw_reference(vectors, args.ef)
    return out


def hnsw_reference(vectors: np.ndarray, efs: list[int], m: int = 16, ef_construction: int = 100):
    """hnswlib's HNSW over the same vectors (inner product = cosine for unit rows), built
    with 2 threads and searched with 1, at each ef: what a standard graph index reaches on
    these vectors and cores. A reference point only: the service does not use it."""
    import hnswlib
    index = hnswlib.Index(space="ip", dim=vectors.shape[1])
    index.init_index(max_elements=len(vectors), ef_construction=ef_construction, M=m, random_seed=0)
    index.set_num_threads(2)
    t0 = time.perf_counter()
    index.add_items(vectors, np.arange(len(vectors)))
    build_s = round(time.perf_counter() - t0, 1)
    print(f"  hnswlib M {m} ef_construction {ef_construction}: built in {build_s} s", flush=True)
    index.set_num_threads(1)

    def at(ef: int):
        def search(v, k):
            index.set_ef(max(ef, k))
            labels, dist = index.knn_query(v, k)
            return labels[0].tolist(), 1.0 - dist[0]
        return search
    return [("hnswlib (reference)", {"M": m, "ef_construction": ef_construction, "ef": ef,
                                     "build_s": build_s}, at(ef)) for ef in efs]


def annoy_coarse(base, rows: int, n_trees: int = 10):
    """The cluster probe with the coarse step in Annoy (an index over the centroids): as many
    clusters as hold `rows` titles on average."""
    from annoy import AnnoyIndex
    from epgembed.query.probe import ClusterProbe
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
    from epgembed.query.load import load_model
    model_path, build = search_model(name, args)
    if not (model_path / "manifest.json").is_file():
        print(f"[{name}] no model at {model_path}: skipped (--train builds it)")
        return None
    model = load_model(model_path, verify=False)
    vectors = np.ascontiguousarray(np.load(model_path / "vectors.npy"))
    if hasattr(model.search, "ordered"):
        np.asarray(model.search.ordered).sum()                      # warm page cache, as a serving worker
    row = {"model": str(model_path.name), "shows": len(vectors), "dim": int(vectors.shape[1]),
           "manifest_search": msgspec.to_builtins(model.manifest.search),
           "served_by": type(model.search).__name__ if model.search else "Annoy",
           "neighbour_table": msgspec.to_builtins(model.manifest.neighbour_table), "build": build, "results": []}
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
    """model.related(title, Options(k=10)) end to end for the unseen titles (embedding, the search at the
    model's own setting, fetch 50, the answer filter), each timed alone after 50 warm-ups."""
    from epgembed.query.requests import Options
    ten, times = Options(k=10), []
    for t in titles[:50] + titles:
        t0 = time.perf_counter_ns()
        model.related(t, ten)
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
    ap.add_argument("--sizes", default="shared,1000000", help="models: shared, a size, or a path")
    ap.add_argument("--rows", default="2048,4096,8192,12288,16384,32768", help="probe budgets (titles)")
    ap.add_argument("--search-queries", type=int, default=1000, help="queries of each kind")
    ap.add_argument("--cluster-factors", default="8", help="c * sqrt(S) clusters (8: the default)")
    ap.add_argument("--train", action="store_true", help="(re)build the size models first")
    ap.add_argument("--reference", action="store_true",
                    help="also hnswlib's HNSW (requirements-dev.txt) at --ef values: an outside reference")
    ap.add_argument("--ef", default="100,300,500,1000,2000", help="--reference: HNSW ef values")
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--out", type=Path, default=RESULTS / "index-search.json")
    args, started = parse(ap, (("rows", int), ("cluster_factors", float), ("ef", int)))
    return main_search(args, started, "python bench/unseen.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
