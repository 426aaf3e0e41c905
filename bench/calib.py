"""The structure of a model's title vectors, to calibrate the synthetic guide
(epgembed.gen.synth) against the model of the real shared dumps (issue 27):

    python bench/calib.py --models shared,synth:11791,synth:11791:1,synth:100000,1000000 [--out ...]

For each model: the profile of neighbour cosines (the 1st, 10th and 100th nearest other
title of each sampled title: median and 10th percentile), the top of the singular value
spectrum of the centred title vectors (the share of the variance the first 1, 2, 5, 10,
20, 50 principal directions hold), and the cluster probe's recall@10 at fixed row budgets
with bench/unseen.py's queries and clusters (8 * sqrt(S), seeded as the build makes them;
unseen = text halves of two titles through model.embed, held_out, mixed). Models: "shared"
= all of the shared dumps (bench/cache/index-shared, trained with the default config),
"synth:N[:SEED]" = a synthetic guide of N titles (seed 0 unless given) trained here with
the default config, as the shared one (bench/cache/calib/synth-N-sSEED-*), a bare size =
the scale benchmark's model (bench/cache/scale/model-N, 2 epochs; its build record is
shown), else a path. Writes --out and its .md.
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
from index import exact_truth, parse  # noqa: E402
from scale import CACHE, RESULTS, synth_path, versions  # noqa: E402
from unseen import run_search, search_model, search_queries  # noqa: E402

RANKS = (1, 10, 100)
SPECTRUM = (1, 2, 5, 10, 20, 50)
PROFILE_TOL, PROBE_TOL = 0.03, 0.02


def calib_model(name: str, args: argparse.Namespace) -> tuple[Path, dict | None]:
    """The model folder of `name` and its build record; a synthetic one is trained (default
    config) when missing."""
    if not name.startswith("synth:"):
        return search_model(name, args)
    shows, seed = (int(x) for x in (name.split(":")[1:] + ["0"])[:2])        # synth:N or synth:N:SEED
    model = CACHE / "calib" / synth_path(shows, seed).name.removesuffix(".xml.gz")
    if not (model / "manifest.json").is_file():
        print(f"[{name}] training {model.name} (default config) ...", flush=True)
        subprocess.run(["nice", "-n", str(args.nice), str(Path(sys.executable).parent / "epgembed"), "train",
                        str(synth_path(shows, seed)), "--out", str(model)], check=True)
    return model, None


def neighbour_profile(vectors: np.ndarray, samples: int, seed: int = 0) -> dict:
    """Cosine of each sampled title's 1st, 10th, 100th nearest other title: median, p10."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(vectors), size=min(samples, len(vectors)), replace=False))
    got, block = [], max(16, min(256, (1 << 26) // len(vectors)))       # <= 256 MB of scores a block
    for lo in range(0, len(rows), block):
        r = rows[lo: lo + block]
        s = vectors[r] @ vectors.T
        s[np.arange(len(r)), r] = -np.inf
        top = -np.sort(-np.partition(s, -max(RANKS), axis=1)[:, -max(RANKS):], axis=1)
        got.append(top[:, [k - 1 for k in RANKS]])
    cos = np.concatenate(got)
    out = {}
    for j, k in enumerate(RANKS):
        out[f"nn{k}_median"] = round(float(np.median(cos[:, j])), 4)
        out[f"nn{k}_p10"] = round(float(np.percentile(cos[:, j], 10)), 4)
    return out


def spectrum(vectors: np.ndarray, samples: int, seed: int = 0) -> dict:
    """Share of the variance of the centred vectors in the first k principal directions."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), size=min(samples, len(vectors)), replace=False)
    x = np.asarray(vectors[np.sort(rows)], dtype=np.float64)
    x -= x.mean(0)
    s2 = np.linalg.svd(x, compute_uv=False) ** 2
    share = np.cumsum(s2) / s2.sum()
    return {f"top{k}": round(float(share[k - 1]), 4) for k in SPECTRUM}


def probe_recall(model, vectors: np.ndarray, args: argparse.Namespace) -> dict:
    """recall@10 of the cluster probe (8 * sqrt(S) clusters) at each --rows budget."""
    from epgembed.build.index.clustered import spherical_kmeans
    from epgembed.query.probe import ClusterProbe
    lists = int(8 * len(vectors) ** 0.5)
    stored = model.search
    if isinstance(stored, ClusterProbe) and len(stored.centroids) == lists:
        c, order, bounds, ordered = stored.centroids, stored.order, stored.bounds, stored.ordered
    else:
        c, order, bounds = spherical_kmeans(vectors, threads=1, lists=lists)
        ordered = np.ascontiguousarray(vectors[order])
    queries = search_queries(model, vectors, args.queries)
    truths = {kind: exact_truth(vectors, q, own) for kind, (q, own, _) in queries.items()}
    out = {}
    for rows in args.rows:
        probe = ClusterProbe(ordered, c, order, bounds, rows)
        for kind, (q, own, _) in queries.items():
            r = run_search(probe, q, own, truths[kind])
            out[f"{kind}@{rows}"] = r["recall_at_10"]
    return out


def profile(name: str, args: argparse.Namespace) -> dict:
    from epgembed.query.load import load_model
    path, build = calib_model(name, args)
    model = load_model(path, verify=False)
    vectors = np.ascontiguousarray(np.load(path / "vectors.npy", mmap_mode="r"))
    t0 = time.perf_counter()
    row = {"model": name, "path": str(path), "shows": len(vectors),
           "neighbours": neighbour_profile(vectors, args.samples),
           "spectrum": spectrum(vectors, args.spectrum_samples),
           "probe": probe_recall(model, vectors, args) if args.rows else {}, "build": build}
    row["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="shared,synth:11791")
    ap.add_argument("--rows", default="128,256,512,1024", help="probe budgets (titles)")
    ap.add_argument("--queries", type=int, default=1000, help="queries of each kind")
    ap.add_argument("--samples", type=int, default=4000, help="titles in the neighbour profile")
    ap.add_argument("--spectrum-samples", type=int, default=50000)
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--out", type=Path, default=RESULTS / "calib.json")
    args, started = parse(ap, (("rows", int),))
    rows = [profile(m, args) for m in args.models.split(",")]
    report = {"command": "python bench/calib.py " + " ".join(sys.argv[1:]), "date": started,
              "machine": {"cpus": os.cpu_count(), "loadavg_at_start": args.load_start,
                          "loadavg_at_end": os.getloadavg()},
              "versions": versions(), "models": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    args.out.with_suffix(".md").write_text(calib_markdown(report) + "\n")
    print(f"-> {args.out}, {args.out.with_suffix('.md')}")
    return 0


def calib_markdown(report: dict) -> str:
    """One table: each figure of each model, and how far the synthetic one of the shared
    model's size lies from it (the calibration's test: 0.03 for the profile, 0.02 for the
    probe)."""
    rows = report["models"]
    ref = next((r for r in rows if r["model"] == "shared"), None)
    twins = [r for r in rows if ref and r["model"] != "shared" and abs(r["shows"] - ref["shows"]) < 50]
    head = [f"{r['model']} ({r['shows']:,})" for r in rows] + [f"{t['model']} - shared" for t in twins[:1]] + \
        [f"mean of {len(twins)} seeds - shared"] * (len(twins) > 1)
    out = [f"# The structure of title vectors: shared dumps and synthetic guides ({report['date']}, "
           f"`{report['command']}`)", "", "Neighbour cosines: the 1st, 10th and 100th nearest other title of "
           "4,000 sampled titles (median, 10th percentile). Spectrum: the share of the centred vectors' "
           "variance in the first k principal directions. Probe: the cluster probe's recall@10 (8 sqrt(S) "
           "clusters) at a budget of rows, for bench/unseen.py's queries. The synthetic guide is "
           f"calibrated when each figure lies within {PROFILE_TOL} of the shared model's and the probe's "
           f"recall within {PROBE_TOL} (issue 27).", "",
           "| figure | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for group in ("neighbours", "spectrum", "probe"):
        for key in rows[0][group]:
            cells = [f"{r[group].get(key, float('nan')):.4f}" for r in rows]
            tol = PROBE_TOL if group == "probe" else PROFILE_TOL
            for d in ([twins[0][group][key] - ref[group][key]] if twins else []) + \
                    ([np.mean([t[group][key] for t in twins]) - ref[group][key]] if len(twins) > 1 else []):
                cells.append(f"{d:+.4f}" + ("" if abs(d) <= tol else " (out)"))
            out.append(f"| {group}: {key} | " + " | ".join(cells) + " |")
    for r in rows:
        b = r.get("build")
        if b:
            out += ["", f"{r['model']}: built by bench/scale.py's train child ({b.get('date', '?')}): "
                    f"{b['train_model_s']:.0f} s, peak RSS {b['peak_rss_mb']:,.0f} MB, {b['shows']:,} titles."]
    m = report["machine"]
    load = [" / ".join(f"{x:.1f}" for x in m[k]) for k in ("loadavg_at_start", "loadavg_at_end")]
    out += ["", f"Machine: {m['cpus']} CPUs, load average {load[0]} at the start, {load[1]} at the end."]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
