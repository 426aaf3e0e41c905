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
 4. write the model completely (pipeline.write_model: fsynced, renamed into a hidden
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
catalog drop) refuse; the reasons are kept in the report under "forced". The stages before
and after training are in stages.py, the report in report.py, the CLI in epgembed/cli/nightly.py.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import msgspec
import numpy as np

from epgembed import registry
from epgembed.artifact.bundle import sha256_file
from epgembed.artifact.manifest import Manifest, ModelError, read_manifest, write_manifest
from epgembed.config import Config
from epgembed.fsutil import escape_name, utc
from epgembed.build.ingest.epg import expand_paths
from epgembed.nightly import history
from epgembed.nightly.gates import NightlyConfig
from epgembed.nightly.report import new_report, summary_line, write_reports
from epgembed.nightly.stages import Gated, InputCheck, check_input, check_quality, ingest
from epgembed.build.pipeline import Prepared, fit, model_parts, nothing_learned, vanished_kinds, write_model

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


# ---------------------------------------------------------------- training
def train_and_write(prep: Prepared, init: np.ndarray | None, cfg: Config, out: Path,
                    data: dict, clock: _Clock, group=None) -> Manifest:
    """Train (with the other ranks when `group`, build/model/distributed.py), then write the
    complete model folder `out` (pipeline.write_model, fsynced); returns its manifest. A run
    that learned nothing is gated."""
    result = fit(prep, cfg, init, group=group)
    clock.lap("train_s")
    if not result.history:
        raise Gated("training", [nothing_learned(prep, cfg)])
    save_timings: dict = {}
    manifest = write_model(model_parts(prep, result, cfg, data), out, cfg, timings=save_timings)
    clock.lap("write_s")
    clock.timings["index_s"] = round(save_timings["index_s"], 3)
    clock.timings["write_s"] = round(clock.timings["write_s"] - save_timings["index_s"], 3)
    return manifest


# ---------------------------------------------------------------- the run
def run_nightly(dumps: list[str | Path], root: str | Path, ncfg: NightlyConfig,
                cfg: Config, group=None) -> NightlyResult:
    """One nightly run; raises registry.RootLocked when another run holds the root.
    `group`: rank 0 of a data-parallel run (model.distributed); it alone holds the lock
    and publishes, the other ranks only train."""
    root = Path(root)
    t0 = time.perf_counter()
    with registry.locked(root, holder="nightly"):
        report = new_report(dumps, root, {"nightly": asdict(ncfg), "model": cfg.to_dict()})
        # a night staged for the version that is current was published with it (a run
        # killed between its swap and its commit): committed, not cleaned as a leftover
        report["recovered"], report["cleaned"] = history.recover_and_clean(root)
        build = registry.versions_dir(root) / f".build-{uuid.uuid4().hex[:12]}"
        clock = _Clock()
        try:
            report["version"] = _run(dumps, root, ncfg, cfg, report, build, clock, group)
            status, code = "published", EXIT_PUBLISHED
        except Unchanged:
            status, code = "unchanged", EXIT_PUBLISHED
        except Gated as g:
            report.update(g.part)
            report["gate"] = {"decision": "refuse", "stage": g.stage, "reasons": g.reasons}
            status, code = "gated", EXIT_GATED
        except Exception as e:  # noqa: BLE001 - any failure: report it, publish nothing
            report["error"] = escape_name(f"{type(e).__name__}: {e}")   # a file name need not be UTF-8
            status, code = "error", EXIT_ERROR
        finally:
            shutil.rmtree(build, ignore_errors=True)
        report["timings"] = {**clock.timings, "total_s": round(time.perf_counter() - t0, 3)}
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
         build: Path, clock: _Clock, group=None) -> str:
    """The stages in order; each returns its result, and only this function adds their
    parts to the report (a stage that refuses carries its part in Gated)."""
    report["warnings"] = history.damaged_metas(root)
    files = expand_paths(dumps)
    report["input_digest"] = input_digest(files, ncfg, cfg)
    if not ncfg.force and report["input_digest"] is not None \
            and report["input_digest"] == current_digest(root):
        raise Unchanged()
    checked = check_input(files, root, ncfg)
    report.update(checked.report())
    ingested = ingest(checked, root, ncfg, cfg)
    report.update(ingested.report())
    report["warnings"] += ingested.history.get("unreadable", [])
    forced = [*checked.forced, *ingested.forced]
    if forced:
        report["forced"] = forced
    clock.lap("ingest_s")
    data = {"night": checked.night.isoformat(), "inputs": [escape_name(str(f)) for f in files],
            "history_nights": ingested.history["nights_used"], "programmes": len(ingested.merged),
            "programmes_tonight": len(checked.tonight)}
    if ingested.warm.train_overrides:
        cfg = cfg.replace(train=ingested.warm.train_overrides)
    manifest = train_and_write(ingested.prep, ingested.warm.init, cfg, build, data, clock, group)
    report["training"] = msgspec.to_builtins(manifest.training)
    gone = vanished_kinds(ingested.current.manifest if ingested.current else None, manifest)
    if gone:
        report["warnings"].append(gone)
    report.update(check_quality(build, ingested, checked, ncfg).report())
    record_quality(build, report["quality"]["new"])
    clock.lap("evaluate_s")
    version = publish_with_history(root, build, checked, report["previous"])
    report["gate"] = {"decision": "publish", "stage": None, "reasons": []}
    pruned, warnings = housekeeping(root, ncfg)
    report["pruned"] = pruned
    report["warnings"] += warnings
    clock.lap("publish_s")
    return version


def record_quality(build: Path, quality: dict) -> None:
    """Tonight's held-out figures (P@10d, P@10x, ...) into the manifest of the build, before it
    is published: /v1/model and `versions` show what the serving model was measured at. The
    build is no version yet (a hidden folder); the figures need the written model loaded."""
    write_manifest(build, msgspec.structs.replace(read_manifest(build), quality=quality))


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


def publish_with_history(root: Path, build: Path, checked: InputCheck, previous: str | None) -> str:
    """Publish the build and commit tonight to the history: both or neither. The night is
    staged (written, fsynced) first, so a full disk stops the run before the swap; should
    the commit itself fail after the swap, `current` goes back to what it was."""
    version = read_manifest(build).version
    staged = history.stage_night(root, checked.night, checked.tonight, {
        "inputs": checked.inputs, "stats": checked.stats, "version": version,
        "category_names": history.category_names(checked.tonight)})
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
        registry.restore_current(root, previous)
        raise
    return version


def housekeeping(root: Path, ncfg: NightlyConfig) -> tuple[dict, list[str]]:
    """After the swap: prune versions and the nights past the retained count; (what was
    pruned, warnings). Both only delete what is no longer needed, so a failure here is a
    warning, not an error."""
    pruned, warnings = {}, []
    steps = [("versions", lambda: registry.prune(root, ncfg.keep, ncfg.keep_refreshes)),
             ("history_nights", lambda: history.prune_nights(root, ncfg.history_nights))]
    for name, step in steps:
        try:
            pruned[name] = step()
        except OSError as e:
            warnings.append(f"{name}: {e}")
    warnings += [f"{registry.VERSIONS}/{v['version']}: {v['error']}; left alone (never pruned)"
                 for v in registry.list_versions(root) if "error" in v]
    return pruned, warnings
