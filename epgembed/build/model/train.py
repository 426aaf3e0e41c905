"""Leave-one-out training with a margin ranking loss (METHOD.md, "Training").

An example is one (show, category) membership: the show is the positive, N-1 other shows
of the same category form the bag that predicts it, and negatives are the hardest
(highest-scoring) shows of a shared per-batch candidate pool that share no category with
the positive. One matmul scores the whole pool for the whole batch.

Entry point: `train(token_ids, show_categories, n_categories, cfg) -> TrainResult`. Each
batch is one step of the compiled engine (kernels.CompiledStep); TrainConfig.engine =
"fused" steps with fused.FusedStep, the same math in torch ops. After each epoch the
held-out shows are ranked by model.title_vectors and model.top_k.
"""
from __future__ import annotations

import functools
import queue
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.profiler import record_function

from epgembed.artifact.manifest import DistributedTraining
from epgembed.config import TrainConfig
from epgembed.build.model.fused import FusedStep, inverse_frequency_weights
from epgembed.build.model.kernels import CompiledStep
from epgembed.query.vectors import title_vectors, top_k
from epgembed.text.tokenize import PAD_ID
from epgembed.build.model.sampling import LeaveOneOutSampler, PackedTitles
from epgembed.progress import Progress, Stage


@dataclass
class TrainResult:
    embeddings: np.ndarray            # [V, D] float32, row 0 (PAD) zero
    token_counts: np.ndarray          # [V] int64: labelled training shows using the token
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    examples: int = 0
    seconds: float = 0.0
    val_shows: list[int] = field(default_factory=list)
    distributed: DistributedTraining | None = None    # several ranks trained it (distributed.Group)

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds else 0.0


def split_validation(show_categories: list[list[int]], cfg: TrainConfig,
                     rng: np.random.Generator) -> list[int]:
    labelled = [s for s, c in enumerate(show_categories) if c]
    n_val = min(cfg.max_val, int(len(labelled) * cfg.val_fraction))
    if n_val < 20:
        return []
    return sorted(rng.choice(labelled, size=n_val, replace=False).tolist())


def validation_precision(vectors: np.ndarray, show_categories: list[list[int]],
                         val: list[int], train_labelled: np.ndarray, k: int = 10,
                         series: np.ndarray | None = None) -> float | None:
    """Mean share of a held-out show's k nearest labelled shows that share a category
    (None when there is nothing to measure: manifests and reports never hold NaN). With
    `series` (a series id per row), as answers show them: shows of the held-out show's own
    series are left out and each other series counts once, so that a series whose episodes
    all share its categories does not make every epoch look alike."""
    if not val or len(train_labelled) == 0:
        return None
    if series is None:
        top, _ = top_k(vectors, k, rows=val, among=train_labelled)
        hits = sum(1 for show, row in zip(val, top) for j in row
                   if set(show_categories[show]).intersection(show_categories[j]))
        return hits / (len(val) * top.shape[1])
    top, _ = top_k(vectors, min(len(train_labelled), 4 * k), rows=val, among=train_labelled)
    hits = 0
    for show, row in zip(val, top):
        seen, n = {int(series[show])}, 0
        cats = set(show_categories[show])
        for j in row:
            if n >= k:
                break
            if int(series[j]) in seen:
                continue
            seen.add(int(series[j]))
            n += 1
            hits += bool(cats.intersection(show_categories[j]))
    return hits / (len(val) * k)


def _validation_rows(show_categories: list[list[int]], labelled: np.ndarray,
                     val: list[int]) -> tuple[np.ndarray, list[list[int]], list[int], np.ndarray]:
    """What validation reads, fixed for a training run: the labelled training shows, then
    the validation shows (rows), their categories, the validation positions and the
    candidates (a prefix of the rows: top_k reads a view of it, no copy). Unlabelled shows
    are left out: validation_precision over rows_vectors(rows) gives the figure it gives
    over every show's vector (test_train)."""
    rows = np.concatenate([np.asarray(labelled, dtype=np.int64), np.asarray(val, dtype=np.int64)])
    n = len(labelled)
    return rows, [show_categories[r] for r in rows.tolist()], list(range(n, len(rows))), np.arange(n)


def rows_vectors(table: np.ndarray, token_ids: np.ndarray, token_weights: np.ndarray | None,
                 rows: np.ndarray, block: int = 65536) -> np.ndarray:
    """title_vectors of the shows `rows`, a block of titles at a time."""
    vectors = np.empty((len(rows), table.shape[1]), dtype=np.float32)
    for lo in range(0, len(rows), block):
        part = rows[lo: lo + block]
        vectors[lo: lo + block] = title_vectors(table, token_ids[part],
                                                None if token_weights is None else token_weights[part])
    return vectors


def init_table(vocab_size: int, dim: int, init_std: float, generator: torch.Generator) -> torch.Tensor:
    """The token table before training: seeded N(0, init_std) rows, the PAD row zero."""
    table = torch.empty(vocab_size, dim).normal_(0.0, init_std, generator=generator)
    table[PAD_ID] = 0.0
    return table


def make_step(table: torch.Tensor, row_weights: torch.Tensor | None, cfg: TrainConfig,
              generator: torch.Generator):
    """The training step `cfg.engine` names on `table` (updated in place), from fresh Adagrad
    accumulators: step(titles, shows, b, allowed, n) -> batch loss. row_weights: each row's
    inverse-frequency step factor (None: off)."""
    args = (cfg.max_negatives, cfg.margin, cfg.lr, cfg.hard_negatives, generator)
    if cfg.engine == "compiled":
        ones = row_weights if row_weights is not None else torch.ones(table.shape[0])
        return CompiledStep(table.numpy(), np.zeros(table.shape[0], np.float32), ones.numpy(), *args)
    if cfg.engine == "fused":
        return FusedStep(table, row_weights, *args)
    raise ValueError(f"unknown engine {cfg.engine!r}")


def train(token_ids: np.ndarray, show_categories: list[list[int]], n_categories: int,
          cfg: TrainConfig, vocab_size: int, init: np.ndarray | None = None,
          token_weights: np.ndarray | None = None, progress: Progress | None = None,
          views: tuple = (), series: np.ndarray | None = None, group=None,
          titles: PackedTitles | None = None) -> TrainResult:
    """Train the token table. token_ids: [S, L] padded ids of every show's tokens;
    token_weights: optional [S, L] weights of those tokens in the title's sum; init: a
    [V, D] table to start from instead of the seeded one; views: the shows' text and guide
    views (TrainConfig.text_view, guide_view), packed; series: every show's series id, so
    that validation counts other series, once each; group: a distributed.Group when this is
    one rank of a data-parallel run (its steps, rank 0's validation); titles: the shows and
    views packed already (then token_ids only serve validation: None on a rank other than
    0, which never validates). One "train" stage on
    `progress` (an epoch bar on a terminal); without one, cfg.progress draws that bar on stderr."""
    if progress is None and cfg.progress:
        progress = Progress(sys.stderr, live=True)
    with (progress or Progress()).stage("train") as stage:
        result = _train(token_ids, show_categories, n_categories, cfg, vocab_size, init,
                        token_weights, stage, views, series, group, titles)
        stage.note(describe(result))
    return result


def describe(result: TrainResult) -> str:
    """E.g. "12 epochs (best 9), 1,234,567 examples, 45,678 examples/s, val P@10 0.412"."""
    last = result.history[-1] if result.history else {}
    best = next((h for h in result.history if h["epoch"] == result.best_epoch), last)
    val = best.get("val_p_at_10")
    return (f"{len(result.history)} epochs (best {result.best_epoch}), {result.examples:,} examples, "
            f"{result.examples_per_second:,.0f} examples/s, "
            f"val P@10 {'n/a' if val is None else f'{val:.3f}'}")


def _train(token_ids: np.ndarray, show_categories: list[list[int]], n_categories: int,
           cfg: TrainConfig, vocab_size: int, init: np.ndarray | None,
           token_weights: np.ndarray | None, stage: Stage, views: tuple = (),
           series: np.ndarray | None = None, group=None,
           titles: PackedTitles | None = None) -> TrainResult:
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    val = split_validation(show_categories, cfg, rng)
    val_set = set(val)
    train_cats = [[] if s in val_set else c for s, c in enumerate(show_categories)]
    sampler = LeaveOneOutSampler(train_cats, n_categories, cfg.n, rng)
    titles = titles if titles is not None else PackedTitles(token_ids, token_weights, views)
    table = init_table(vocab_size, cfg.dim, cfg.init_std, gen)
    if init is not None:
        table.copy_(torch.from_numpy(init))
    counts = np.zeros(vocab_size, np.int64)
    if len(sampler.labelled):   # occurrences in labelled training shows, every view (no PAD)
        labelled = np.zeros(len(titles.length), bool)
        for k in range(titles.views):
            labelled[k * len(titles) + sampler.labelled] = True
        counts = np.bincount(titles.tokens[np.repeat(labelled, titles.length)],
                             minlength=vocab_size).astype(np.int64)
    weights = inverse_frequency_weights(torch.from_numpy(counts), cfg.inv_freq_power, cfg.inv_freq_cap)
    make = make_step if group is None else group.step
    step = functools.partial(make(table, weights if cfg.inv_freq else None, cfg, gen), n=cfg.n)
    result = TrainResult(np.zeros(0), counts, val_shows=val)
    if len(sampler) == 0:
        result.embeddings = table.numpy().copy()
        return result

    if val:
        rows, cats, val_rows, among = _validation_rows(show_categories, sampler.labelled, val)
        row_series = None if series is None else np.asarray(series)[rows]

    def validate() -> float:
        vectors = rows_vectors(table.numpy(), token_ids, token_weights, rows)
        return validation_precision(vectors, cats, val_rows, among, series=row_series)

    if val and group is not None:
        validate = group.agreed(validate)
    final = _epochs(step, titles, sampler, cfg, table, validate if val else None, result, stage)
    if group is not None:
        result.distributed = group.finish(final)
    result.embeddings = final.numpy().astype(np.float32).copy()
    return result


def _epochs(step, titles: PackedTitles, sampler: LeaveOneOutSampler, cfg: TrainConfig,
            table: torch.Tensor, validate, result: TrainResult, stage: Stage) -> torch.Tensor:
    """Epochs until cfg.epochs (more for a small guide: until cfg.min_examples examples), or
    cfg.patience epochs in a row without a better `validate()`
    figure (None, or patience 0: every epoch counts); each epoch's row is appended to
    result.history. Returns the table of the best epoch (patience 0: the last)."""
    best, best_state, bad_epochs = -1.0, None, 0
    t_start = time.perf_counter()
    n_epochs = max(cfg.epochs, -(-cfg.min_examples // max(len(sampler), 1)))
    epochs = stage.bar(range(1, n_epochs + 1), total=n_epochs, unit="epoch")
    for epoch in epochs:
        t0 = time.perf_counter()
        loss_sum, n_examples = run_epoch(step, titles, example_batches(sampler, cfg, titles), cfg.workers)
        seconds = time.perf_counter() - t0
        result.examples += n_examples
        val_p = validate() if validate is not None else None
        row = {"epoch": epoch, "loss": loss_sum / max(n_examples, 1), "val_p_at_10": val_p,
               "examples": n_examples, "seconds": round(seconds, 3),
               "examples_per_s": round(n_examples / seconds, 1) if seconds else None}
        result.history.append(row)
        epochs.set_postfix(loss=f"{row['loss']:.4f}", val="n/a" if val_p is None else f"{val_p:.3f}",
                           ex_s=f"{row['examples_per_s'] or 0:,.0f}")
        if val_p is None or cfg.patience == 0:    # every epoch counts: the last table is kept
            result.best_epoch = epoch
            continue
        if val_p > best + 1e-4:
            best, best_state, bad_epochs = val_p, table.clone(), 0
            result.best_epoch = epoch
        else:
            bad_epochs += 1
            if bad_epochs >= cfg.patience:
                break
    result.seconds = time.perf_counter() - t_start
    return best_state if best_state is not None else table


def example_batches(sampler: LeaveOneOutSampler, cfg: TrainConfig, titles: PackedTitles | None = None):
    """(shows, b, allowed) per batch: b*(n-1) context shows (some as their views, when
    `titles` has views), b positives, the candidates."""
    batches = sampler.batches(cfg.batch_size)
    views = titles is not None and titles.views > 1
    while True:
        with record_function("sample"):
            context, pos, _cat = next(batches, (None, None, None))
            if context is None:
                return
            cand = sampler.candidates(cfg.neg_candidates)
            allowed = torch.from_numpy(~sampler.shares_category(pos, cand))
            if views:
                context = _views(context, cfg, titles, sampler.rng)
            shows = np.concatenate([context.ravel(), pos, cand])
        yield shows, len(pos), allowed


def _views(shows: np.ndarray, cfg: TrainConfig, titles: PackedTitles, rng) -> np.ndarray:
    """Each context show as its text view (view 1, probability cfg.text_view) or its guide
    view (view 2, cfg.guide_view), else as itself; a view without tokens is not used."""
    r = rng.random(shows.shape)
    out = shows.copy()
    lo = 0.0
    for k, p in enumerate((cfg.text_view, cfg.guide_view)[: titles.views - 1], 1):
        view = shows + k * titles.n_shows
        pick = (r >= lo) & (r < lo + p) & (titles.length[view] > 0)
        out[pick] = view[pick]
        lo += p
    return out


def run_epoch(step, titles: PackedTitles, batches, workers: int = 1) -> tuple[float, int]:
    """Apply `step` to every batch; returns (summed loss, examples).

    workers > 1: Hogwild! (as StarSpace's threads): that many threads take batches from
    one queue and update the shared table without locks. Torch kernels release the GIL,
    so the steps run on all cores; the result is no longer bit-for-bit reproducible.
    """
    if workers <= 1:
        loss = n = 0
        for shows, b, allowed in batches:
            loss += step(titles, shows, b, allowed) * b
            n += b
        return loss, n
    todo: queue.Queue = queue.Queue(maxsize=4 * workers)
    totals, errors = [[0.0, 0] for _ in range(workers)], []

    def work(total: list) -> None:
        while (item := todo.get()) is not None:
            if errors:
                continue                      # drain the queue after a failure
            try:
                total[0] += step(titles, *item) * item[1]
                total[1] += item[1]
            except BaseException as e:       # re-raised in the caller's thread
                errors.append(e)

    threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in totals]
    for t in threads:
        t.start()
    try:
        for item in batches:
            if errors:
                break
            todo.put(item)
    finally:
        for _ in threads:
            todo.put(None)
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return sum(t[0] for t in totals), sum(t[1] for t in totals)
