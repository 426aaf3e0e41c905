"""Benchmark: `epgembed outliers` over the catalog of a model trained on all shared dumps.

    python bench/outliers.py [--dumps '../shared/data/epg/*.xml.gz'] [--model models/bench-outliers]
                             [--repeats 3] [--top 100] [--no-sensitivity]

Reports the wall time of the command (target: under 30 s on 2 cores) and the share of
flagged pairs that share no informative category, per signal and against the base rate of
all scanned pairs; with the sensitivity of the rare-token signal to its count threshold.
Prints and writes bench/results/outliers.json (+ outliers.html, the report itself).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 30.0


def ensure_model(dumps: list[str], model_dir: Path) -> dict:
    """Train once; retrain when the dump list changed or the folder no longer loads."""
    sys.path.insert(0, str(ROOT))
    import msgspec
    from epgembed.artifact.manifest import ModelError
    from epgembed.query.load import load_model
    manifest = model_dir / "manifest.json"
    try:
        m = load_model(model_dir).manifest
        if sorted(m.data.inputs) == sorted(dumps):
            return msgspec.to_builtins(m)
    except ModelError:
        pass
    cmd = [str(Path(sys.executable).parent / "epgembed"), "train", *dumps, "--out", str(model_dir),
           "--quiet", "--threads", str(os.cpu_count() or 1)]
    print("training:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return json.loads(manifest.read_text())


def run_outliers(model_dir: Path, top: int, html: Path) -> tuple[float, float, dict, list[str]]:
    """(wall s, CPU s of the child, scan, command)."""
    cmd = [str(Path(sys.executable).parent / "epgembed"), "outliers", str(model_dir), "--top", str(top),
           "--json", "--html", str(html)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu, json.loads(out.stdout), cmd


def sensitivity(model_dir: Path, counts: list[int]) -> list[dict]:
    """The rare-token signal alone, per rare_max_count: how often its pairs share no category."""
    from epgembed.query.load import load_model
    from epgembed.config import InspectConfig
    from epgembed.inspect.outliers import scan_pairs
    model = load_model(model_dir)
    rows = []
    for c in counts:
        cfg = InspectConfig(rare_max_count=c)
        pairs, _, _ = scan_pairs(model, 20, cfg)
        sel = pairs.rare_match(cfg) & pairs.decidable
        rows.append({"rare_max_count": c, "rare_token_match_decidable": int(sel.sum()),
                     "share_no_informative_category": round(float(pairs.no_category[sel].mean()), 4)
                     if sel.any() else None})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dumps", default=str(ROOT.parent / "shared/data/epg/*.xml.gz"))
    p.add_argument("--model", default=str(ROOT / "models/bench-outliers"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--top", type=int, default=100)
    p.add_argument("--out", default=str(ROOT / "bench/results/outliers.json"))
    p.add_argument("--no-sensitivity", action="store_true")
    args = p.parse_args(argv)
    dumps = sorted(glob.glob(args.dumps))
    if not dumps:
        print(f"no dumps match {args.dumps}", file=sys.stderr)
        return 2
    model_dir = Path(args.model)
    manifest = ensure_model(dumps, model_dir)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    html = out.with_suffix(".html")
    walls, cpus, scan, cmd = [], [], {}, []
    load = os.getloadavg()
    for _ in range(args.repeats):
        wall, cpu, scan, cmd = run_outliers(model_dir, args.top, html)
        walls.append(round(wall, 3))
        cpus.append(round(cpu, 3))
    s = scan["summary"]
    check = s["check"]
    result = {
        "command": " ".join(cmd), "benchmark": " ".join([sys.executable, *sys.argv]),
        "model": {"path": str(model_dir), "version": manifest["version"], "shows": s["shows"],
                  "inputs": len(dumps), "inv_freq": scan["model"]["inv_freq"]},
        "cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load],
        "wall_s": walls, "median_wall_s": statistics.median(walls), "cpu_s": cpus,
        "target_s": TARGET_S, "within_target": statistics.median(walls) < TARGET_S,
        "in_process_timings": scan["timings"], "config": scan["config"], "summary": s,
        "flagged_share_no_informative_category": check["flagged"]["share_no_informative_category"],
        "rare_signal_share_no_informative_category": check["rare_token_match"]["share_no_informative_category"],
        "base_rate_all_pairs": check["all_pairs"]["share_no_informative_category"],
        "top10": [{"title": e["title"]["text"], "neighbor": e["neighbor"]["text"], "score": e["score"],
                   "flags": e["flags"], "carrier": e["carrier"]["token"], "count": e["carrier"]["count"]}
                  for e in scan["outliers"][:10]],
    }
    if not args.no_sensitivity:
        result["rare_threshold_sensitivity"] = sensitivity(model_dir, [0, 1, 2, 3])
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"epgembed outliers on {s['shows']:,} shows ({s['pairs']:,} pairs, k={scan['k']}): "
          f"wall {result['median_wall_s']:.2f} s median of {walls} (target < {TARGET_S:.0f} s, "
          f"{os.cpu_count()} cpus, load average {load[0]:.1f}); CPU {cpus} s")
    print(f"flagged {s['flagged_pairs']:,} pairs: {s['no_shared_category']:,} share no category, "
          f"{s['rare_token_match']:,} carried by a rare token, {s['titles_disagreeing']:,} titles disagree")
    for key in ("flagged", "rare_token_match", "all_pairs"):
        if key in check and check[key]["share_no_informative_category"] is not None:
            print(f"  {key:18s} {check[key]['share_no_informative_category']:6.1%} of "
                  f"{check[key]['decidable']:,} decidable pairs share no informative category")
    for row in result.get("rare_threshold_sensitivity", []):
        share = row["share_no_informative_category"]
        print(f"  rare = count <= {row['rare_max_count']}: {row['rare_token_match_decidable']:,} rare-token "
              f"matches, {'-' if share is None else f'{share:.1%}'} share no informative category")
    print(f"-> {out}  (report: {html})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
