"""`make bench-query`: in-process query times on the model of every shared dump (issue 23's
speed targets): `epgembed train` of all of ../shared/data/epg (its wall time: target 35 s),
then the library's answers, one answer per series, k = 10:

- by id (`related_to_id`: the neighbour table, grouped into series): target p99 < 1 ms;
- a catalog title by text (`related`: the key lookup, then the same);
- a title never seen (`related`: tokens and n-grams, the search, feedback, the grouping):
  an answer list of 10 series, target p99 < 5 ms;
- a never-seen title with a schedule context, and a whole programme.

Writes bench/results/query_speed.json with the command.

    python bench/query_speed.py [--dumps DIR] [--queries 2000] [--model DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # as a service worker thread runs it, before numpy loads
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def percentiles(times: list[float]) -> dict:
    ms = np.asarray(times) * 1000
    return {"n": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 4),
            "p99_ms": round(float(np.percentile(ms, 99)), 4), "max_ms": round(float(ms.max()), 4)}


def timed(calls) -> dict:
    for call in calls[:50]:          # warm caches (the first calls fill numpy's and the catalog's)
        call()
    times = []
    for call in calls:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return percentiles(times)


def unseen_titles(model, n: int, rng: random.Random) -> list[str]:
    """Titles the catalog does not have: two words of two different catalog titles."""
    words = [w for k in model.catalog.keys for w in k.split() if w.isalpha() and len(w) > 3]
    out = []
    while len(out) < n:
        t = f"{rng.choice(words).title()} {rng.choice(words).title()} Tonight"
        if model.resolve(t) is None:
            out.append(t)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dumps", default=str(ROOT.parent / "shared" / "data" / "epg"))
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--model", help="time this model instead of training one on the dumps")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "query_speed.json"))
    args = ap.parse_args(argv)
    from epgembed.query.load import load_model
    from epgembed.query.requests import Context, Options, ProgrammeQuery
    result: dict = {"command": " ".join(["python"] + sys.argv)}
    with tempfile.TemporaryDirectory(prefix="epgembed-query-") as tmp:
        model_dir = Path(args.model) if args.model else Path(tmp) / "model"
        if not args.model:
            dumps = sorted(str(p) for p in Path(args.dumps).glob("*.xml*"))
            t0 = time.perf_counter()
            subprocess.run([str(Path(sys.executable).parent / "epgembed"), "train", *dumps, "--out",
                            str(model_dir), "--quiet"], check=True)
            result["train_all_dumps_s"] = round(time.perf_counter() - t0, 2)
            print(f"epgembed train on {len(dumps)} dumps: {result['train_all_dumps_s']} s (target 35 s)")
        model = load_model(model_dir)
        rng = random.Random(7)
        ids = [rng.randrange(len(model)) for _ in range(args.queries)]
        known = [model.catalog.shows[i].title for i in ids]
        unseen = unseen_titles(model, args.queries, rng)
        channels = sorted({c for i in ids[:200] for c in model.catalog.shows[i].channels})
        programmes = [ProgrammeQuery(title=t, channel=rng.choice(channels), start="202601101930", duration=45,
                                     desc="A new programme of the night, with its story and its guests.")
                      for t in unseen]
        result["model"] = {"shows": len(model), "version": model.version}
        ten = Options(k=10)
        result["by_id"] = timed([lambda i=i: model.related_to_id(i, ten) for i in ids])
        result["by_known_title"] = timed([lambda t=t: model.related(t, ten) for t in known])
        result["by_unseen_title"] = timed([lambda t=t: model.related(t, ten) for t in unseen])
        result["by_unseen_title_with_context"] = timed(
            [lambda t=t, c=c: model.related(t, ten, context=Context(channel=c, start="202601101930", minutes=45))
             for t, c in zip(unseen, [p.channel for p in programmes])])
        result["by_programme"] = timed([lambda p=p: model.related_programme(p, ten) for p in programmes])
    result["targets"] = {"by_id_p99_ms": 1.0, "ten_series_p99_ms": 5.0, "train_all_dumps_s": 35.0}
    result["machine"] = {"cores": os.cpu_count(), "python": platform.python_version(),
                         "loadavg": [round(x, 2) for x in os.getloadavg()]}
    for name in ("by_id", "by_known_title", "by_unseen_title", "by_unseen_title_with_context", "by_programme"):
        r = result[name]
        print(f"{name:32s} p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  (n={r['n']})")
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
