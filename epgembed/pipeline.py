"""One call from dumps to a model directory, in four stages:

    prepare (ingest -> catalog -> tokenizer) -> fit (train) -> vectors and summaries
    -> write_model (bundle.save_model: neighbour table, Annoy forest, the folder)

    manifest = train_model(["dump.xml.gz"], "MODEL_DIR", Config())

Everything is read and trained before anything is written: a dump that fails to parse
leaves `out_dir` untouched (bundle.save_model renames a complete folder into place).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from epgembed.artifact.bundle import save_model
from epgembed.ingest.catalog import Catalog, SerializedCatalog
from epgembed.ingest.catalog_build import EMPTY_KEY, ProgrammeLike, build_catalog, iter_titles
from epgembed.config import Config
from epgembed.ingest.dumpfiles import ReadLimits
from epgembed.ingest.epg import ReadReport, read_programmes
from epgembed.model.vectors import catalog_vectors
from epgembed.text.tokenize import Tokenizer
from epgembed.model.train import TrainResult, train


@dataclass(frozen=True)
class Prepared:
    """Everything training needs, read once; a stage that needs less makes a new one
    (dataclasses.replace), it never edits this one."""
    catalog: Catalog | SerializedCatalog
    tokenizer: Tokenizer
    token_ids: np.ndarray             # [S, L] padded ids of every show
    token_weights: np.ndarray         # [S, L] their weights (1 title, <1 description, 0 PAD)
    categories: list[str]             # supervising category names
    show_categories: list[list[int]]  # per show, supervising category ids
    report: ReadReport
    timings: dict
    dropped: dict = field(default_factory=dict)   # programmes that make no item, by reason


def prepare(paths: Iterable[str | Path], cfg: Config, *, skip_bad_input: bool = False,
            limits: ReadLimits | None = None) -> Prepared:
    """Read the dumps, build the catalog, train the tokenizer, tokenize every show."""
    report = ReadReport()
    return prepare_programmes(read_programmes(paths, skip_bad_input=skip_bad_input, report=report,
                                              limits=limits), cfg, report)


def prepare_programmes(programmes: Iterable[ProgrammeLike], cfg: Config,
                       report: ReadReport | None = None) -> Prepared:
    """`prepare` from programme records already read (e.g. the nightly history)."""
    timings = {}
    t0 = time.perf_counter()
    report = report if report is not None else ReadReport()
    dropped: Counter[str] = Counter()
    catalog = build_catalog(programmes, cfg.catalog, dropped, cfg.features)
    report.empty_keys += dropped[EMPTY_KEY]
    if len(catalog) == 0:
        raise ValueError(f"no programmes with a title in the input ({report.summary(limit=3)})")
    for show in catalog.shows:   # never build a catalog that Catalog.load would refuse
        show.checked()
    timings["ingest_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    contexts = [s.context for s in catalog.shows]
    features = [s.features for s in catalog.shows]
    tokenizer = Tokenizer.train(iter_titles(catalog), cfg.tokenizer, contexts, features, cfg.features)
    token_ids, token_weights = tokenizer.encode_items([s.key for s in catalog.shows], contexts,
                                                      features)
    timings["tokenizer_s"] = time.perf_counter() - t0
    names, show_cats = catalog.supervision(cfg.catalog)
    return Prepared(catalog, tokenizer, token_ids, token_weights, names, show_cats, report, timings,
                    dict(dropped))


def fit(prep: Prepared, cfg: Config, init: np.ndarray | None = None) -> TrainResult:
    return train(prep.token_ids, prep.show_categories, len(prep.categories), cfg.train,
                 prep.tokenizer.vocab_size, init=init, token_weights=prep.token_weights)


def train_model(paths: Iterable[str | Path], out_dir: str | Path, cfg: Config | None = None, *,
                skip_bad_input: bool = False, threads: int | None = None,
                limits: ReadLimits | None = None,
                quality: dict | None = None) -> dict:
    """Train on the dumps and write a complete model directory; returns its manifest."""
    cfg = cfg or Config()
    if threads:
        torch.set_num_threads(threads)
    paths = [Path(p) for p in paths]
    prep = prepare(paths, cfg, skip_bad_input=skip_bad_input, limits=limits)
    prep = replace(prep, catalog=prep.catalog.serialized())   # training needs only its file: 1.5 GB less at 1M
    t0 = time.perf_counter()
    result = fit(prep, cfg)
    timings = {**prep.timings, "train_s": time.perf_counter() - t0}
    t0 = time.perf_counter()
    vectors, center = catalog_vectors(result.embeddings, prep.token_ids, prep.token_weights,
                                      centred=cfg.index.center)
    summary, training = summaries(prep, result, {"inputs": [str(p) for p in paths]}, timings)
    tokenizer, catalog = prep.tokenizer, prep.catalog
    del prep    # its token arrays go before the index is built (gigabytes at 1M shows)
    manifest = save_model(Path(out_dir), tokenizer=tokenizer, catalog=catalog, embeddings=result.embeddings,
                          vectors=vectors, token_counts=result.token_counts, config=cfg.to_dict(),
                          history=result.history, data=summary, training=training, index_cfg=cfg.index,
                          quality=quality, center=center)
    manifest["training"]["timings"]["index_and_save_s"] = time.perf_counter() - t0   # the caller's copy
    return manifest


def summaries(prep: Prepared, result: TrainResult, data: dict | None, timings: dict) -> tuple[dict, dict]:
    """The manifest's data summary (`data` entries added or overriding) and training summary."""
    summary = {"files": prep.report.files,
               "programmes": prep.report.programmes,
               "skipped": [list(s) for s in prep.report.skipped],
               "skip_counts": prep.report.skip_counts(),
               "empty_titles": prep.report.empty_titles(),  # cleaned to nothing: reader + catalog
               "dropped_programmes": prep.dropped,           # no item: empty key, bare episode
               "supervising_categories": len(prep.categories),
               "labelled_for_training": int(sum(1 for c in prep.show_categories if c)),
               **(data or {})}
    last = result.history[-1] if result.history else {}
    best = next((h for h in result.history if h["epoch"] == result.best_epoch), last)
    training = {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
                "seconds": round(result.seconds, 3), "examples": result.examples,
                "examples_per_s": round(result.examples_per_second, 1),
                "val_p_at_10": best.get("val_p_at_10"), "timings": timings}
    return summary, training


def write_model(prep: Prepared, result: TrainResult, out_dir: str | Path, cfg: Config, *,
                data: dict | None = None, quality: dict | None = None,
                timings: dict | None = None) -> dict:
    """Everything after training: show vectors (centred when configured), the data and
    training summaries, and bundle.save_model (complete, fsynced, renamed into place).
    `data` entries are added to (or override) the data summary; `timings` as in save_model."""
    vectors, center = catalog_vectors(result.embeddings, prep.token_ids, prep.token_weights,
                                      centred=cfg.index.center)
    summary, training = summaries(prep, result, data, dict(prep.timings))
    return save_model(Path(out_dir), tokenizer=prep.tokenizer, catalog=prep.catalog,
                      embeddings=result.embeddings, vectors=vectors,
                      token_counts=result.token_counts, config=cfg.to_dict(),
                      history=result.history, data=summary, training=training,
                      index_cfg=cfg.index, quality=quality, center=center, timings=timings)
