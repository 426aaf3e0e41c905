"""Leave-one-out training with a margin ranking loss (METHOD.md, "Training").

An example is one (show, category) membership: the show is the positive, N-1 other shows
of the same category form the bag that predicts it, and negatives are the hardest
(highest-scoring) shows of a shared per-batch candidate pool that share no category with
the positive. One matmul scores the whole pool for the whole batch.

Entry point: `train(token_ids, show_categories, n_categories, cfg) -> TrainResult`.
"""
from __future__ import annotations

import copy
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import record_function

from .config import TrainConfig
from .model import (TitleEncoder, bag_of, fused_triplet_grad, inverse_frequency_weights,
                    margin_ranking_loss, rowwise_adagrad_, scale_sparse_grad_, select_negatives,
                    packed_sums, title_vectors)
from .sampling import LeaveOneOutSampler, PackedTitles


@dataclass
class TrainResult:
    embeddings: np.ndarray            # [V, D] float32, row 0 (PAD) zero
    token_counts: np.ndarray          # [V] int64: labelled training shows using the token
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    examples: int = 0
    seconds: float = 0.0
    val_shows: list[int] = field(default_factory=list)

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
                         block: int = 1 << 24) -> float:
    """Mean share of a held-out show's k nearest labelled shows that share a category.
    Scores are computed a few held-out shows at a time (at most `block` floats)."""
    if not val or len(train_labelled) == 0:
        return float("nan")
    k = min(k, len(train_labelled))
    labelled = vectors[train_labelled]
    rows = max(1, block // len(train_labelled))
    hits = 0
    for lo in range(0, len(val), rows):
        part = val[lo: lo + rows]
        top = np.argpartition(-(vectors[part] @ labelled.T), k - 1, axis=1)[:, :k]
        for row, show in enumerate(part):
            cats = set(show_categories[show])
            hits += sum(1 for j in top[row] if cats.intersection(show_categories[train_labelled[j]]))
    return hits / (len(val) * k)


def all_title_vectors(table: torch.Tensor, titles: PackedTitles, batch: int = 65536) -> np.ndarray:
    """Unit vectors of every show, from the packed titles, `batch` shows at a time."""
    out = []
    with torch.no_grad():
        for i in range(0, len(titles), batch):
            tokens, offsets, weights, slots = titles.pack(np.arange(i, min(i + batch, len(titles))))
            sums = packed_sums(table, torch.from_numpy(tokens), torch.from_numpy(offsets),
                               None if weights is None else torch.from_numpy(weights))
            out.append(F.normalize(sums, dim=-1, eps=1e-12)[torch.from_numpy(slots)])
    return torch.cat(out).numpy() if out else np.zeros((0, table.shape[1]), np.float32)


def train(token_ids: np.ndarray, show_categories: list[list[int]], n_categories: int,
          cfg: TrainConfig, vocab_size: int, init: np.ndarray | None = None,
          token_weights: np.ndarray | None = None,
          context_pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> TrainResult:
    """Train the token table. token_ids: [S, L] padded ids of every show's title;
    token_weights: optional [S, L] weights of those tokens in the title's sum.
    context_pairs: optional (title-only ids [S, L1], description ids [S, L2], their weights)
    for the self-supervised title -> description task (cfg.context_task)."""
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    val = split_validation(show_categories, cfg, rng)
    val_set = set(val)
    train_cats = [[] if s in val_set else c for s, c in enumerate(show_categories)]
    sampler = LeaveOneOutSampler(train_cats, n_categories, cfg.n, rng)
    titles = PackedTitles(token_ids, token_weights)

    model = TitleEncoder(vocab_size, cfg.dim, cfg.init_std, generator=gen)
    if init is not None:
        with torch.no_grad():
            model.emb.weight.copy_(torch.from_numpy(init))
    counts = np.zeros(vocab_size, np.int64)
    if len(sampler.labelled):   # occurrences in labelled training shows (packed: no PAD)
        labelled = np.zeros(len(titles), bool)
        labelled[sampler.labelled] = True
        counts = np.bincount(titles.tokens[np.repeat(labelled, titles.length)],
                             minlength=vocab_size).astype(np.int64)
    weights = inverse_frequency_weights(torch.from_numpy(counts), cfg.inv_freq_power, cfg.inv_freq_cap)
    step = _make_step(model, weights, cfg, gen)

    result = TrainResult(np.zeros(0), counts, val_shows=val)
    if len(sampler) == 0:
        result.embeddings = model.emb.weight.detach().numpy().copy()
        return result
    best, best_state, bad_epochs = -1.0, None, 0
    progress = _progress(cfg)
    t_start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        loss_sum, n_examples = run_epoch(step, titles, _batches(sampler, cfg), cfg.workers)
        if context_pairs is not None and cfg.context_task > 0:
            n_examples += _context_epoch(step, context_pairs, int(cfg.context_task * len(sampler)),
                                         cfg, rng)
        seconds = time.perf_counter() - t0
        result.examples += n_examples
        table = model.emb.weight.detach()
        val_p = validation_precision(all_title_vectors(table, titles), show_categories, val,
                                     sampler.labelled) if val else float("nan")
        row = {"epoch": epoch, "loss": loss_sum / max(n_examples, 1), "val_p_at_10": val_p,
               "examples": n_examples, "seconds": round(seconds, 3),
               "examples_per_s": round(n_examples / seconds, 1) if seconds else None}
        result.history.append(row)
        progress(row)
        if not val:
            result.best_epoch = epoch
            continue
        if val_p > best + 1e-4:
            best, best_state, bad_epochs = val_p, copy.deepcopy(model.emb.weight.detach()), 0
            result.best_epoch = epoch
        else:
            bad_epochs += 1
            if bad_epochs >= cfg.patience:
                break
    progress(None)
    result.seconds = time.perf_counter() - t_start
    final = best_state if best_state is not None else model.emb.weight.detach()
    result.embeddings = final.numpy().astype(np.float32).copy()
    return result


def _batches(sampler: LeaveOneOutSampler, cfg: TrainConfig):
    """(shows, b, allowed) per batch: b*(n-1) context shows, b positives, the candidates."""
    batches = sampler.batches(cfg.batch_size)
    while True:
        with record_function("sample"):
            context, pos, _cat = next(batches, (None, None, None))
            if context is None:
                return
            cand = sampler.candidates(cfg.neg_candidates)
            allowed = torch.from_numpy(~sampler.shares_category(pos, cand))
            shows = np.concatenate([context.ravel(), pos, cand])
        yield shows, len(pos), allowed


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


def _context_epoch(step, pairs, n_examples: int, cfg: TrainConfig, rng: np.random.Generator) -> int:
    """Title -> own description examples (n=2 leave-one-out); returns examples done."""
    title_ids, ctx_ids, ctx_w = pairs
    eligible = np.flatnonzero((ctx_ids > 0).any(1) & (title_ids > 0).any(1))
    if len(eligible) < 2 or n_examples <= 0:
        return 0
    done = 0
    for start in range(0, n_examples, cfg.batch_size):
        b = min(cfg.batch_size, n_examples - start)
        items = eligible[rng.integers(0, len(eligible), b)]
        cand = eligible[rng.integers(0, len(eligible), cfg.neg_candidates)]
        allowed = torch.from_numpy(items[:, None] != cand[None, :])
        t, c = title_ids[items], ctx_ids[np.concatenate([items, cand])]
        width = max(t.shape[1], c.shape[1])
        ids = np.zeros((len(t) + len(c), width), np.int64)
        ids[: len(t), : t.shape[1]] = t
        ids[len(t):, : c.shape[1]] = c
        w = np.zeros(ids.shape, np.float32)
        w[: len(t), : t.shape[1]] = t > 0
        w[len(t):, : c.shape[1]] = ctx_w[np.concatenate([items, cand])]
        step(PackedTitles(ids, w), np.arange(len(ids)), b, allowed, n=2)
        done += b
    return done


def _make_step(model: TitleEncoder, weights: torch.Tensor, cfg: TrainConfig,
               gen: torch.Generator):
    """step(titles, shows, b, allowed, n) -> batch loss: one optimisation step on the
    titles `shows` (b*(n-1) context, b positives, then the candidates) of `titles`."""
    w = weights if cfg.inv_freq else None
    table = model.emb.weight
    if cfg.engine == "compiled":
        from .kernels import CompiledStep        # numba compiles (or loads) the kernels here
        compiled = CompiledStep(table.detach().numpy(), np.zeros(table.shape[0], np.float32),
                                (w if w is not None else torch.ones(table.shape[0])).numpy(),
                                cfg.max_negatives, cfg.margin, cfg.lr, cfg.hard_negatives, gen)
        return lambda titles, shows, b, allowed, n=cfg.n: compiled(titles, shows, b, allowed, n)
    if cfg.engine == "fused":
        accum = torch.zeros(table.shape[0], dtype=table.dtype)

        def fused(titles: PackedTitles, shows: np.ndarray, b: int, allowed: torch.Tensor,
                  n: int = cfg.n) -> float:
            with record_function("pack"):
                tokens, offsets, tw, slots = (None if x is None else torch.from_numpy(x)
                                              for x in titles.pack(shows))
            with torch.no_grad():
                loss, rows, grad = fused_triplet_grad(table, tokens, offsets, slots, b, n,
                                                      allowed, cfg.max_negatives, cfg.margin,
                                                      cfg.hard_negatives, gen, tw)
                with record_function("optimizer"):
                    rowwise_adagrad_(table, accum, rows, grad, cfg.lr, w)
            return float(loss)
        return fused
    if cfg.engine != "autograd":
        raise ValueError(f"unknown engine {cfg.engine!r}")
    if cfg.optimizer == "adagrad":
        opt = torch.optim.Adagrad(model.parameters(), lr=cfg.lr)
    elif cfg.optimizer == "sparse_adam":
        opt = torch.optim.SparseAdam(list(model.parameters()), lr=cfg.lr)
    else:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}")

    def autograd(titles: PackedTitles, shows: np.ndarray, b: int, allowed: torch.Tensor,
                 n: int = cfg.n) -> float:
        ids, tw = titles.padded(shows)
        ids = torch.from_numpy(ids)
        vecs = title_vectors(table, ids, None if tw is None else torch.from_numpy(tw))
        ctx_v = vecs[: b * (n - 1)].view(b, n - 1, -1)
        pos_v, cand_v = vecs[b * (n - 1): b * n], vecs[b * n:]
        bag = bag_of(ctx_v)
        idx, valid = select_negatives(bag, cand_v, allowed, cfg.max_negatives,
                                      hard=cfg.hard_negatives, generator=gen)
        loss = margin_ranking_loss(bag, pos_v, cand_v[idx], valid, cfg.margin)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if w is not None:
            scale_sparse_grad_(table.grad, w)
        opt.step()
        return float(loss.detach())
    return autograd


def _progress(cfg: TrainConfig):
    """update(row) after each epoch; update(None) when training ends (closes the bar)."""
    if not cfg.progress:
        return lambda row: None
    from tqdm import tqdm
    bar = tqdm(total=cfg.epochs, unit="epoch", dynamic_ncols=True)

    def update(row: dict | None) -> None:
        if row is None:
            bar.close()
            return
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.4f}", val=f"{row['val_p_at_10']:.3f}",
                        ex_s=f"{row['examples_per_s'] or 0:,.0f}")
    return update
