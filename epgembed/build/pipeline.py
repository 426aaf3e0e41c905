"""One call from dumps to a model directory, in four stages:

    prepare (ingest -> catalog -> tokenizer) -> fit (train) -> vectors and summaries
    -> model_parts -> write_model (build/index/build.py write_indexes: search files,
       neighbour table, Annoy forest; artifact/folder.py write_folder: the folder, its
       manifest and hashes)

    manifest = train_model(["dump.xml.gz"], "MODEL_DIR", Config())

`progress` (epgembed.progress.Progress, made by the CLI; silent by default) gets one stage
each: ingest, tokenizer, train, "index, neighbour table and write".

Everything is read and trained before anything is written: a dump that fails to parse
leaves `out_dir` untouched (write_folder renames a complete folder into place).
"""
from __future__ import annotations

import functools
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from epgembed.artifact.bundle import check_replaceable
from epgembed.artifact.folder import ModelParts, write_folder
from epgembed.artifact.manifest import DataSummary, Manifest, TrainingSummary
from epgembed.artifact.parts import TitleVectors, TokenTable
from epgembed.registry import refuse_inside_versions
from epgembed.artifact.catalog import Catalog, SerializedCatalog
from epgembed.build.ingest.catalog_build import EMPTY_KEY, ProgrammeLike, build_catalog, iter_titles
from epgembed.config import Config
from epgembed.build.ingest.dumpfiles import ReadLimits
from epgembed.fsutil import escape_name
from epgembed.build.ingest.epg import ReadReport, read_programmes
from epgembed.build.index.build import write_indexes
from epgembed.build.model.distributed import send_training
from epgembed.query.vectors import catalog_vectors
from epgembed.text.tokenize import Tokenizer
from epgembed.build.model.train import TrainResult, train
from epgembed.progress import Progress, Stage


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
    views: tuple = ()                 # the shows' text and guide views (tokenize.Packed), when trained
    series: np.ndarray | None = None  # every show's series id (Catalog.groups), for validation


def prepare(paths: Iterable[str | Path], cfg: Config, *, skip_bad_input: bool = False,
            limits: ReadLimits | None = None, progress: Progress | None = None) -> Prepared:
    """Read the dumps, build the catalog, train the tokenizer, tokenize every show."""
    report = ReadReport()
    return prepare_programmes(read_programmes(paths, skip_bad_input=skip_bad_input, report=report,
                                              limits=limits), cfg, report, progress)


def prepare_programmes(programmes: Iterable[ProgrammeLike], cfg: Config,
                       report: ReadReport | None = None,
                       progress: Progress | None = None) -> Prepared:
    """`prepare` from programme records already read (e.g. the nightly history); stages
    "ingest" and "tokenizer" on `progress`."""
    progress = progress or Progress()
    timings = {}
    t0 = time.perf_counter()
    report = report if report is not None else ReadReport()
    dropped: Counter[str] = Counter()
    with progress.stage("ingest") as st:
        seen = [0]
        catalog = build_catalog(_counted(programmes, report, st, seen), cfg.catalog, dropped,
                                cfg.features)
        report.empty_keys += dropped[EMPTY_KEY]
        if len(catalog) == 0:
            raise ValueError(nothing_read(report, seen[0], dropped))
        st.note(ingest_line(report, seen[0], len(catalog)))
    timings["ingest_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with progress.stage("tokenizer") as st:
        contexts = [s.context for s in catalog.shows]
        features = [s.features for s in catalog.shows]
        tokenizer = Tokenizer.train(iter_titles(catalog), cfg.tokenizer, contexts, features, cfg.features)
        st.status(f"{tokenizer.vocab_size:,} tokens; encoding {len(catalog):,} shows")
        token_ids, token_weights = tokenizer.encode_items([s.key for s in catalog.shows], contexts,
                                                          features)
        views = training_views(tokenizer, catalog, token_ids, token_weights, cfg)
        st.note(f"{tokenizer.vocab_size:,} tokens, {len(catalog):,} shows encoded")
    timings["tokenizer_s"] = time.perf_counter() - t0
    names, show_cats = catalog.supervision(cfg.catalog)
    return Prepared(catalog, tokenizer, token_ids, token_weights, names, show_cats, report, timings,
                    dict(dropped), views, catalog.groups.of)


def training_views(tokenizer: Tokenizer, catalog: Catalog, token_ids: np.ndarray,
                   token_weights: np.ndarray, cfg: Config) -> tuple:
    """The views multi-view training draws context titles from (TrainConfig.text_view,
    guide_view): every show's text view, and its guide view when used; () when neither is."""
    if cfg.train.text_view <= 0 and cfg.train.guide_view <= 0:
        return ()
    text = tokenizer.query_views([s.key for s in catalog.shows])
    return (text, tokenizer.guide_views(text, token_ids, token_weights)) if cfg.train.guide_view > 0 else (text,)


def _counted(programmes: Iterable[ProgrammeLike], report: ReadReport, stage: Stage,
             seen: list[int], every: int = 1000) -> Iterator[ProgrammeLike]:
    """The programmes, counted into seen[0], with the count on the stage's live line."""
    for n, p in enumerate(programmes, 1):
        seen[0] = n
        if n % every == 0:
            k = len(report.files)
            stage.status(f"{k} file{'' if k == 1 else 's'}, {n:,} programmes" if k else f"{n:,} programmes")
        yield p


def ingest_line(report: ReadReport, programmes: int, shows: int) -> str:
    """E.g. "7 files, 71,234 programmes, 11,791 shows, 3 skipped"."""
    n = len(report.files)
    files = f"{n} file{'' if n == 1 else 's'}, " if n else ""
    skipped = f", {len(report.skipped):,} skipped" if report.skipped else ""
    return f"{files}{programmes:,} programmes, {shows:,} shows{skipped}"


def nothing_read(report: ReadReport, programmes: int, dropped: Counter, examples: int = 10) -> str:
    """Why the input made no show: what was read, every file skipped and why (up to
    `examples`), the skipped programmes by reason with a first place, the programmes
    the catalog dropped by reason."""
    files = len(report.files)
    parts = [f"read {files} file{'' if files == 1 else 's'}, {programmes:,} programmes"]
    errors = set(report.file_errors)
    whole = [s for s in report.skipped if s in errors or s[1] is None]      # a file or an entry
    parts += [f"skipped {name}{f':{line}' if line else ''}: {why}" for name, line, why in whole[:examples]]
    if len(whole) > examples:
        parts.append(f"... and {len(whole) - examples:,} more files skipped")
    kinds: dict[str, list] = {}
    for s in report.skipped:
        if s not in errors and s[1] is not None:
            kinds.setdefault(s[2].split(" (")[0], []).append(s)
    parts += [f"{len(found):,} programme{'' if len(found) == 1 else 's'} skipped: {kind} "
              f"(first {found[0][0]}:{found[0][1]})" for kind, found in kinds.items()]
    parts += [f"{n:,} programme{'' if n == 1 else 's'} dropped: {why}" for why, n in dropped.items() if n]
    return "no programmes with a title in the input (" + "; ".join(parts) + ")"


def nothing_learned(prep: Prepared, cfg: Config) -> str:
    """Why a training run had no example (0 epochs: its vectors would be the random start)."""
    c = prep.catalog.summary()
    return (f"nothing learned: {c['shows']:,} show{'' if c['shows'] == 1 else 's'}, "
            f"{c['labelled_shows']:,} with categories, and no category on at least "
            f"{cfg.catalog.min_category_shows} shows and at most {cfg.catalog.max_category_share:.0%} of "
            "them to learn from (no model written)")


def vanished_kinds(last: Manifest | None, new: Manifest) -> str | None:
    """A warning when feature kinds of the last version's manifest are missing from `new`'s
    (None: none gone, or no last version)."""
    gone = sorted(set(last.feature_kinds) - set(new.feature_kinds)) if last is not None else []
    if not gone:
        return None
    return (f"feature kinds gone since the last version: {', '.join(gone)} (the input no longer "
            "carries them; e.g. without start or stop times slot, day and duration drop out)")


def fit(prep: Prepared, cfg: Config, init: np.ndarray | None = None,
        progress: Progress | None = None, group=None) -> TrainResult:
    """Train on `prep`; with `group` (model.distributed.Group, rank 0) the other ranks get
    the training inputs first and train beside it."""
    args = (prep.token_ids, prep.show_categories, len(prep.categories), cfg.train, prep.tokenizer.vocab_size)
    kwargs = dict(init=init, token_weights=prep.token_weights, views=prep.views, series=prep.series)
    titles = send_training(group, *args, **kwargs) if group is not None else None
    return train(*args, **kwargs, progress=progress, group=group, titles=titles)


SAVE_STAGE = "index, neighbour table and write"


def train_model(paths: Iterable[str | Path], out_dir: str | Path, cfg: Config | None = None, *,
                skip_bad_input: bool = False, threads: int | None = None,
                limits: ReadLimits | None = None, progress: Progress | None = None,
                timings: dict | None = None, group=None) -> Manifest:
    """Train on the dumps and write a complete model directory; returns its manifest.
    `progress` gets the stages: ingest, tokenizer, train, index + neighbour table + write;
    `timings`, when given, receives "index_and_save_s", "index_s" and "write_s" (the
    manifest's training timings end before the write). `group`: rank 0 of a data-parallel
    run (build/model/distributed.py), which trains with the other ranks."""
    cfg = cfg or Config()
    progress = progress or Progress()
    if threads:
        torch.set_num_threads(threads)
    paths = [Path(p) for p in paths]
    out_dir = Path(out_dir)
    refuse_inside_versions(out_dir)     # before reading anything: refused in a second, not
    check_replaceable(out_dir)          # after the training (checked again at the rename)
    prep = prepare(paths, cfg, skip_bad_input=skip_bad_input, limits=limits, progress=progress)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # training needs only the catalog's file: kept in an unlinked temporary file beside the
    # model (gone with the process, whatever ends it), not 1.5 GB of objects at 1M shows
    with tempfile.TemporaryFile(dir=out_dir.parent, prefix=f".{out_dir.name}.catalog-") as spool:
        prep = replace(prep, catalog=prep.catalog.serialized(spool))
        t0 = time.perf_counter()
        result = fit(prep, cfg, progress=progress, group=group)
        if not result.history:
            raise ValueError(nothing_learned(prep, cfg))
        prep = replace(prep, timings={**prep.timings, "train_s": time.perf_counter() - t0})
        t0 = time.perf_counter()
        with progress.stage(SAVE_STAGE) as st:
            parts = model_parts(prep, result, cfg, {"inputs": [escape_name(str(p)) for p in paths]})
            del prep    # its token arrays go before the index is built (gigabytes at 1M shows)
            st.status(f"{len(parts.vectors.vectors):,} vectors")
            saved: dict = {}
            manifest = write_model(parts, out_dir, cfg, timings=saved)
            st.note(save_line(manifest, saved))
    if timings is not None:
        timings.update(saved, index_and_save_s=time.perf_counter() - t0)
    return manifest


def save_line(manifest: Manifest, saved: dict) -> str:
    """E.g. "11,791 titles (neighbour table and index 2.1 s, write 0.8 s)" (write_folder's timings)."""
    head = f"{manifest.n_shows:,} titles"
    if "index_s" not in saved:
        return head
    return f"{head} (neighbour table and index {saved['index_s']:.1f} s, write {saved['write_s']:.1f} s)"


def summaries(prep: Prepared, result: TrainResult, data: dict | None,
              timings: dict) -> tuple[DataSummary, TrainingSummary]:
    """The manifest's data summary (`data` entries added or overriding) and training summary."""
    summary = {"files": prep.report.files,
               "programmes": prep.report.programmes,
               "skipped": [tuple(s) for s in prep.report.skipped],
               "skip_counts": prep.report.skip_counts(),
               "empty_titles": prep.report.empty_titles(),  # cleaned to nothing: reader + catalog
               "dropped_programmes": prep.dropped,           # no item: empty key, bare episode
               "supervising_categories": len(prep.categories),
               "labelled_for_training": int(sum(1 for c in prep.show_categories if c)),
               **(data or {})}
    last = result.history[-1] if result.history else {}
    best = next((h for h in result.history if h["epoch"] == result.best_epoch), last)
    training = TrainingSummary(
        best_epoch=result.best_epoch, epochs_run=len(result.history), seconds=round(result.seconds, 3),
        examples=result.examples, examples_per_s=round(result.examples_per_second, 1),
        val_p_at_10=best.get("val_p_at_10"), timings=timings, distributed=result.distributed)
    return DataSummary(**summary), training


def model_parts(prep: Prepared, result: TrainResult, cfg: Config, data: dict | None = None) -> ModelParts:
    """Everything after training that needs the prepared data: show vectors (centred when
    configured) and the data and training summaries (`data` entries added to, or
    overriding, the data summary). The caller may drop `prep` after it: write_model needs
    only what this returns."""
    vectors, center = catalog_vectors(result.embeddings, prep.token_ids, prep.token_weights,
                                      centred=cfg.index.center)
    summary, training = summaries(prep, result, data, dict(prep.timings))
    return ModelParts(prep.tokenizer, prep.catalog, TokenTable(result.embeddings, result.token_counts),
                      TitleVectors.of(vectors, center), result.history, cfg.to_dict(), summary, training)


def write_model(parts: ModelParts, out_dir: str | Path, cfg: Config, *,
                timings: dict | None = None) -> Manifest:
    """The one writer of a model, for training and the nightly run: the neighbour table
    and indexes (build/index/build.py write_indexes) and the folder (artifact/folder.py
    write_folder: complete, fsynced, renamed into place); `timings` as in write_folder."""
    return write_folder(Path(out_dir), parts,
                        functools.partial(write_indexes, vectors=parts.vectors.vectors, cfg=cfg.index),
                        timings=timings)
