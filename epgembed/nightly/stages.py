"""The nightly run's stages before and after training, each returning a small frozen result.

    check_input(files, root, ncfg)               -> InputCheck   (the input and consistency gates)
    ingest(checked, root, ncfg, cfg)             -> Ingested     (history, catalog, the catalog gate)
    check_quality(build, ingested, checked, ncfg) -> QualityCheck (validation, the quality gate)

A stage that refuses the night raises Gated; with `force`, the consistency gates' reasons
are kept in the result's `forced` instead. run.py assembles the report from the results'
`report()` parts, so what a report holds is written down here, stage by stage.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np

from epgembed import registry
from epgembed.artifact.manifest import ModelError
from epgembed.query.load import load_model
from epgembed.config import Config
from epgembed.build.ingest.epg import Programme, ReadReport, read_programmes
from epgembed.nightly import history
from epgembed.nightly.gates import (NightlyConfig, catalog_reasons, consistency_reasons, input_reasons,
                                    quality_reasons)
from epgembed.nightly.quality import (catalog_changes, evaluate_model, holdout_split, neighbour_stability,
                                      random_answers, strip_holdout, warm_start_table)
from epgembed.nightly.report import file_info, medians
from epgembed.build.pipeline import Prepared, prepare_programmes
from epgembed.query.related import RelatedModel


class Gated(Exception):
    """The night is refused; nothing is published. `part`: the refusing stage's report
    part, so that a gated night's report shows the figures it was refused on."""

    def __init__(self, stage: str, reasons: list[str], part: dict | None = None):
        super().__init__("; ".join(reasons))
        self.stage, self.reasons, self.part = stage, reasons, part or {}


def gate(stage: str, reasons: list[str], ncfg: NightlyConfig, part: dict) -> tuple[str, ...]:
    """Raise Gated for `reasons`; with `force`, return them as overridden instead."""
    if reasons and not ncfg.force:
        raise Gated(stage, reasons, part)
    return tuple(reasons)


# ---------------------------------------------------------------- input
@dataclass(frozen=True)
class InputCheck:
    night: date
    tonight: list[Programme]          # duplicate airings merged
    read_report: ReadReport
    stats: dict                       # history.input_stats(tonight)
    inputs: list[dict]                # file_info of every input file
    recent: dict                      # how many recent nights were compared, and their medians
    forced: tuple[str, ...]

    def report(self) -> dict:
        r = self.read_report
        return {"inputs": self.inputs, "night": self.night.isoformat(), "input_stats": self.stats,
                "read": {"programmes": r.programmes, "skipped": [list(s) for s in r.skipped[:50]],
                         "skipped_total": len(r.skipped)},
                "recent_nights": self.recent}


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


def check_input(files: list[Path], root: Path, ncfg: NightlyConfig) -> InputCheck:
    """Read tonight's dumps and apply the input gate, then the consistency gate."""
    inputs = [file_info(f) for f in files]
    tonight, read_report, file_errors = read_tonight(files)
    night = tonight_date(tonight, files, ncfg)
    stats = history.input_stats(tonight)
    recent = history.recent_metas(root, night, ncfg.recent_nights)
    recent_stats = [m.get("stats", {}) for m in recent]
    stored = history.stored_meta(root, night)       # a night the history holds for this date
    checked = InputCheck(night, tonight, read_report, stats, inputs,
                         {"n": len(recent), "median": medians(recent_stats)}, ())
    reasons = input_reasons(stats, recent_stats, file_errors, ncfg.min_input_ratio, stored)
    if reasons:
        raise Gated("input", reasons, checked.report())   # never forced: unreadable or empty input
    forced = gate("input", consistency_reasons(night, stats, history.category_names(tonight), recent, ncfg,
                                               stored), ncfg, checked.report())
    return replace(checked, forced=forced)


# ---------------------------------------------------------------- ingest
@dataclass(frozen=True)
class WarmStart:
    enabled: bool
    vocab_size: int
    init: np.ndarray | None = None     # the initial token table, when used
    tokens_carried: int = 0
    skipped: str | None = None
    train_overrides: dict | None = None

    def report(self) -> dict:
        out = {"enabled": self.enabled, "used": self.init is not None, "tokens_carried": self.tokens_carried,
               "vocab_size": self.vocab_size}
        if self.skipped:
            out["skipped"] = self.skipped
        if self.train_overrides is not None:
            out["train_overrides"] = self.train_overrides
        return out


@dataclass(frozen=True)
class Ingested:
    merged: list[Programme]            # tonight + the retained history nights
    prep: Prepared
    current: RelatedModel | None
    current_error: str | None          # the current version would not load (publishing repairs it)
    history: dict
    changes: dict
    warm: WarmStart | None             # None until the catalog gate has passed
    forced: tuple[str, ...]

    def report(self) -> dict:
        out = {"history": self.history, "catalog": self.prep.catalog.summary(), "changes": self.changes}
        if self.warm is not None:
            out["warm_start"] = self.warm.report()
        if self.current_error is not None:
            out["current_error"] = self.current_error
        return out


def load_current(root: Path) -> tuple[RelatedModel | None, str | None]:
    cur = registry.current_dir(root)
    if cur is None:
        return None, None
    try:
        return load_model(cur), None
    except ModelError as e:  # publishing a good version over a broken current is a repair
        return None, str(e)


def warm_overrides(ncfg: NightlyConfig) -> dict:
    """Training options of a warm-started run: a short, gentle fine-tune."""
    return {k: v for k, v in {"lr": ncfg.warm_lr, "patience": ncfg.warm_patience}.items()
            if v is not None}


def warm_start(prep: Prepared, cur: RelatedModel | None, cfg: Config, ncfg: NightlyConfig) -> WarmStart:
    base = WarmStart(ncfg.warm_start, prep.tokenizer.vocab_size)
    if not ncfg.warm_start or cur is None:
        return base
    if cur.embeddings.shape[1] != cfg.train.dim:
        return WarmStart(True, base.vocab_size, skipped=f"dimension changed ({cur.embeddings.shape[1]} -> "
                                                        f"{cfg.train.dim})")
    table, carried = warm_start_table(prep.tokenizer, cur.tokenizer, cur.embeddings,
                                      cfg.train.init_std, cfg.train.seed)
    return WarmStart(True, base.vocab_size, table, carried, train_overrides=warm_overrides(ncfg))


def ingest(checked: InputCheck, root: Path, ncfg: NightlyConfig, cfg: Config) -> Ingested:
    """Tonight + retained history -> catalog, tokenizer, changes, warm-start table; the
    catalog gate (labels that no longer agree, a large drop) before any training."""
    nights, unreadable = {}, []
    for night in history.retained(root, checked.night, ncfg.history_nights):
        try:
            nights[night] = list(history.read_night(root, night))
        except history.HistoryError as e:     # a damaged night: named, the others trained
            unreadable.append(f"{e}: the night is left out of training")
    past = history.merge(nights.values())
    merged = history.merge([past, checked.tonight])
    agreement, compared = history.label_agreement(checked.tonight, past)
    hist = {"nights_used": [n.isoformat() for n in nights], "programmes_merged": len(merged),
            "label_agreement": agreement, "labelled_shows_compared": compared}
    if unreadable:
        hist["unreadable"] = unreadable
    prep = prepare_programmes(strip_holdout(merged, ncfg.holdout_seed, ncfg.holdout_fraction),
                              cfg, checked.read_report)
    cur, cur_error = load_current(root)
    changes = catalog_changes(cur.catalog if cur else None, prep.catalog)
    ingested = Ingested(merged, prep, cur, cur_error, hist, changes, None, ())
    forced = gate("catalog", catalog_reasons(agreement, changes, len(cur.catalog) if cur else 0, ncfg), ncfg,
                  ingested.report())
    return replace(ingested, warm=warm_start(prep, cur, cfg, ncfg), forced=forced)


# ---------------------------------------------------------------- quality
@dataclass(frozen=True)
class QualityCheck:
    quality: dict
    stability: dict | None

    def report(self) -> dict:
        return {"quality": self.quality, "stability": self.stability}


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
    for f in ("p_at_10", "p_at_10d"):
        if quality["current"] and quality["current"].get(f) is not None and quality["new"].get(f) is not None:
            quality[f"delta_{f}"] = round(quality["new"][f] - quality["current"][f], 4)
    return quality


def stability_of(new: RelatedModel, cur: RelatedModel | None, k: int) -> dict | None:
    if cur is None:
        return None
    return neighbour_stability(
        list(cur.catalog.keys), np.asarray(cur.vectors), list(new.catalog.keys), np.asarray(new.vectors), k,
        old_table=cur.neighbours[0] if cur.neighbours is not None else None,
        new_table=new.neighbours[0] if new.neighbours is not None else None)


def check_quality(build: Path, ingested: Ingested, checked: InputCheck, ncfg: NightlyConfig) -> QualityCheck:
    """Load (validate) the new model, evaluate it and the current one, measure stability;
    raises Gated when validation or the quality gate fails."""
    try:
        new = load_model(build)
    except ModelError as e:
        raise Gated("validation", [f"new model failed validation: {e}"]) from None
    result = QualityCheck(evaluate_night(new, ingested.current, ingested.merged, checked.tonight, ncfg),
                          stability_of(new, ingested.current, ncfg.stability_k))
    q = result.quality
    reasons = quality_reasons(q["new"], q["current"], q["random"], ncfg)
    if reasons:
        raise Gated("quality", reasons, result.report())
    return result
