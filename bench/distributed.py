"""`make bench-distributed`: data-parallel training (2 ranks under torchrun, gloo on loopback)
against one process, on every shared dump.

1. Quality and cost, per dump (EVALUATION.md protocol, split seed 7 as bench-quality): the
   model trained by one process and by 2 ranks (`epgembed train --distributed`), each with
   training seeds 0, 1 and 2 (Config.with_seed). P@10d of each, the one-process spread
   (min..max over the seeds) and whether the 2-rank figures lie in it; time per epoch (the
   median of the epochs in each model's history.json) against one process; the bytes each
   rank sent per step and per epoch (the exchange's count of what the collectives move,
   and the bytes rank 0's process wrote meanwhile, /proc/self/io).
2. The exchange, on the largest dump (whole, not split): --exchange union beside the
   default allgather, seed 0, and one process.
3. More ranks, without processes: on the same dump, the one-process table after training,
   the batches of one epoch cut into K = 1, 2, 4, 8, 16 slices as K ranks cut them; the
   rows with a gradient per slice and their union give each exchange's bytes per step at
   K ranks (docs/SCALE.md); and what a rank other than 0 holds, in bytes per title.

Writes bench/results/distributed.json and .md.

    python bench/distributed.py [--dumps DIR] [--seeds 0,1,2] [--ranks 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import SHARED_DUMPS, dump_paths
from epgembed.config import Config
from epgembed.eval.baselines import EpgembedSystem
from epgembed.eval.evaluate import dump_name, evaluate_dumps
from epgembed.build.model.distributed import Group, RowGradient, launch, shard_batch
from epgembed.build.model.sampling import LeaveOneOutSampler, PackedTitles
from epgembed.build.model.train import example_batches, split_validation
from epgembed.build.pipeline import fit, prepare, train_model

ROOT = Path(__file__).resolve().parent.parent
SPLIT_SEED = 7


def model_costs(model: Path) -> dict:
    """Epoch time and traffic of one trained model folder (manifest + history.json)."""
    manifest = json.loads((model / "manifest.json").read_text(encoding="utf-8"))
    history = json.loads((model / "history.json").read_text(encoding="utf-8"))
    t = manifest["training"]
    epochs = len(history)
    out = {"epochs": epochs, "examples": t["examples"], "train_s": t["timings"]["train_s"],
           "epoch_s": statistics.median(h["seconds"] for h in history),
           "fastest_epoch_s": min(h["seconds"] for h in history),
           "val_p_at_10": t["val_p_at_10"]}
    if t.get("distributed"):
        traffic = t["distributed"]["traffic"]
        out.update(steps=traffic["steps"], bytes_per_step=traffic["bytes_per_step"],
                   bytes_per_epoch=round(traffic["bytes_sent"] / epochs),
                   written_per_epoch=round(traffic.get("written_bytes", 0) / epochs),
                   exchange_s_per_epoch=round(traffic["seconds"] / epochs, 3),
                   rows_per_step=traffic["rows_per_step"], applied_per_step=traffic["applied_per_step"])
    return out


def quality(paths: list[Path], cfg: Config, seeds: list[int], ranks: int, work: Path) -> list[dict]:
    """Phase 1: every dump, one process and `ranks` ranks, each seed."""
    systems = [EpgembedSystem(cfg.with_seed(s), f"1 rank, seed {s}", threads=1) for s in seeds]
    systems += [EpgembedSystem(cfg.with_seed(s), f"{ranks} ranks, seed {s}", threads=1, ranks=ranks)
                for s in seeds]
    rows = evaluate_dumps(paths, systems, seed=SPLIT_SEED, workdir=work)
    for r in rows:
        i = [s.name for s in systems].index(r["system"])
        r.update(ranks=systems[i].ranks, train_seed=seeds[i % len(seeds)],
                 **model_costs(work / r["dump"] / f"{i:02d}-{r['system']}" / "model"))
        print(f"{r['dump']:14s} {r['system']:18s} P@10d {r['p_at_10d']:.3f}  epoch {r['epoch_s']:.3f} s"
              + (f"  {r['bytes_per_step'] / 1e6:.2f} MB/step" if "bytes_per_step" in r else ""), flush=True)
    return rows


def summary(rows: list[dict], ranks: int) -> list[dict]:
    """Per dump: the one-process spread and the ranks' figures beside it."""
    out = []
    for dump in dict.fromkeys(r["dump"] for r in rows):
        one = [r for r in rows if r["dump"] == dump and r["ranks"] == 1]
        many = [r for r in rows if r["dump"] == dump and r["ranks"] == ranks]
        lo, hi = min(r["p_at_10d"] for r in one), max(r["p_at_10d"] for r in one)
        out.append({"dump": dump, "n_test": one[0]["n_test"],
                    "one_p_at_10d": [r["p_at_10d"] for r in one], "one_min": lo, "one_max": hi,
                    "ranks_p_at_10d": [r["p_at_10d"] for r in many],
                    "within_spread": all(lo - 1e-9 <= r["p_at_10d"] <= hi + 1e-9 for r in many),
                    "same_seed_diff": max(abs(a["p_at_10d"] - b["p_at_10d"]) for a, b in zip(one, many)),
                    "one_epoch_s": statistics.median(r["epoch_s"] for r in one),
                    "ranks_epoch_s": statistics.median(r["epoch_s"] for r in many),
                    "one_fastest_s": min(r["fastest_epoch_s"] for r in one),
                    "ranks_fastest_s": min(r["fastest_epoch_s"] for r in many),
                    "steps_per_epoch": many[0]["steps"] // many[0]["epochs"],
                    "bytes_per_step": statistics.median(r["bytes_per_step"] for r in many),
                    "bytes_per_epoch": statistics.median(r["bytes_per_epoch"] for r in many),
                    "written_per_epoch": statistics.median(r["written_per_epoch"] for r in many),
                    "exchange_s_per_epoch": statistics.median(r["exchange_s_per_epoch"] for r in many)})
    return out


def exchanges(dump: Path, cfg: Config, ranks: int, work: Path) -> list[dict]:
    """Phase 2: the whole dump, one process, then each exchange."""
    path = work / "config.json"
    path.write_text(json.dumps(cfg.to_dict()), encoding="utf-8")
    out = []
    t0 = time.perf_counter()
    train_model([dump], work / "one", cfg, threads=1)
    out.append({"exchange": "one process", "wall_s": round(time.perf_counter() - t0, 1),
                **model_costs(work / "one")})
    for method in ("allgather", "union"):
        t0 = time.perf_counter()
        launch(["train", str(dump), "--out", str(work / method), "--distributed", "--quiet",
                "--exchange", method, "--config", str(path)], ranks)
        out.append({"exchange": method, "wall_s": round(time.perf_counter() - t0, 1),
                    **model_costs(work / method)})
    return out


def more_ranks(dump: Path, cfg: Config, ks=(1, 2, 4, 8, 16), batches: int = 100) -> dict:
    """Phase 3: the rows K ranks would send per step, from the trained one-process table,
    and what a rank other than 0 holds per title."""
    t = cfg.train
    prep = prepare([dump], cfg)
    table = fit(prep, cfg).embeddings
    rng = np.random.default_rng(t.seed)
    val = set(split_validation(prep.show_categories, t, rng))
    sampler = LeaveOneOutSampler([[] if s in val else c for s, c in enumerate(prep.show_categories)],
                                 len(prep.categories), t.n, rng)
    titles = PackedTitles(prep.token_ids, prep.token_weights, prep.views)
    grad = RowGradient(table, t.max_negatives, t.margin)
    seen = {k: {"max_rows": [], "union": []} for k in ks}
    for i, (shows, b, allowed) in enumerate(example_batches(sampler, t, titles)):
        if i == batches:
            break
        for k in ks:
            parts = []
            for r in range(k):
                lo, hi = Group(r, k).share(b)
                _, rows, g = grad(titles, shard_batch(shows, b, t.n, lo, hi), hi - lo,
                                  allowed.numpy()[lo:hi], t.n, 1.0 / b)
                parts.append(rows[g.any(axis=1)].copy())
            seen[k]["max_rows"].append(max(len(p) for p in parts))
            seen[k]["union"].append(len(np.unique(np.concatenate(parts))))
    dim, per_k = t.dim, []
    for k in ks:
        m, u = statistics.mean(seen[k]["max_rows"]), statistics.mean(seen[k]["union"])
        per_k.append({"ranks": k, "rows_per_rank": round(m, 1), "union_rows": round(u, 1),
                      "allgather_bytes": round((k - 1) * (16 + m * (4 * dim + 4))),
                      "union_bytes": round((k - 1) * (16 + 8 * m) + 2 * (k - 1) / k * u * 4 * dim)})
    n = len(prep.token_ids)
    padded = [prep.token_ids, prep.token_weights] + [a for v in prep.views for a in (v.ids, v.weights, v.lengths)]
    packed = [titles.tokens, titles.weights, titles.length, titles.start]
    supervision = 8 * (n + sum(len(c) for c in prep.show_categories)) + prep.series.nbytes
    return {"dump": dump_name(dump), "titles": n, "vocab": int(table.shape[0]), "batches": batches,
            "per_k": per_k,
            "bytes_per_title": {"packed_titles": round(sum(a.nbytes for a in packed) / n),
                                "supervision": round(supervision / n),
                                "rank0_padded_arrays": round(sum(a.nbytes for a in padded) / n)},
            "table_and_accum_bytes": int(table.nbytes + table.shape[0] * 4)}


def markdown(res: dict) -> str:
    k = res["ranks"]
    lines = [f"# Data-parallel training: {k} ranks (torchrun, gloo on loopback) against one process", "",
             f"Split seed {SPLIT_SEED}; training seeds {', '.join(map(str, res['seeds']))}; the default "
             "config. P@10d per seed; the one-process spread is min..max over the seeds.", "",
             f"| dump | queries | 1 process P@10d | {k} ranks P@10d | within spread | same seed, largest "
             f"difference | epoch s, 1 process | epoch s, {k} ranks | steps/epoch | MB sent/step/rank | "
             "MB sent/epoch/rank (written) | exchange s/epoch |", "|" + "---|" * 12]
    for s in res["summary"]:
        lines.append(f"| {s['dump']} | {s['n_test']} | {' '.join(f'{x:.3f}' for x in s['one_p_at_10d'])} | "
                     f"{' '.join(f'{x:.3f}' for x in s['ranks_p_at_10d'])} | "
                     f"{'yes' if s['within_spread'] else 'NO'} | {s['same_seed_diff']:.3f} | "
                     f"{s['one_epoch_s']:.3f} ({s['one_fastest_s']:.3f}) | "
                     f"{s['ranks_epoch_s']:.3f} ({s['ranks_fastest_s']:.3f}) | {s['steps_per_epoch']} | "
                     f"{s['bytes_per_step'] / 1e6:.2f} | {s['bytes_per_epoch'] / 1e6:.0f} "
                     f"({s['written_per_epoch'] / 1e6:.0f}) | {s['exchange_s_per_epoch']:.2f} |")
    ex = res["exchanges"]
    lines += ["", f"## The exchange ({res['more_ranks']['dump']}, the whole dump, seed 0)", "",
              "| run | wall s | epoch s | MB sent/step/rank | MB sent/epoch/rank (written) | exchange s/epoch |",
              "|---|---|---|---|---|---|"]
    for e in ex:
        dist = "bytes_per_step" in e
        lines.append(f"| {e['exchange']} | {e['wall_s']} | {e['epoch_s']:.3f} ({e['fastest_epoch_s']:.3f}) | "
                     + (f"{e['bytes_per_step'] / 1e6:.2f} | {e['bytes_per_epoch'] / 1e6:.0f} "
                        f"({e['written_per_epoch'] / 1e6:.0f}) | {e['exchange_s_per_epoch']:.2f} |"
                        if dist else "- | - | - |"))
    mr = res["more_ranks"]
    lines += ["", f"## More ranks ({mr['dump']}: {mr['titles']:,} titles, {mr['vocab']:,} tokens; "
              f"{mr['batches']} batches of the trained table cut as K ranks cut them)", "",
              "| ranks | rows with a gradient, largest rank | union | allgather MB/step/rank | "
              "union MB/step/rank |", "|---|---|---|---|---|"]
    for p in mr["per_k"]:
        lines.append(f"| {p['ranks']} | {p['rows_per_rank']:.0f} | {p['union_rows']:.0f} | "
                     f"{p['allgather_bytes'] / 1e6:.2f} | {p['union_bytes'] / 1e6:.2f} |")
    f = mr["bytes_per_title"]
    lines += ["", f"A rank other than 0 holds per title {f['packed_titles']} B of packed titles (the "
              f"title bags and both views, no padding) and {f['supervision']} B of categories and "
              f"series, plus the table and its accumulators ({mr['table_and_accum_bytes'] / 1e6:.1f} MB "
              f"here); rank 0 also holds the padded arrays ({f['rank0_padded_arrays']} B), the catalog "
              "and the tokenizer.", "",
              "MB sent: what the collectives move for this rank (a ring all-gather sends K - 1 "
              "times its share, a ring all-reduce 2 (K - 1) / K times the tensor); written: the "
              "bytes rank 0's process wrote during training (/proc/self/io wchar: gloo's "
              "sockets, and nothing else of note). Epoch s: run_epoch's time, the median "
              "over the epochs and seeds (the fastest in brackets: the least disturbed by the "
              "other jobs of this shared machine), validation not included.", "",
              f"Command: `{res['command']}` ({res['wall_s'] / 60:.1f} min; load average "
              f"{' '.join(f'{x:.1f}' for x in res['load_before'])} before, "
              f"{' '.join(f'{x:.1f}' for x in res['load_after'])} after, on {os.cpu_count()} cores)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dumps", default=str(SHARED_DUMPS))
    ap.add_argument("--seeds", default="0,1,2", help="training seeds (default 0,1,2)")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args(argv)
    paths = dump_paths(args.dumps)
    seeds = [int(s) for s in args.seeds.split(",")]
    cfg, load_before, t0 = Config(), os.getloadavg(), time.perf_counter()
    torch.set_num_threads(1)
    largest = max(paths, key=lambda p: p.stat().st_size)
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        rows = quality(paths, cfg, seeds, args.ranks, Path(tmp) / "quality")
        ex = exchanges(largest, cfg, args.ranks, Path(tmp))
    res = {"command": " ".join(["python"] + sys.argv), "ranks": args.ranks, "seeds": seeds,
           "split_seed": SPLIT_SEED, "config": cfg.to_dict(), "summary": summary(rows, args.ranks),
           "exchanges": ex, "more_ranks": more_ranks(largest, cfg), "results": rows}
    res.update(wall_s=round(time.perf_counter() - t0, 1), load_before=list(load_before),
               load_after=list(os.getloadavg()),
               machine={"cores": os.cpu_count(), "python": platform.python_version(),
                        "torch": torch.__version__})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "distributed.json").write_text(json.dumps(res, indent=1))
    (out / "distributed.md").write_text(markdown(res) + "\n")
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
