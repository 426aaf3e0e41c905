"""One call from dumps to a model directory: ingest -> catalog -> tokenizer -> train -> index.

    manifest = train_model(["dump.xml.gz"], "MODEL_DIR", Config())

Everything is read and trained before anything is written: a dump that fails to parse
leaves `out_dir` untouched (bundle.save_model renames a complete folder into place).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from .bundle import save_model
from .catalog import Catalog, build_catalog, iter_titles
from .config import Config
from .epg import ReadReport, read_programmes
from .tokenize import Tokenizer
from .train import TrainResult, all_title_vectors, train


@dataclass
class Prepared:
    catalog: Catalog
    tokenizer: Tokenizer
    token_ids: np.ndarray             # [S, L] padded ids of every show
    categories: list[str]             # supervising category names
    show_categories: list[list[int]]  # per show, supervising category ids
    report: ReadReport
    timings: dict


def prepare(paths: Iterable[str | Path], cfg: Config, *, skip_bad_input: bool = False) -> Prepared:
    """Read the dumps, build the catalog, train the tokenizer, tokenize every show."""
    timings = {}
    t0 = time.perf_counter()
    report = ReadReport()
    catalog = build_catalog(read_programmes(paths, skip_bad_input=skip_bad_input, report=report),
                            cfg.catalog)
    if len(catalog) == 0:
        raise ValueError("no programmes with a title in the input")
    timings["ingest_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tokenizer = Tokenizer.train(iter_titles(catalog), cfg.tokenizer)
    token_ids = tokenizer.encode_batch([s.key for s in catalog.shows])
    timings["tokenizer_s"] = time.perf_counter() - t0
    names, show_cats = catalog.supervision(cfg.catalog)
    return Prepared(catalog, tokenizer, token_ids, names, show_cats, report, timings)


def fit(prep: Prepared, cfg: Config, init: np.ndarray | None = None) -> TrainResult:
    return train(prep.token_ids, prep.show_categories, len(prep.categories), cfg.train,
                 prep.tokenizer.vocab_size, init=init)


def train_model(paths: Iterable[str | Path], out_dir: str | Path, cfg: Config | None = None, *,
                skip_bad_input: bool = False, threads: int | None = None,
                quality: dict | None = None) -> dict:
    """Train on the dumps and write a complete model directory; returns its manifest."""
    cfg = cfg or Config()
    if threads:
        torch.set_num_threads(threads)
    paths = [Path(p) for p in paths]
    prep = prepare(paths, cfg, skip_bad_input=skip_bad_input)
    t0 = time.perf_counter()
    result = fit(prep, cfg)
    prep.timings["train_s"] = time.perf_counter() - t0
    vectors = all_title_vectors(torch.from_numpy(result.embeddings), torch.from_numpy(prep.token_ids))
    t0 = time.perf_counter()
    data = {"inputs": [str(p) for p in paths], "files": prep.report.files,
            "programmes": prep.report.programmes,
            "skipped": [list(s) for s in prep.report.skipped],
            "supervising_categories": len(prep.categories),
            "labelled_for_training": int(sum(1 for c in prep.show_categories if c))}
    last = result.history[-1] if result.history else {}
    best = next((h for h in result.history if h["epoch"] == result.best_epoch), last)
    training = {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
                "seconds": round(result.seconds, 3), "examples": result.examples,
                "examples_per_s": round(result.examples_per_second, 1),
                "val_p_at_10": best.get("val_p_at_10"), "timings": prep.timings}
    manifest = save_model(Path(out_dir), tokenizer=prep.tokenizer, catalog=prep.catalog,
                          embeddings=result.embeddings, vectors=vectors,
                          token_counts=result.token_counts, config=cfg.to_dict(),
                          history=result.history, data=data, training=training,
                          index_cfg=cfg.index, quality=quality)
    prep.timings["index_and_save_s"] = time.perf_counter() - t0
    return manifest
