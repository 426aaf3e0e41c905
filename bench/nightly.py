"""`make bench-nightly`: the five real nightly dumps of one feed, end to end.

For each night, in turn, `epgembed.nightly.run.run_nightly` runs twice, into two models roots:
warm start (the default: the current model's token vectors, fine-tuned) and cold start
(random init, the model's own lr and patience). The two runs of a night are back to back,
so machine noise hits both alike. Per night and mode: wall time per stage (ingest, train,
index, write, evaluate, publish; wall and process CPU seconds), epochs, held-out quality (EVALUATION.md protocol on
tonight's held-out keys) of the new and the current version, neighbour stability (mean
top-10 Jaccard vs the previous version) and catalog changes.

Reference stability (same data, nothing new to learn): the last night re-run on a copy of
each root -- cold with another seed, warm with the same settings -- compared with the
version trained on exactly the same input.

    python bench/nightly.py [--daily DIR] [--threads 1] [--out bench/results/nightly.json]
                            [--sweep 0.02,0.05,0.1,0.2]   # warm_lr trade-off (slow)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from epgembed.config import Config
from epgembed.nightly.run import NightlyConfig, NightlyResult, run_nightly

REPO = Path(__file__).resolve().parent.parent
DAILY = REPO.parent / "shared" / "data" / "epg-daily" / "de_magenta"
STAGES = ["ingest_s", "train_s", "index_s", "write_s", "evaluate_s", "publish_s", "total_s"]
MODES = {"warm": NightlyConfig(), "cold": NightlyConfig(warm_start=False)}


def row_of(result: NightlyResult) -> dict:
    """The figures of one run that the benchmark reports."""
    r = result.report
    q = r.get("quality") or {}
    return {"status": result.status, "version": r.get("version"),
            "timings": {k: r["timings"].get(k) for k in STAGES},
            "cpu_timings": {k: r.get("cpu_timings", {}).get(k) for k in STAGES if k != "index_s"},
            "epochs": (r.get("training") or {}).get("epochs_run"),
            "best_epoch": (r.get("training") or {}).get("best_epoch"),
            "warm_start": r.get("warm_start"),
            "shows": (r.get("catalog") or {}).get("shows"),
            "changes": {k: (r.get("changes") or {}).get(k) for k in ("added", "dropped", "categories_changed")},
            "p_at_10": (q.get("new") or {}).get("p_at_10"), "map_at_10": (q.get("new") or {}).get("map_at_10"),
            "current_p_at_10": (q.get("current") or {}).get("p_at_10"),
            "random_p_at_10": (q.get("random") or {}).get("p_at_10"),
            "n_test": (q.get("new") or {}).get("n_test"),
            "stability": r.get("stability"), "summary": result.summary}


def mean(values: list) -> float | None:
    vals = [v for v in values if isinstance(v, (int, float))]
    return round(statistics.fmean(vals), 4) if vals else None


def summarise(nights: list[dict], mode: str) -> dict:
    rows = [n[mode] for n in nights]
    later = rows[1:]  # nights with a previous version (warm start possible)
    return {"mean_total_s": mean([r["timings"]["total_s"] for r in rows]),
            "max_total_s": max(r["timings"]["total_s"] for r in rows),
            "mean_cpu_total_s": mean([r["cpu_timings"]["total_s"] for r in rows]),
            "max_cpu_total_s": max(r["cpu_timings"]["total_s"] for r in rows),
            "mean_train_s_later_nights": mean([r["timings"]["train_s"] for r in later]),
            "mean_epochs_later_nights": mean([r["epochs"] for r in later]),
            "mean_p_at_10": mean([r["p_at_10"] for r in rows]),
            "mean_p_at_10_later_nights": mean([r["p_at_10"] for r in later]),
            "mean_map_at_10": mean([r["map_at_10"] for r in rows]),
            "mean_stability_common": mean([(r["stability"] or {}).get("common") for r in later]),
            "mean_stability_served": mean([(r["stability"] or {}).get("served") for r in later]),
            "published": sum(r["status"] == "published" for r in rows)}


def rerun_same_night(root: Path, scratch: Path, dump: Path, night: str, ncfg: NightlyConfig,
                     cfg: Config) -> dict:
    """Re-run the last night on a copy of `root`: stability against identical input."""
    shutil.copytree(root, scratch, symlinks=True)
    return row_of(run_nightly([dump], scratch, dataclasses.replace(ncfg, night=night), cfg))


def warm_lr_sweep(snapshot: Path, scratch: Path, dumps: list[Path], rates: list[float],
                  cfg: Config) -> list[dict]:
    """Nights 2.. warm-started from the same night-1 root with each `warm_lr`."""
    rows = []
    for lr in rates:
        root = scratch / f"warm-lr-{lr}"
        shutil.copytree(snapshot, root, symlinks=True)
        nights = [row_of(run_nightly([d], root, NightlyConfig(warm_lr=lr), cfg)) for d in dumps[1:]]
        rows.append({"warm_lr": lr, "nights": nights,
                     "mean_p_at_10": mean([n["p_at_10"] for n in nights]),
                     "mean_map_at_10": mean([n["map_at_10"] for n in nights]),
                     "mean_stability_common": mean([(n["stability"] or {}).get("common") for n in nights]),
                     "mean_epochs": mean([n["epochs"] for n in nights]),
                     "mean_cpu_total_s": mean([n["cpu_timings"]["total_s"] for n in nights])})
        print(f"warm_lr {lr}: " + json.dumps({k: v for k, v in rows[-1].items() if k != "nights"}), flush=True)
    return rows


def table(nights: list[dict]) -> str:
    head = (f"{'night':10s} {'mode':4s} {'cpu':>6s} {'total':>6s} {'ingest':>6s} {'train':>6s} {'index':>5s} "
            f"{'eval':>5s} {'publ':>5s} {'ep':>3s} {'P@10':>6s} {'cur':>6s} {'rand':>6s} "
            f"{'Jacc':>6s} {'shows':>6s} {'+/-':>9s}")
    lines = [head]
    for n in nights:
        for mode in MODES:
            r = n[mode]
            t = r["timings"]
            f = lambda x, w=6: f"{x:{w}.3f}" if isinstance(x, float) else f"{'-':>{w}s}"  # noqa: E731
            j = (r["stability"] or {}).get("common")
            lines.append(f"{n['night']:10s} {mode:4s} {r['cpu_timings']['total_s']:6.1f} "
                         f"{t['total_s']:6.1f} {t['ingest_s']:6.1f} "
                         f"{t['train_s']:6.1f} {t['index_s']:5.2f} {t['evaluate_s']:5.1f} "
                         f"{t['publish_s']:5.2f} {r['epochs']:>3d} {f(r['p_at_10'])} "
                         f"{f(r['current_p_at_10'])} {f(r['random_p_at_10'])} {f(j)} "
                         f"{r['shows']:>6,d} {'+%d/-%d' % (r['changes']['added'], r['changes']['dropped']):>9s}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--daily", type=Path, default=DAILY, help="folder of YYYY-MM-DD.xml.gz nightly dumps")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on shared cores more threads stall)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "nightly.json")
    ap.add_argument("--sweep", default="", help="also compare warm_lr values, e.g. 0.02,0.05,0.1,0.2 "
                    "(nights 2.. from the same night-1 root) -> nightly_warm_lr.json beside --out")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dumps = sorted(args.daily.glob("*.xml.gz"))
    if not dumps:
        print(f"no dumps in {args.daily}", file=sys.stderr)
        return 2
    cfg = Config()
    load_before = os.getloadavg()
    nights: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="epgembed-bench-nightly-") as tmp:
        roots = {mode: Path(tmp) / mode for mode in MODES}
        for dump in dumps:
            night = {"night": dump.name.split(".")[0], "dump": str(dump)}
            for mode, ncfg in MODES.items():
                night[mode] = row_of(run_nightly([dump], roots[mode], ncfg, cfg))
                print(f"{mode}: {night[mode]['summary']}", flush=True)
            nights.append(night)
            if len(nights) == 1 and args.sweep:
                shutil.copytree(roots["warm"], Path(tmp) / "night1", symlinks=True)
        last = nights[-1]["night"]
        reference = {
            "cold_other_seed_same_data": rerun_same_night(
                roots["cold"], Path(tmp) / "ref-cold", dumps[-1], last, MODES["cold"], cfg.with_seed(1)),
            "warm_same_data": rerun_same_night(
                roots["warm"], Path(tmp) / "ref-warm", dumps[-1], last, MODES["warm"], cfg)}
        rates = [float(x) for x in args.sweep.split(",") if x.strip()]
        sweep = warm_lr_sweep(Path(tmp) / "night1", Path(tmp), dumps, rates, cfg) if rates else []
    result = {
        "command": " ".join(["python bench/nightly.py", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "torch_threads": args.threads,
                    "python": platform.python_version(), "torch": torch.__version__,
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "config": {"model": cfg.to_dict(), "nightly": {m: dataclasses.asdict(c) for m, c in MODES.items()}},
        "nights": nights,
        "summary": {mode: summarise(nights, mode) for mode in MODES},
        "reference_stability": {k: {"stability": v["stability"], "p_at_10": v["p_at_10"],
                                    "epochs": v["epochs"], "total_s": v["timings"]["total_s"]}
                                for k, v in reference.items()},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if sweep:
        (args.out.parent / "nightly_warm_lr.json").write_text(json.dumps(
            {"command": result["command"], "machine": result["machine"], "sweep": sweep},
            indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print()
    print(table(nights))
    print()
    for mode, s in result["summary"].items():
        print(f"{mode}: {json.dumps(s)}")
    for k, v in result["reference_stability"].items():
        print(f"reference {k}: top-10 Jaccard {(v['stability'] or {}).get('common')}, "
              f"P@10 {v['p_at_10']}, {v['epochs']} epochs, {v['total_s']} s")
    print(f"load average before/after: {result['machine']['loadavg_before']} / "
          f"{result['machine']['loadavg_after']}  -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
