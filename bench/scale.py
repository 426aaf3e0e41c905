"""`make bench-scale`: how ingest, tokenizer, training, model and index grow with the catalog.

    python bench/scale.py [--sizes 10000,100000,1000000 | --quick] [--epochs 2] [--threads 1]

For each size a synthetic guide (epgembed.gen.synth, seed 0) is generated once into
bench/cache/synth/ (gitignored). Every measured stage runs in its own child process, so
its peak RSS is its own (the kernel's VmHWM of the child, read by the child at each
checkpoint, and ru_maxrss of the whole child from wait4):

  prepare   read the dump + build the catalog (ingest), then train the tokenizer and encode
            every show (epgembed.build.pipeline.prepare), with the peak RSS after each
  train     epgembed.build.pipeline.train_model(..., epochs=E): the whole library run, from the
            dump to a complete model directory; per-epoch seconds and examples/s from its
            history; its peak RSS; the model directory's size on disk
  index     epgembed.build.index.build.build_index over the model's vectors.npy with the default
            IndexConfig: build seconds, peak RSS, index size

Writes bench/results/scale.json (command, config, machine, versions, every figure) and
scale.md (the table, and per-show growth ratios between consecutive sizes).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import msgspec

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "bench" / "cache"
RESULTS = REPO / "bench" / "results"
GiB = 1 << 30


def model_dir(shows: int) -> Path:
    return CACHE / "scale" / f"model-{shows}"


def synth_path(shows: int, seed: int = 0, structure: str = "guide") -> Path:
    """The cached synthetic dump of `shows` shows (`structure` "guide", or "flat": the guide
    of before issue 27); generated (in a child) when missing. Named by the generator's source."""
    digest = hashlib.sha256()
    for src in sorted((REPO / "epgembed" / "gen").glob("synth*.py")):
        digest.update(src.read_bytes())
    kind = f"s{seed}" if structure == "guide" else f"s{seed}-{structure}"
    path = CACHE / "synth" / f"synth-{shows}-{kind}-{digest.hexdigest()[:8]}.xml.gz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob(f"synth-{shows}-{kind}-*.xml.gz"):
            if old.name.count("-") == path.name.count("-"):
                old.unlink()
        tmp = path.parent / f"tmp-{path.name}"
        print(f"generating {path.name} ...", flush=True)
        subprocess.run([sys.executable, "-m", "epgembed.gen.synth", str(tmp), "--shows", str(shows),
                        "--seed", str(seed), "--structure", structure], check=True)
        tmp.rename(path)
    return path


# ---------------------------------------------------------------------------- children
def _hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_prepare(dump: Path, threads: int) -> dict:
    import torch
    torch.set_num_threads(threads)
    from epgembed.build.ingest.catalog_build import build_catalog, iter_titles
    from epgembed.config import Config
    from epgembed.build.ingest.epg import read_programmes, ReadReport
    from epgembed.text.tokenize import Tokenizer
    cfg = Config()
    out = {"rss_after_imports_mb": _hwm_mb()}
    t0 = time.perf_counter()
    report = ReadReport()
    catalog = build_catalog(read_programmes([dump], report=report), cfg.catalog)
    out.update(ingest_s=time.perf_counter() - t0, programmes=report.programmes, shows=len(catalog),
               peak_rss_ingest_mb=_hwm_mb())
    t0 = time.perf_counter()
    contexts = [s.context for s in catalog.shows]
    tok = Tokenizer.train(iter_titles(catalog), cfg.tokenizer, contexts)
    out["tokenizer_train_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids, _ = tok.encode_items([s.key for s in catalog.shows], contexts)
    out.update(tokenizer_encode_s=time.perf_counter() - t0, vocab=tok.vocab_size,
               token_array_shape=list(ids.shape), peak_rss_prepare_mb=_hwm_mb())
    return out


def child_train(dump: Path, out_dir: Path, epochs: int, threads: int) -> dict:
    from epgembed.config import Config
    from epgembed.build.pipeline import train_model
    cfg = Config().replace(train={"epochs": epochs})
    t0 = time.perf_counter()
    saved: dict = {}
    manifest = train_model([dump], out_dir, cfg, threads=threads, timings=saved)
    total = time.perf_counter() - t0
    history = json.loads((out_dir / "history.json").read_text())
    files = {f: m.bytes for f, m in manifest.files.items()}
    return {"train_model_s": total, "timings": {**manifest.training.timings, **saved},
            "epochs": [{k: h.get(k) for k in ("epoch", "seconds", "examples", "examples_per_s", "val_p_at_10")}
                       for h in history],
            "vocab": manifest.vocab_size, "shows": manifest.n_shows,
            "neighbour_table": msgspec.to_builtins(manifest.neighbour_table),
            "model_bytes": sum(files.values()), "file_bytes": files, "peak_rss_mb": _hwm_mb()}


def child_index(model: Path) -> dict:
    import numpy as np
    from epgembed.config import IndexConfig
    from epgembed.build.index.build import build_index
    cfg = IndexConfig()
    vectors = np.load(model / "vectors.npy")
    base = _hwm_mb()
    path = model.parent / f".index-bench-{model.name}.ann"
    t0 = time.perf_counter()
    build_index(vectors, cfg, path)
    seconds = time.perf_counter() - t0
    size = path.stat().st_size
    path.unlink()
    return {"index_build_s": seconds, "index_bytes": size, "n_trees": cfg.n_trees,
            "vectors_bytes": int(vectors.nbytes), "rss_with_vectors_mb": base, "peak_rss_mb": _hwm_mb()}


def run_child(args: list[str], nice: int) -> dict:
    """Run `scale.py --child ...` niced; its JSON result plus ru_maxrss from wait4."""
    cmd = ["nice", "-n", str(nice), sys.executable, __file__, "--child", *args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"child {args[0]} failed ({proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(child_wall_s=time.perf_counter() - t0, child_maxrss_mb=usage.ru_maxrss / 1024,
                  child_cpu_s=usage.ru_utime + usage.ru_stime)
    return result


# ---------------------------------------------------------------------------- report
def measure(shows: int, args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    dump = synth_path(shows)
    row: dict = {"size": shows, "dump": dump.name, "dump_bytes": dump.stat().st_size,
                 "generate_or_cache_s": time.perf_counter() - t0}
    print(f"[{shows:,}] prepare ...", flush=True)
    row["prepare"] = run_child(["prepare", str(dump), str(args.threads)], args.nice)
    print(f"[{shows:,}] train_model ({args.epochs} epochs) ...", flush=True)
    out = model_dir(shows)
    out.parent.mkdir(parents=True, exist_ok=True)
    row["train"] = run_child(["train", str(dump), str(out), str(args.epochs), str(args.threads)], args.nice)
    print(f"[{shows:,}] index ...", flush=True)
    row["index"] = run_child(["index", str(out)], args.nice)
    print(json.dumps(summary(row)), flush=True)
    return row


def summary(row: dict) -> dict:
    p, t, i = row["prepare"], row["train"], row["index"]
    ep = [e for e in t["epochs"] if e["seconds"]]
    return {"shows": p["shows"], "programmes": p["programmes"], "ingest_s": p["ingest_s"],
            "tokenizer_s": p["tokenizer_train_s"] + p["tokenizer_encode_s"],
            "prepare_peak_rss_mb": p["peak_rss_prepare_mb"],
            "epoch_s": sum(e["seconds"] for e in ep) / max(len(ep), 1),
            "examples_per_epoch": ep[0]["examples"] if ep else 0,
            "examples_per_s": sum(e["examples_per_s"] for e in ep) / max(len(ep), 1),
            "train_model_s": t["train_model_s"], "train_model_peak_rss_mb": t["peak_rss_mb"],
            "model_mb": t["model_bytes"] / 2**20, "index_build_s": i["index_build_s"],
            "index_peak_rss_mb": i["peak_rss_mb"], "index_mb": i["index_bytes"] / 2**20,
            "vocab": t["vocab"]}


COLUMNS = [("shows", "shows", "{:,}"), ("programmes", "programmes", "{:,}"), ("ingest_s", "ingest s", "{:.1f}"),
           ("tokenizer_s", "tokenizer s", "{:.1f}"), ("prepare_peak_rss_mb", "prepare peak MB", "{:.0f}"),
           ("epoch_s", "epoch s", "{:.1f}"), ("examples_per_s", "examples/s", "{:,.0f}"),
           ("train_model_s", "train_model s", "{:.1f}"),
           ("train_model_peak_rss_mb", "train_model peak MB", "{:.0f}"), ("model_mb", "model MB", "{:.1f}"),
           ("index_build_s", "index build s", "{:.1f}"), ("index_peak_rss_mb", "index peak MB", "{:.0f}"),
           ("index_mb", "index MB", "{:.1f}")]
GROWTH = ["ingest_s", "tokenizer_s", "prepare_peak_rss_mb", "epoch_s", "train_model_s",
          "train_model_peak_rss_mb", "model_mb", "index_build_s", "index_mb"]


def table(rows: list[dict]) -> str:
    head = "| " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    lines = [head, "|" + "---:|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(f.format(r[k]) for k, _, f in COLUMNS) + " |")
    if len(rows) > 1:
        lines += ["", "Growth per show between consecutive sizes (1.0 = linear, < 1 better than linear; "
                  "memory figures include the ~0.2-0.3 GB fixed cost of Python + torch):", "",
                  "| from -> to | " + " | ".join(GROWTH) + " |", "|---|" + "---:|" * len(GROWTH)]
        for a, b in zip(rows, rows[1:]):
            f = b["shows"] / a["shows"]
            lines.append(f"| {a['shows']:,} -> {b['shows']:,} | " +
                         " | ".join(f"{b[k] / a[k] / f:.2f}" if a[k] else "-" for k in GROWTH) + " |")
    return "\n".join(lines)


def versions() -> dict:
    import numpy
    import sentencepiece
    import torch
    from importlib.metadata import version
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "sentencepiece": sentencepiece.__version__, "annoy": version("annoy"), "lxml": version("lxml")}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        stage, rest = sys.argv[2], sys.argv[3:]
        if stage == "prepare":
            out = child_prepare(Path(rest[0]), int(rest[1]))
        elif stage == "train":
            out = child_train(Path(rest[0]), Path(rest[1]), int(rest[2]), int(rest[3]))
        else:
            out = child_index(Path(rest[0]))
        print(json.dumps(out))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--quick", action="store_true", help="10k and 100k only")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads in the children")
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    args = ap.parse_args()
    sizes = [10_000, 100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    load_start = os.getloadavg()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rows = [measure(n, args) for n in sizes]
    sums = [summary(r) for r in rows]
    from epgembed.config import Config
    from epgembed.gen.synth import SynthConfig
    report = {
        "command": "python bench/scale.py " + " ".join(sys.argv[1:]),
        "date": started, "config": Config().replace(train={"epochs": args.epochs}).to_dict(),
        "synth": {"seed": 0, "defaults": SynthConfig().__dict__},
        "machine": {"cpus": os.cpu_count(), "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB, 1),
                    "loadavg_at_start": load_start, "loadavg_at_end": os.getloadavg(),
                    "note": "shared 2-core machine; children run under nice with --threads torch threads"},
        "versions": versions(), "args": vars(args) | {"out": str(args.out)},
        "summary": sums, "runs": rows,
    }
    text = table(sums)
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    md = args.out.with_suffix(".md")
    md.write_text(f"# Scale ({started}, `{report['command']}`)\n\nSynthetic guides (epgembed.gen.synth, seed 0), "
                  f"default config, {args.epochs} epochs, {args.threads} torch thread(s), "
                  f"{os.cpu_count()} cores shared. Figures from {args.out.name}.\n\n{text}\n")
    print(f"-> {args.out}, {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
