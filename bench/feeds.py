"""`make bench-feeds`: one model or many? (issue 27; docs/SCALE.md, "One model or many").
One model trained on all shared dumps against one model per dump, both scored with the
EVALUATION.md protocol on the same test titles. Writes bench/results/feeds-model.{json,md}.

    python bench/feeds.py [--dumps DIR] [--seed 7] [--threads 1]

- Split: every dump is split as the protocol says (epgembed.eval.evaluate.split_dump, the
  seed), and every dump's training copy has the categories of the test titles of ALL dumps
  removed (a test title of one dump that another dump also airs would otherwise hand its
  categories to the combined model). So both sides train on exactly the same programmes:
  the combined model on the seven training copies, each per-dump model on its own.
- Query: the per-dump model answers the dump's queries; the combined model answers the
  same queries, its answers restricted to the query's feed: the titles that air on one of
  the dump's channels (the catalog's channels; the seven dumps share no channel id, which
  is checked), asked for more answers until ASKED remain. Both through
  `RelatedModel.related` (one answer per series), scored by `score_query` on the dump's
  split: P@10d, and P@10x, P@10, series_rep beside it; and the combined model unrestricted
  (answers from other feeds count as titles the dump never aired).
- Cost: each model trained in a child process (`--child`), its wall and CPU seconds and
  peak RSS (the child's VmHWM; ru_maxrss from wait4).

The difference per dump comes with its standard error over the queries (paired: the same
queries, one seed).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean, stdev

REPO = Path(__file__).resolve().parent.parent
DUMPS = REPO.parent / "shared" / "data" / "epg"
RESULTS = REPO / "bench" / "results"
FIGURES = ("p_at_10d", "p_at_10x", "p_at_10", "series_rep", "unmapped")


# ---------------------------------------------------------------------------- child: one training
def _hwm_mb() -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return round(int(line.split()[1]) / 1024, 1)


def child_train(out: Path, threads: int, dumps: list[Path]) -> dict:
    from epgembed.config import Config
    from epgembed.build.pipeline import train_model
    before = _hwm_mb()                      # the interpreter with torch and the pipeline imported
    t0, c0 = time.perf_counter(), time.process_time()
    saved: dict = {}
    manifest = train_model(dumps, out, Config(), threads=threads, timings=saved)
    return {"seconds": round(time.perf_counter() - t0, 2), "cpu_s": round(time.process_time() - c0, 2),
            "peak_rss_mb": _hwm_mb(), "rss_after_imports_mb": before,
            "shows": manifest.n_shows, "vocab": manifest.vocab_size,
            "timings": {k: round(v, 2) for k, v in {**manifest.training.timings, **saved}.items()}}


def train(out: Path, threads: int, dumps: list[Path]) -> dict:
    """child_train in a fresh process: its figures, its ru_maxrss and the whole process's wall time."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(out), str(threads), *map(str, dumps)],
                            stdout=subprocess.PIPE, text=True)
    text = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"training {out.name} failed (exit {os.waitstatus_to_exitcode(status)})")
    return {**json.loads(text.strip().splitlines()[-1]), "process_s": round(time.perf_counter() - t0, 2),
            "maxrss_mb": round(usage.ru_maxrss / 1024, 1)}


# ---------------------------------------------------------------------------- answers and scores
def answers(model, title: str, k: int, keep=None) -> list[str]:
    """Up to k display titles related to `title`, one per series, best first; with `keep`
    (a catalog id -> bool), only titles it keeps, asking for more until k are found."""
    from epgembed.query.errors import QueryError
    from epgembed.query.requests import Options
    ask = k if keep is None else 10 * k
    while True:
        try:
            hits = model.related(title, Options(k=ask)).related
        except QueryError:
            return []
        kept = [h.title for h in hits if keep is None or keep(h.id)]
        if len(kept) >= k or len(hits) < ask:
            return kept[:k]
        ask *= 4


def feed_of(model, channels: set[str]):
    """Catalog id -> True when the show airs on one of `channels` (the query's feed)."""
    inside = [bool(channels.intersection(s.channels)) for s in model.catalog.shows]
    return inside.__getitem__


def scores(split, model, keep=None) -> list:
    from epgembed.eval.evaluate import ASKED, score_query
    return [score_query(split, key, answers(model, split.queries[key], ASKED, keep)) for key in split.test_keys]


def summary(per_query: list) -> dict:
    from epgembed.eval.score import mean_scores
    means = mean_scores(per_query)
    return {f: round(means[f], 4) for f in FIGURES}


def paired(a: list, b: list) -> dict:
    """Mean of b - a in P@10d over the same queries, and its standard error."""
    d = [y.p_at_10d - x.p_at_10d for x, y in zip(a, b)]
    return {"delta": round(mean(d), 4), "se": round(stdev(d) / len(d) ** 0.5, 4)}


# ---------------------------------------------------------------------------- the run
def prepare(paths: list[Path], seed: int, work: Path) -> tuple[dict, dict, dict]:
    """(splits, training copies, channels) per dump name; every copy without any dump's test categories."""
    from epgembed.eval.evaluate import dump_name, split_dump, write_stripped_dump
    from epgembed.eval.xmltv import iter_airings
    splits = {dump_name(p): split_dump(p, seed=seed) for p in paths}
    test = frozenset().union(*(s.test_keys for s in splits.values()))
    copies = {name: write_stripped_dump(s.path, work / f"{name}.train.xml", test) for name, s in splits.items()}
    channels = {dump_name(p): {c for _, c in iter_airings(p) if c} for p in paths}
    shared = {(a, b): sorted(channels[a] & channels[b]) for a in channels for b in channels if a < b}
    if any(shared.values()):
        sys.exit(f"dumps share channel ids, so a feed is no set of channels: {[k for k, v in shared.items() if v]}")
    return splits, copies, channels


def run(args: argparse.Namespace, work: Path) -> dict:
    from epgembed.query.load import load_model
    paths = sorted(args.dumps.glob("*.xml.gz"))
    if not paths:
        sys.exit(f"no dumps in {args.dumps}")
    splits, copies, channels = prepare(paths, args.seed, work)
    test_union = set().union(*(s.test_keys for s in splits.values()))
    print(f"{len(paths)} dumps, {len(test_union)} test titles in all", flush=True)
    trained = {name: train(work / f"model-{name}", args.threads, [copy]) for name, copy in copies.items()}
    for name, t in trained.items():
        print(f"  {name}: {t['shows']} shows, {t['seconds']} s, peak {t['peak_rss_mb']} MB", flush=True)
    trained["combined"] = train(work / "model-combined", args.threads, list(copies.values()))
    print(f"  combined: {trained['combined']['shows']} shows, {trained['combined']['seconds']} s, "
          f"peak {trained['combined']['peak_rss_mb']} MB", flush=True)
    combined = load_model(work / "model-combined")
    rows = []
    for name, split in splits.items():
        own = scores(split, load_model(work / f"model-{name}"))
        keep = feed_of(combined, channels[name])
        restricted, anywhere = scores(split, combined, keep), scores(split, combined)
        rows.append({"dump": name, "n_test": len(split.test_keys),
                     "others_test_keys_aired_here": len(set(split.key_categories) & (test_union - set(split.test_keys))),
                     "combined_shows_in_feed": sum(map(keep, range(len(combined.catalog)))),
                     "per_dump": summary(own), "combined_in_feed": summary(restricted),
                     "combined_anywhere": summary(anywhere), "combined_in_feed_minus_per_dump": paired(own, restricted)})
        r = rows[-1]
        print(f"  {name}: P@10d per dump {r['per_dump']['p_at_10d']:.3f}, combined in feed "
              f"{r['combined_in_feed']['p_at_10d']:.3f} ({r['combined_in_feed_minus_per_dump']['delta']:+.3f} "
              f"± {r['combined_in_feed_minus_per_dump']['se']:.3f}), anywhere {r['combined_anywhere']['p_at_10d']:.3f}",
              flush=True)
    return {"rows": rows, "training": trained}


def markdown(out: dict) -> str:
    rows, t = out["rows"], out["training"]
    lines = ["| dump | queries | per-dump P@10d | combined, in feed | difference ± se | combined, anywhere | "
             "per-dump P@10x | combined P@10x | per-dump train s | per-dump peak MB |", "|" + "---|" * 10]
    for r in rows:
        d, tr = r["combined_in_feed_minus_per_dump"], t[r["dump"]]
        lines.append(f"| {r['dump']} | {r['n_test']} | {r['per_dump']['p_at_10d']:.3f} | "
                     f"{r['combined_in_feed']['p_at_10d']:.3f} | {d['delta']:+.3f} ± {d['se']:.3f} | "
                     f"{r['combined_anywhere']['p_at_10d']:.3f} | {r['per_dump']['p_at_10x']:.3f} | "
                     f"{r['combined_in_feed']['p_at_10x']:.3f} | {tr['seconds']:.1f} | {tr['peak_rss_mb']:.0f} |")
    m = {k: mean(r[k]["p_at_10d"] for r in rows) for k in ("per_dump", "combined_in_feed", "combined_anywhere")}
    per = [t[r["dump"]] for r in rows]
    lines.append(f"| **mean** | | {m['per_dump']:.3f} | {m['combined_in_feed']:.3f} | "
                 f"{m['combined_in_feed'] - m['per_dump']:+.3f} | {m['combined_anywhere']:.3f} | | | "
                 f"sum {sum(x['seconds'] for x in per):.1f} | max {max(x['peak_rss_mb'] for x in per):.0f} |")
    c = t["combined"]
    lines += ["", f"Combined model: {c['shows']} shows, trained in {c['seconds']:.1f} s ({c['cpu_s']:.1f} CPU s), "
              f"peak RSS {c['peak_rss_mb']:.0f} MB; the {len(per)} per-dump models: {sum(x['seconds'] for x in per):.1f} s "
              f"in all ({sum(x['cpu_s'] for x in per):.1f} CPU s), the largest peak {max(x['peak_rss_mb'] for x in per):.0f} MB "
              f"(each process holds about {c['rss_after_imports_mb']:.0f} MB before training: Python, torch, the pipeline). "
              f"One thread each.",
              "", "P@10d of the same test titles (EVALUATION.md protocol, seed %d; every training copy without the "
              "categories of any dump's test titles). *combined, in feed*: the combined model's answers restricted to "
              "titles airing on the query's dump's channels; *anywhere*: unrestricted (other feeds' titles score as "
              "titles the dump never aired). difference = combined in feed minus per dump, paired over the queries, "
              "± its standard error." % out["seed"]]
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        out, threads, *dumps = sys.argv[2:]
        print(json.dumps(child_train(Path(out), int(threads), [Path(d) for d in dumps])))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dumps", type=Path, default=DUMPS)
    ap.add_argument("--seed", type=int, default=7, help="protocol split seed (7: bench/quality.py's)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each training (default 1)")
    ap.add_argument("--out", type=Path, default=RESULTS / "feeds-model.json")
    args = ap.parse_args()
    import torch
    from epgembed.config import Config
    t0, load = time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="feeds-model-") as work:
        result = run(args, Path(work))
    out = {"command": " ".join(["python bench/feeds.py", *sys.argv[1:]]), "seed": args.seed, "threads": args.threads,
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "wall_seconds": round(time.perf_counter() - t0, 1),
           "machine": {"cpus": os.cpu_count(), "loadavg_at_start": load, "loadavg_at_end": os.getloadavg(),
                       "python": platform.python_version(), "torch": torch.__version__},
           "config": Config().to_dict(), **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    args.out.with_suffix(".md").write_text(f"# One model or many (bench/feeds.py)\n\n{markdown(out)}\n\n"
                                           f"Command: `{out['command']}` ({out['wall_seconds']:.0f} s)\n")
    print(markdown(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
