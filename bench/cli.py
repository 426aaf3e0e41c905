"""`make bench-cli`: how long the command line takes a person, in fresh processes.

Every command 5 times in a new process: `epgembed --help`, every `SUBCOMMAND --help`, and
`related` / `info` / `inspect` on the shared-data model (all of ../shared/data/epg, trained
once into bench/cache/ by bench/serve.py's `bench_model`). Targets (issue 17): --help <= 0.3 s,
queries <= 0.6 s. Writes bench/results/cli.json.

    python bench/cli.py [--runs 5]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import DUMPS, REPO, bench_model  # noqa: E402  (the shared-data model, cached)

SUBCOMMANDS = ["train", "related", "info", "evaluate", "inspect", "outliers", "nightly",
               "versions", "rollback", "publish", "serve"]


def timed(argv: list[str], runs: int) -> dict:
    """Wall seconds (median, max) and CPU seconds of the process (median: the steadier
    figure on a shared machine, where other work stretches the wall time)."""
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr[-500:]}")
    return {"median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3),
            "cpu_median_s": round(statistics.median(cpu), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "cli.json"))
    args = ap.parse_args()
    exe = str(Path(sys.executable).with_name("epgembed"))
    model = str(bench_model(sorted(DUMPS.glob("*.xml*"))))
    cases = {"--help": [exe, "--help"]}
    cases.update({f"{c} --help": [exe, c, "--help"] for c in SUBCOMMANDS})
    cases.update({"related": [exe, "related", model, "--title", "Tatort", "-k", "10"],
                  "related (unseen)": [exe, "related", model, "--title", "Mordfall im Zürcher Hafen"],
                  "info": [exe, "info", model],
                  "inspect": [exe, "inspect", model, "--title", "Tatort"]})
    load_before = os.getloadavg()
    rows = {name: timed(argv, args.runs) for name, argv in cases.items()}
    for name, r in rows.items():
        print(f"{name:22s} median {r['median_s']:.3f} s  max {r['max_s']:.3f} s  "
              f"cpu {r['cpu_median_s']:.3f} s")
    helps = [r["median_s"] for n, r in rows.items() if n.endswith("--help")]
    queries = [rows[n]["median_s"] for n in ("related", "related (unseen)", "info", "inspect")]
    summary = {"help_max_median_s": max(helps), "query_max_median_s": max(queries),
               "help_target_s": 0.3, "query_target_s": 0.6}
    print(json.dumps(summary))
    Path(args.out).write_text(json.dumps({
        "command": " ".join(["python", "bench/cli.py", *sys.argv[1:]]), "runs": args.runs,
        "model": model, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": platform.platform(), "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "results": rows, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
