"""`make bench-refresh`: `epgembed refresh` (issue 24) against its targets.

- quality: the cold-start protocol of EVALUATION.md on every shared dump: train on
  train_cold, refresh with the protocol's train.xml (the test titles' categories removed),
  query each test title by its catalog id (its most frequent raw spelling resolved to an id:
  the title's row of the new neighbour table). Target: P@10d >= 0.90 x the same titles'
  P@10d when trained on train.xml by the standard protocol.
- daily: the shared daily feed (de_magenta): a nightly of the first night into a root, then
  `epgembed refresh` (a subprocess: wall from start to published) of 200 titles of the second
  night that the model lacks (target <= 5 s), of the whole second night (its new titles are
  23% of a one-night catalog: --max-share 0.5), and the nightly of the second night (the
  ratio); of the titles the whole night adds, the share found in other titles' answers.
- synth: a 100k-title synthetic catalog (epgembed/gen/synth.py, cached in bench/cache/refresh):
  a model trained on it without 200 titles, then the refresh of those 200 (target <= 60 s),
  and the disk one refresh costs (here, and where reflinks share unchanged blocks).
- disk_1m: the disk one refresh costs at 1M titles, computed from the files of a 1M model
  (bench/results/index-search-1m.json: a model built by bench/unseen.py) and the 100k run.

    python bench/refresh.py [--only quality,daily,synth] [--dumps DIR] [--out bench/results/refresh.json]
"""
from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from epgembed import registry
from epgembed.artifact.extend import UNCHANGED
from epgembed.build.ingest.additions import added_shows
from epgembed.build.ingest.epg import read_programmes
from epgembed.build.pipeline import train_model
from epgembed.config import Config
from epgembed.eval.baselines import EpgembedSystem
from epgembed.eval.coldstart import new_series, write_cold_dump
from epgembed.eval.evaluate import ASKED, evaluate_split, prepared_splits, score_query
from epgembed.eval.score import mean_scores
from epgembed.eval.xmltv import DROP, KEEP, iter_programmes, write_dump
from epgembed.gen.synth import SynthConfig, write_synth
from epgembed.nightly.gates import NightlyConfig
from epgembed.nightly.refresh import RefreshConfig, run_refresh
from epgembed.nightly.run import run_nightly
from epgembed.query.load import load_model
from epgembed.query.requests import Options
from epgembed.text.normalize import title_forms

REPO = Path(__file__).resolve().parent.parent
DUMPS = REPO.parent / "shared" / "data" / "epg"
DAILY = REPO.parent / "shared" / "data" / "epg-daily" / "de_magenta"
CACHE = REPO / "bench" / "cache" / "refresh"
EPGEMBED = Path(sys.executable).parent / "epgembed"
TARGETS = {"p_at_10d_ratio": 0.90, "daily_200_s": 5.0, "synth_100k_s": 60.0}


# ---------------------------------------------------------------- quality
def refreshed_answers(model, split) -> dict:
    """Each test key's answers by id (its query resolved to a catalog id), [] when the
    refreshed catalog has no id for it; and whether its id was added by the refresh."""
    first = model.manifest.first_refreshed()
    out = {}
    for key in split.test_keys:
        i = model.resolve(split.queries[key])
        answers = [h.title for h in model.related_to_id(i, Options(k=ASKED)).related] if i is not None else []
        out[key] = (answers, i is not None and i >= first)
    return out


def quality(paths: list[Path], seed: int, cfg: Config) -> list[dict]:
    rows = []
    with prepared_splits(paths, seed) as splits:
        for split, dump_dir, train_dump in splits:
            warm: dict = {}
            evaluate_split(split, EpgembedSystem(cfg), train_dump, dump_dir / "warm", per_query=warm)
            cold_dump = write_cold_dump(split, dump_dir / "train_cold.xml")
            new = new_series(split, cold_dump)
            root = dump_dir / "root"
            train_model([cold_dump], dump_dir / "cold-model", cfg, threads=1)
            registry.publish(root, dump_dir / "cold-model")
            t0 = time.perf_counter()
            result = run_refresh([train_dump], root, RefreshConfig(max_share=1.0))   # train.xml: +20% and more
            seconds = time.perf_counter() - t0
            model = load_model(registry.current_dir(root))
            answers = refreshed_answers(model, split)
            scores = {key: score_query(split, key, a) for key, (a, _) in answers.items()}
            row = {"dump": dump_dir.name, "n_test": len(scores), "n_new_series": len(new),
                   "test_titles_added": sum(added for _, added in answers.values()),
                   "test_titles_without_id": sum(1 for a, added in answers.values() if not a and not added),
                   "titles_added": len(result.added), "cold_catalog": model.manifest.refresh.first_added,
                   "refresh_s": round(seconds, 2)}
            for part, keys in (("all", list(scores)), ("new_series", [k for k in scores if k in new])):
                r, w = mean_scores([scores[k] for k in keys]), mean_scores([warm[k] for k in keys])
                row[part] = {"refresh_p_at_10d": r["p_at_10d"], "warm_p_at_10d": w["p_at_10d"],
                             "ratio": round(r["p_at_10d"] / w["p_at_10d"], 4) if w["p_at_10d"] else None,
                             "refresh_p_at_10x": r["p_at_10x"], "warm_p_at_10x": w["p_at_10x"]}
            print(f"quality {row['dump']}: P@10d refreshed {row['all']['refresh_p_at_10d']:.3f} vs warm "
                  f"{row['all']['warm_p_at_10d']:.3f} (x{row['all']['ratio']}), {row['test_titles_added']} "
                  f"of {row['n_test']} test titles added, +{row['titles_added']} titles, {seconds:.1f} s", flush=True)
            rows.append(row)
    return rows


# ---------------------------------------------------------------- timing a command
def timed(args: list[str]) -> tuple[float, dict | str, int]:
    """Wall seconds of an epgembed command in a fresh process (its start to its exit), its
    --json output (or its last output line), its exit code."""
    t0 = time.perf_counter()
    done = subprocess.run([str(EPGEMBED), *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    out = done.stdout
    body = out[out.index("\n{") + 1:] if "\n{" in out else None
    return round(wall, 3), json.loads(body) if body else (out.strip().splitlines() or [done.stderr])[-1], done.returncode


def copy_root(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def dump_of_keys(src: Path, out: Path, keys: set[str], keep: bool = True) -> Path:
    """`src` with only the programmes whose title's key is in `keys` (keep) or without them."""
    return write_dump(src, out, lambda t: (KEEP if (title_forms(t).key in keys) == keep else DROP))


def answered_by_others(model, first: int) -> float:
    """Share of the titles from id `first` on that are in another title's first 10 answers."""
    found = {h.id for i in range(len(model)) for h in model.related_to_id(i, Options(k=10)).related if h.id >= first}
    return round(len(found) / max(1, len(model) - first), 4)


def daily(work: Path, cfg: Config) -> dict:
    first, second = sorted(DAILY.glob("*.xml.gz"))[:2]
    base = work / "daily-root"
    night = run_nightly([first], base, NightlyConfig(), cfg)
    model = load_model(registry.current_dir(base))
    lacking = added_shows(model.catalog, read_programmes([second]), model.config)
    chosen = random.Random(0).sample(lacking, min(200, len(lacking)))
    add200 = dump_of_keys(second, work / "add200.xml", {k for s in chosen for k in (s.key, *s.aliases)})
    out = {"base": {"night": first.name, "shows": len(model), "nightly_s": night.report["timings"]["total_s"]},
           "second_night_lacks": len(lacking)}
    # the whole second night adds more than the default 20% to a one-night catalog: refused
    # (exit 3) with the default; measured with the share raised
    for name, dump, share in (("refresh_200", add200, 0.2), ("refresh_whole_night", second, 0.5)):
        root = copy_root(base, work / name)
        wall, report, code = timed(["refresh", "--dumps", str(dump), "--models-root", str(root), "--json",
                                    "--max-share", str(share)])
        out[name] = {"wall_s": wall, "exit_code": code, "added": len(report["added"]), "max_share": share,
                     "timings": report["timings"], "index_seconds": report.get("seconds"),
                     "rows_changed": report.get("rows_changed")}
        if name == "refresh_whole_night":
            new = load_model(registry.current_dir(root))
            out[name]["added_found_in_others_answers"] = answered_by_others(new, new.manifest.first_refreshed())
        print(f"daily {name}: {wall:.2f} s wall, +{out[name]['added']} titles", flush=True)
    wall, line, code = timed(["nightly", "--dumps", str(second), "--models-root", str(copy_root(base, work / "nightly"))])
    out["nightly_second_night"] = {"wall_s": wall, "exit_code": code, "summary": line}
    out["ratio_refresh_200_to_nightly"] = round(out["refresh_200"]["wall_s"] / wall, 4)
    out["ratio_whole_night_to_nightly"] = round(out["refresh_whole_night"]["wall_s"] / wall, 4)
    print(f"daily nightly of the same night: {wall:.2f} s wall", flush=True)
    return out


# ---------------------------------------------------------------- 100k synthetic
def held_out_keys(dump: Path, n: int) -> set[str]:
    """The n keys of the dump's titles with the smallest sha1 (a seeded-like, fixed choice)."""
    keys = {title_forms(t).key for t, _ in iter_programmes(dump)}
    return set(heapq.nsmallest(n, keys, key=lambda k: hashlib.sha1(k.encode()).hexdigest()))


def synth(work: Path, cfg: Config, shows: int = 100_000, n_new: int = 200) -> dict:
    CACHE.mkdir(parents=True, exist_ok=True)
    full, base_dump, add = (CACHE / f"synth-{shows}.xml.gz", CACHE / f"base-{shows}.xml.gz",
                            CACHE / f"add{n_new}-{shows}.xml")
    model_dir = CACHE / f"model-{shows}"
    if not (model_dir / "manifest.json").is_file():
        write_synth(full, SynthConfig(shows=shows, seed=0))
        held = held_out_keys(full, n_new)
        dump_of_keys(full, base_dump, held, keep=False)
        dump_of_keys(full, add, held)
        t0 = time.perf_counter()
        train_model([base_dump], model_dir, cfg, threads=1)
        (CACHE / f"model-{shows}.train_s").write_text(f"{time.perf_counter() - t0:.1f}\n")
    root = work / "synth-root"
    registry.publish(root, model_dir, move=False)
    before = registry.current_dir(root)
    wall, report, code = timed(["refresh", "--dumps", str(add), "--models-root", str(root), "--json"])
    after = registry.current_dir(root)
    files = {f.name: f.stat() for f in after.iterdir()}
    out = {"shows": load_model(before, verify=False).manifest.n_shows, "wall_s": wall, "exit_code": code,
           "added": len(report["added"]), "timings": report["timings"], "index_seconds": report.get("seconds"),
           "rows_changed": report.get("rows_changed"), "cloned": report.get("cloned"),
           "train_model_s": float((CACHE / f"model-{shows}.train_s").read_text()),
           "version_bytes": sum(s.st_size for s in files.values()),
           "version_allocated_bytes": sum(s.st_blocks * 512 for s in files.values()),
           "written_block_bytes": report["written"], "file_bytes": {n: s.st_size for n, s in files.items()}}
    # where clone_file shares blocks (reflinks) the unchanged files and centroids cost nothing
    shared = set(UNCHANGED) | {"centroids.npy"}
    out["reflink_bytes"] = sum(b for f, b in report["written"].items() if f not in shared) \
        + files["manifest.json"].st_size
    print(f"synth {out['shows']:,}: {wall:.2f} s wall, +{out['added']} titles, version "
          f"{out['version_bytes'] / 2**20:.0f} MB, with reflinks {out['reflink_bytes'] / 2**20:.0f} MB", flush=True)
    return out


def disk_1m(at_100k: dict | None) -> dict:
    """One refresh at 1M titles, from the file sizes of a 1M model (index-search-1m.json):
    a full copy of every file without reflinks; with them, what is written again (index.ann,
    the cluster-ordered vectors, order, bounds) plus the appended rows and, for each old row
    of the neighbour table a new title enters, one block of each of its two files (the rows
    changed by 200 new titles measured at 100k: about K per new title, not growing with the
    catalog)."""
    src = REPO / "bench" / "results" / "index-search-1m.json"
    runs = json.loads(src.read_text())
    files = next(r["file_bytes"] for r in _walk(runs) if isinstance(r, dict) and "file_bytes" in r
                 and "cluster_vectors.npy" in r["file_bytes"])
    shows = files["vectors.npy"] // 400
    rewritten = sum(files[f] for f in ("index.ann", "cluster_vectors.npy", "order.npy", "bounds.npy"))
    rows = (at_100k or {}).get("rows_changed") or 20_000
    appended = 200 * (400 * 2 + 400 + 700)       # vectors, table rows, ~700 B of catalog.jsonl a title
    return {"from": str(src.relative_to(REPO)), "shows": shows, "version_bytes": sum(files.values()),
            "full_copy_bytes": sum(files.values()),
            "reflink_bytes": rewritten + appended + rows * 2 * 4096, "rows_changed_assumed": rows}


def _walk(x):
    yield x
    for v in (x.values() if isinstance(x, dict) else x if isinstance(x, list) else ()):
        yield from _walk(v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="quality,daily,synth")
    ap.add_argument("--dumps", default=str(DUMPS))
    ap.add_argument("--seed", type=int, default=7, help="protocol split seed (bench/quality.py's)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "refresh.json"))
    args = ap.parse_args(argv)
    parts, cfg, t0 = set(args.only.split(",")), Config(), time.perf_counter()
    out: dict = {"command": " ".join(["python"] + sys.argv), "targets": TARGETS,
                 "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                             "filesystem": subprocess.run(["stat", "-f", "-c", "%T", str(REPO)], capture_output=True,
                                                          text=True).stdout.strip()}}
    with tempfile.TemporaryDirectory(prefix="epgembed-refresh-") as tmp:
        if "quality" in parts:
            out["quality"] = quality(sorted(Path(args.dumps).glob("*.xml*")), args.seed, cfg)
            ratios = [r["all"]["ratio"] for r in out["quality"]]
            out["quality_min_ratio"] = min(ratios)
        if "daily" in parts:
            out["daily"] = daily(Path(tmp), cfg)
        if "synth" in parts:
            out["synth_100k"] = synth(Path(tmp), cfg)
        out["disk_1m"] = disk_1m(out.get("synth_100k"))
    out["wall_seconds"] = round(time.perf_counter() - t0, 1)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in out if k not in ("quality",)}, indent=1)[:4000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
