"""Nightly retraining: ingest -> train -> evaluate -> gate -> publish atomically -> prune.

    result = run_nightly(["tonight.xml.gz"], "ROOT", NightlyConfig(), Config())
    result.exit_code   # 0 published (or unchanged), 3 gated (nothing published), 2 error

One run, under ROOT/.lock:
 1. clean hidden leftovers of crashed runs; read tonight's dumps; date the night;
 2. input gate: parse failures, no categories, far fewer programmes / shows / labelled
    programmes / usable categories than the median of recent nights, a date far outside
    the recent nights', renamed category names -> gated before any training;
 3. merge tonight with the retained history (ROOT/history, the last `history_nights`
    received), gate on labels that no longer agree and on a large catalog drop, strip the
    categories of the held-out titles, build catalog + tokenizer, warm-start from the
    current model's token vectors (matched by token string) and train;
 4. write the model completely (bundle.save_model: fsynced, renamed into a hidden
    ROOT/versions/.build-* folder), load it (validation), evaluate it and the current
    version on tonight's held-out split, measure neighbour stability and catalog changes;
 5. quality gate; stage tonight's history night (fsynced, not yet counted); then
    registry.publish (validates by loading again, renames into versions/<version>, swaps
    `current` with one atomic rename); commit the night (a failure puts `current` back:
    the version and its night are published together or not at all); prune versions
    (never the current) and nights past the retained count;
 6. JSON report in ROOT/reports/ (every run) and versions/<version>/report.json.

A crash at any point leaves `current` on a complete version; hidden folders are removed by
the next run. `force` accepts a night that only the consistency gates (dates, categories,
catalog drop) refuse; the reasons are kept in the report under "forced". The CLI is in nightly_cli.py, the report in nightly_report.py.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from epgembed.nightly import history

from epgembed.artifact import registry
from epgembed.artifact.bundle import ModelError, load_model, read_manifest, sha256_file
from epgembed.config import Config
from epgembed.ingest.epg import Programme, ReadReport, expand_paths, read_programmes
from epgembed.fsutil import utc
from epgembed.nightly.gates import (NightlyConfig, catalog_reasons, consistency_reasons, input_reasons,
                                    quality_reasons)
from epgembed.nightly.quality import (catalog_changes, evaluate_model, holdout_split, neighbour_stability,
                                      random_answers, strip_holdout, warm_start_table)
from epgembed.nightly.report import file_info, medians, new_report, summary_line, write_reports
from epgembed.pipeline import Prepared, fit, prepare_programmes, write_model
from epgembed.query.related import RelatedModel

EXIT_PUBLISHED, EXIT_ERROR, EXIT_GATED = 0, 2, 3


@dataclass
class NightlyResult:
    exit_code: int
    status: str                     # "published" | "gated" | "error"
    report: dict
    report_path: Path | None = None
    summary: str = ""


class Unchanged(Exception):
    """Tonight's inputs and settings are those the current version was built from: a
    retry publishes nothing (exit 0) unless forced."""


class Gated(Exception):
    """The night is refused; nothing is published."""

    def __init__(self, stage: str, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.stage, self.reasons = stage, reasons


@dataclass
class _Clock:
    """Wall time per stage, and the process's CPU time per stage (all its threads: torch,
    BLAS); on a shared machine the CPU figure is the steadier of the two."""
    timings: dict = field(default_factory=dict)
    cpu: dict = field(default_factory=dict)
    t0: float = field(default_factory=time.perf_counter)
    c0: float = field(default_factory=time.process_time)

    def lap(self, name: str) -> None:
        now, cnow = time.perf_counter(), time.process_time()
        self.timings[name] = round(self.timings.get(name, 0.0) + now - self.t0, 3)
        self.cpu[name] = round(self.cpu.get(name, 0.0) + cnow - self.c0, 3)
        self.t0, self.c0 = now, cnow


# ---------------------------------------------------------------- stages
def read_tonight(dumps: list[Path]) -> tuple[list[Programme], ReadReport, list[str]]:
    """Tonight's programmes (duplicate airings merged) and the files that failed to parse."""
    report = ReadReport()
    programmes = history.merge([read_programmes(dumps, skip_bad_input=True, report=report)])
    errors = [f"{p}:{ln}: {why}" if ln else f"{p}: {why}" for p, ln, why in report.file_errors]
    return programmes, report, errors


def tonight_date(programmes: list[Programme], files: list[Path], ncfg: NightlyConfig) -> date:
    if ncfg.night:
        return history.parse_night(ncfg.night)
    mtimes = [f.stat().st_mtime for f in files if f.is_file()]
    return history.night_of((p.start for p in programmes),
                            max(mtimes) if mtimes else time.time())  # no file: gated anyway


def load_current(root: Path, report: dict) -> RelatedModel | None:
    cur = registry.current_dir(root)
    if cur is None:
        return None
    try:
        return load_model(cur)
    except ModelError as e:  # publishing a good version over a broken current is a repair
        report["current_error"] = str(e)
        return None


def warm_init(prep: Prepared, cur: RelatedModel | None, cfg: Config, ncfg: NightlyConfig,
              report: dict) -> np.ndarray | None:
    info = {"enabled": ncfg.warm_start, "used": False, "tokens_carried": 0,
            "vocab_size": prep.tokenizer.vocab_size}
    report["warm_start"] = info
    if not ncfg.warm_start or cur is None:
        return None
    if cur.embeddings.shape[1] != cfg.train.dim:
        info["skipped"] = f"dimension changed ({cur.embeddings.shape[1]} -> {cfg.train.dim})"
        return None
    table, carried = warm_start_table(prep.tokenizer, cur.tokenizer, cur.embeddings,
                                      cfg.train.init_std, cfg.train.seed)
    info.update(used=True, tokens_carried=carried)
    return table


def warm_overrides(ncfg: NightlyConfig) -> dict:
    """Training options of a warm-started run: a short, gentle fine-tune."""
    return {k: v for k, v in {"lr": ncfg.warm_lr, "patience": ncfg.warm_patience}.items()
            if v is not None}


def train_and_write(prep: Prepared, init: np.ndarray | None, cfg: Config, out: Path,
                    data: dict, clock: _Clock) -> dict:
    """Train, then write the complete model folder `out` (pipeline.write_model, fsynced)."""
    result = fit(prep, cfg, init)
    clock.lap("train_s")
    save_timings: dict = {}
    manifest = write_model(prep, result, out, cfg, data=data, timings=save_timings)
    clock.lap("write_s")
    clock.timings["index_s"] = round(save_timings["index_s"], 3)
    clock.timings["write_s"] = round(clock.timings["write_s"] - save_timings["index_s"], 3)
    return manifest["training"]


def evaluate_night(new: RelatedModel, cur: RelatedModel | None, merged: list[Programme],
                   tonight: list[Programme], ncfg: NightlyConfig) -> dict:
    splits = [holdout_split(merged, tonight, ncfg.holdout_seed, ncfg.holdout_fraction)]
    titles = [s.title for s in new.catalog.shows]
    quality = {"new": evaluate_model(new, splits),
               "current": evaluate_model(cur, splits) if cur is not None else None,
               "random": random_answers(titles, splits, ncfg.holdout_seed),
               "split": {"holdout_fraction": ncfg.holdout_fraction, "seed": ncfg.holdout_seed,
                         "items": sum(s.n_items for s in splits),
                         "test_keys": sum(len(s.test_keys) for s in splits)}}
    if quality["current"] and quality["current"]["p_at_10"] is not None \
            and quality["new"]["p_at_10"] is not None:
        quality["delta_p_at_10"] = round(quality["new"]["p_at_10"] - quality["current"]["p_at_10"], 4)
    return quality


def stability_of(new: RelatedModel, cur: RelatedModel | None, k: int) -> dict | None:
    if cur is None:
        return None
    return neighbour_stability(
        list(cur.catalog.keys), np.asarray(cur.vectors), list(new.catalog.keys), np.asarray(new.vectors), k,
        old_table=cur.neighbours[0] if cur.neighbours is not None else None,
        new_table=new.neighbours[0] if new.neighbours is not None else None)


# ---------------------------------------------------------------- the run
def run_nightly(dumps: list[str | Path], root: str | Path, ncfg: NightlyConfig,
                cfg: Config) -> NightlyResult:
    """One nightly run; raises registry.RootLocked when another run holds the root."""
    root = Path(root)
    with registry.locked(root):
        report = new_report(dumps, root, {"nightly": asdict(ncfg), "model": cfg.to_dict()})
        report["cleaned"] = registry.clean_stale(root) + history.clean_tmp(root)
        build = registry.versions_dir(root) / f".build-{uuid.uuid4().hex[:12]}"
        clock = _Clock()
        try:
            report["version"] = _run(dumps, root, ncfg, cfg, report, build, clock)
            status, code = "published", EXIT_PUBLISHED
        except Unchanged:
            status, code = "unchanged", EXIT_PUBLISHED
        except Gated as g:
            report["gate"] = {"decision": "refuse", "stage": g.stage, "reasons": g.reasons}
            status, code = "gated", EXIT_GATED
        except Exception as e:  # noqa: BLE001 - any failure: report it, publish nothing
            report["error"] = f"{type(e).__name__}: {e}"
            status, code = "error", EXIT_ERROR
        finally:
            shutil.rmtree(build, ignore_errors=True)
        report["timings"] = {**clock.timings, "total_s": round(time.perf_counter() - report.pop("_t0"), 3)}
        report["cpu_timings"] = {**clock.cpu, "total_s": round(sum(clock.cpu.values()), 3),
                                 "note": "process CPU seconds per stage; write_s includes index_s"}
        report.update(status=status, exit_code=code, current_after=registry.current_version(root),
                      finished=utc())
        try:
            path = write_reports(root, report, ncfg.keep_reports)
        except OSError as e:  # e.g. a full disk: the outcome stands, the report is lost
            path = None
            report.setdefault("warnings", []).append(f"report not written: {e}")
        return NightlyResult(code, status, report, path, summary_line(report))


def _run(dumps: list[str | Path], root: Path, ncfg: NightlyConfig, cfg: Config, report: dict,
         build: Path, clock: _Clock) -> str:
    files = expand_paths(dumps)
    report["input_digest"] = input_digest(files, ncfg, cfg)
    if not ncfg.force and report["input_digest"] is not None \
            and report["input_digest"] == current_digest(root):
        raise Unchanged()
    night, tonight, read_report, stats = check_input(files, root, ncfg, report)
    merged, prep, cur, init = ingest(night, tonight, read_report, root, ncfg, cfg, report)
    clock.lap("ingest_s")
    data = {"night": night.isoformat(), "inputs": [str(f) for f in files],
            "history_nights": report["history"]["nights_used"], "programmes": len(merged),
            "programmes_tonight": len(tonight)}
    if init is not None:
        cfg = cfg.replace(train=warm_overrides(ncfg))
        report["warm_start"]["train_overrides"] = warm_overrides(ncfg)
    report["training"] = train_and_write(prep, init, cfg, build, data, clock)
    check_quality(build, cur, merged, tonight, ncfg, report)
    clock.lap("evaluate_s")
    version = publish_with_history(root, build, night, tonight, stats, report)
    report["gate"] = {"decision": "publish", "stage": None, "reasons": []}
    housekeeping(root, ncfg, report)
    clock.lap("publish_s")
    return version


def input_digest(files: list[Path], ncfg: NightlyConfig, cfg: Config) -> str | None:
    """sha256 of tonight's input files' bytes and of the settings (`force` aside); None
    when a file cannot be read as a regular file (a pipe is read once, by the run)."""
    h = hashlib.sha256(json.dumps([cfg.to_dict(), {**asdict(ncfg), "force": None}],
                                  sort_keys=True, default=str).encode("utf-8"))
    for f in sorted(files, key=str):
        try:
            if not f.is_file():
                return None
            h.update(str(f.stat().st_size).encode("ascii"))
            h.update(bytes.fromhex(sha256_file(f)))
        except OSError:
            return None
    return h.hexdigest()


def current_digest(root: Path) -> str | None:
    """The input digest recorded by the nightly run that built the current version."""
    cur = registry.current_dir(root)
    try:
        return json.loads((cur / "report.json").read_text(encoding="utf-8")).get("input_digest")
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def gate(stage: str, reasons: list[str], ncfg: NightlyConfig, report: dict) -> None:
    """Raise Gated for `reasons`; with `force`, record them as overridden instead."""
    if reasons and ncfg.force:
        report.setdefault("forced", []).extend(reasons)
    elif reasons:
        raise Gated(stage, reasons)


def check_input(files: list[Path], root: Path, ncfg: NightlyConfig,
                report: dict) -> tuple[date, list[Programme], ReadReport, dict]:
    """Read tonight's dumps and apply the input gate (raises Gated)."""
    report["inputs"] = [file_info(f) for f in files]
    tonight, read_report, file_errors = read_tonight(files)
    night = tonight_date(tonight, files, ncfg)
    stats = history.input_stats(tonight)
    recent = history.recent_metas(root, night, ncfg.recent_nights)
    recent_stats = [m.get("stats", {}) for m in recent]
    report.update(night=night.isoformat(), input_stats=stats,
                  read={"programmes": read_report.programmes,
                        "skipped": [list(s) for s in read_report.skipped[:50]],
                        "skipped_total": len(read_report.skipped)},
                  recent_nights={"n": len(recent), "median": medians(recent_stats)})
    reasons = input_reasons(stats, recent_stats, file_errors, ncfg.min_input_ratio)
    if reasons:
        raise Gated("input", reasons)
    gate("input", consistency_reasons(night, stats, history.category_names(tonight), recent, ncfg),
         ncfg, report)
    return night, tonight, read_report, stats


def ingest(night: date, tonight: list[Programme], read_report: ReadReport, root: Path,
           ncfg: NightlyConfig, cfg: Config, report: dict
           ) -> tuple[list[Programme], Prepared, RelatedModel | None, np.ndarray | None]:
    """Tonight + retained history -> catalog, tokenizer, changes, warm-start table; the
    catalog gate (labels that no longer agree, a large drop) before any training."""
    past_nights = history.retained(root, night, ncfg.history_nights)
    past = history.merge(history.read_night(root, n) for n in past_nights)
    merged = history.merge([past, tonight])
    agreement, compared = history.label_agreement(tonight, past)
    report["history"] = {"nights_used": [n.isoformat() for n in past_nights],
                         "programmes_merged": len(merged),
                         "label_agreement": agreement, "labelled_shows_compared": compared}
    prep = prepare_programmes(strip_holdout(merged, ncfg.holdout_seed, ncfg.holdout_fraction),
                              cfg, read_report)
    cur = load_current(root, report)
    report["catalog"] = prep.catalog.summary()
    report["changes"] = catalog_changes(cur.catalog if cur else None, prep.catalog)
    gate("catalog", catalog_reasons(agreement, report["changes"], len(cur.catalog) if cur else 0,
                                    ncfg), ncfg, report)
    return merged, prep, cur, warm_init(prep, cur, cfg, ncfg, report)


def check_quality(build: Path, cur: RelatedModel | None, merged: list[Programme],
                  tonight: list[Programme], ncfg: NightlyConfig, report: dict) -> None:
    """Load (validate) the new model, evaluate it and the current one, measure stability;
    raises Gated when validation or the quality gate fails."""
    try:
        new = load_model(build)
    except ModelError as e:
        raise Gated("validation", [f"new model failed validation: {e}"]) from None
    report["quality"] = evaluate_night(new, cur, merged, tonight, ncfg)
    report["stability"] = stability_of(new, cur, ncfg.stability_k)
    q = report["quality"]
    reasons = quality_reasons(q["new"], q["current"], q["random"], ncfg)
    if reasons:
        raise Gated("quality", reasons)


def publish_with_history(root: Path, build: Path, night: date, tonight: list[Programme],
                         stats: dict, report: dict) -> str:
    """Publish the build and commit tonight to the history: both or neither. The night is
    staged (written, fsynced) first, so a full disk stops the run before the swap; should
    the commit itself fail after the swap, `current` goes back to what it was."""
    version = read_manifest(build)["version"]
    staged = history.stage_night(root, night, tonight, {
        "inputs": report["inputs"], "stats": stats, "version": version,
        "category_names": history.category_names(tonight)})
    try:
        registry.publish(root, build)  # validates by loading, then swaps current
    except BaseException as e:
        staged.discard()
        if isinstance(e, ModelError):
            raise Gated("validation", [f"publish validation failed: {e}"]) from None
        raise
    try:
        staged.commit()
    except BaseException:
        staged.discard()
        registry.restore_current(root, report["previous"])
        raise
    return version


def housekeeping(root: Path, ncfg: NightlyConfig, report: dict) -> None:
    """After the swap: prune versions and the nights past the retained count. Both only
    delete what is no longer needed, so a failure here is a warning, not an error."""
    report["pruned"], report["warnings"] = {}, []
    steps = [("versions", lambda: report["pruned"].update(versions=registry.prune(root, ncfg.keep))),
             ("history_nights", lambda: report["pruned"].update(
                 history_nights=history.prune_nights(root, ncfg.history_nights)))]
    for name, step in steps:
        try:
            step()
        except OSError as e:
            report["warnings"].append(f"{name}: {e}")
