"""Data-parallel training over torch.distributed (gloo, CPU): K ranks, one table each.

Every rank samples the same batches (the same seed, so the same permutation of the
leave-one-out memberships, contexts and candidate pool) and takes its slice of each
batch's examples: rank r trains on its shard of the examples. It computes the gradient of
its examples' rows (RowGradient, each example weighted 1 / the whole batch), the
ranks sum those gradients (exchange.Exchange), and every rank applies the same row-wise
Adagrad step (fused.rowwise_adagrad_), so the tables stay identical (checked at the end: a
digest per rank). The math is the single-process step's: one rank or K give its table up
to float rounding (the order of the additions).

Rank 0 alone reads the dumps (ingest, catalog and tokenizer are not sharded), sends the
others what training needs (`send_training`: the packed titles and views, supervision,
series, the warm start, the training config), trains with them and alone writes and
publishes.

    with Group.open(rank, world, "env://") as group:   # under torchrun (cli: --distributed)
        if group.rank == 0:
            with group.leading():                       # tells the others to stop on failure
                train_model(dumps, out, cfg, group=group)
        else:
            result = follow(group)                      # None: rank 0 stopped before training
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import timedelta
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist

from epgembed.config import TrainConfig
from epgembed.artifact.manifest import DistributedTraining, ExchangeTraffic
from epgembed.build.model.exchange import Exchange, Traffic
from epgembed.build.model.kernels import context_bags, triplet_grad, unit_title_sums
from epgembed.build.model.fused import rowwise_adagrad_
from epgembed.build.model.rowgrad import row_gradients
from epgembed.build.model.sampling import PackedTitles
from epgembed.build.model.train import train

# The longest a rank waits in one collective. The others wait for rank 0's ingest before
# training starts: about an hour at 10M titles (docs/SCALE.md); a rank that dies ends the
# run sooner (torchrun stops the others).
WAIT_S = 4 * 3600
CHUNK = 64 << 20            # bytes per broadcast of an input array (gigabytes at 10M titles)
DEFAULT_EXCHANGE = "allgather"   # the least bytes and time at 2 ranks (exchange.py, docs/SCALE.md)


class Group:
    """This process's rank among `world`, the exchange of row gradients it uses, and the
    steps of a data-parallel run (Group.open joins the process group)."""

    def __init__(self, rank: int, world: int, exchange: str = DEFAULT_EXCHANGE):
        self.rank, self.world, self.exchange_method = rank, world, exchange
        self.exchange: Exchange | None = None
        self._sent = False
        self._wchar0: int | None = None

    @classmethod
    @contextmanager
    def open(cls, rank: int, world: int, init_method: str = "env://",
             exchange: str = DEFAULT_EXCHANGE, wait_s: float = WAIT_S) -> Iterator["Group"]:
        dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world,
                                timeout=timedelta(seconds=wait_s))
        try:
            yield cls(rank, world, exchange)
        finally:
            dist.destroy_process_group()

    def share(self, b: int) -> tuple[int, int]:
        """This rank's examples [lo, hi) of a batch of b: contiguous, sizes differing by one."""
        return self.rank * b // self.world, (self.rank + 1) * b // self.world

    # ------------------------------------------------ training (train._train calls these)
    def step(self, table: torch.Tensor, row_weights: torch.Tensor | None, cfg: TrainConfig,
             generator: torch.Generator) -> "ShardStep":
        """train.make_step for this rank: the compiled engine, one step thread."""
        if cfg.engine != "compiled":
            raise ValueError(f"distributed training steps with the compiled engine, not {cfg.engine!r}")
        if cfg.workers > 1:
            raise ValueError("distributed training runs one step thread per rank (workers 1): "
                             "add ranks instead of workers")
        self.exchange = Exchange(self.exchange_method, self.world, table.shape[0])
        self._wchar0 = _written()
        return ShardStep(self, table, row_weights, cfg, generator)

    def agreed(self, validate):
        """`validate` run by rank 0 alone, its figure given to every rank (early stopping
        then decides alike everywhere)."""
        def figure() -> float | None:
            x = torch.tensor([float("nan")], dtype=torch.float64)
            if self.rank == 0:
                value = validate()
                x[0] = float("nan") if value is None else value
            dist.broadcast(x, 0)
            return None if x[0] != x[0] else float(x[0])
        return figure

    def finish(self, table: torch.Tensor) -> DistributedTraining:
        """Every rank's table digest compared (RuntimeError on all ranks when they differ)
        and the run's figures, for the manifest's training summary."""
        digest = hashlib.sha256(np.ascontiguousarray(table.numpy()).tobytes()).digest()
        parts = [torch.empty(32, dtype=torch.uint8) for _ in range(self.world)]
        dist.all_gather(parts, torch.frombuffer(bytearray(digest), dtype=torch.uint8))
        digests = [bytes(p.tolist()).hex() for p in parts]
        if len(set(digests)) > 1:
            raise RuntimeError(f"the ranks' tables differ after training (sha256 {', '.join(digests)})")
        traffic = (self.exchange.traffic if self.exchange else Traffic()).summary()
        written = _written()
        if written is not None and self._wchar0 is not None:
            traffic["written_bytes"] = written - self._wchar0
        return DistributedTraining(ranks=self.world, exchange=self.exchange_method,
                                   table_sha256=digests[0], traffic=ExchangeTraffic(**traffic))

    # ------------------------------------------------ inputs: rank 0 -> the others
    def send_inputs(self, arrays: dict[str, np.ndarray | None], meta: dict) -> None:
        """Rank 0: the training inputs to every other rank (`receive_inputs`)."""
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items() if v is not None}
        head = {**meta, "arrays": [[k, v.dtype.str, list(v.shape)] for k, v in arrays.items()]}
        self._header(json.dumps(head).encode("utf-8"))
        self._sent = True
        for a in arrays.values():
            _broadcast(a.reshape(-1).view(np.uint8))

    def receive_inputs(self) -> tuple[dict[str, np.ndarray], dict] | None:
        """The others: rank 0's arrays and meta; None when rank 0 stopped instead."""
        head = self._header(None)
        if not head:
            return None
        meta = json.loads(head.decode("utf-8"))
        arrays = {}
        for name, dtype, shape in meta.pop("arrays"):
            a = np.empty(shape, dtype=np.dtype(dtype))
            _broadcast(a.reshape(-1).view(np.uint8))
            arrays[name] = a
        return arrays, meta

    @contextmanager
    def leading(self) -> Iterator[None]:
        """Rank 0's run: if it ends (returns or raises) before sending the inputs, the
        others are told to stop."""
        try:
            yield
        finally:
            if not self._sent:
                self._header(b"")

    def _header(self, data: bytes | None) -> bytes:
        size = torch.tensor([len(data) if data is not None else 0], dtype=torch.int64)
        dist.broadcast(size, 0)
        buf = np.frombuffer(data, np.uint8).copy() if data is not None else np.empty(int(size[0]), np.uint8)
        if len(buf):
            _broadcast(buf)
        return buf.tobytes()


def _written() -> int | None:
    """Bytes this process has written (files, pipes and gloo's sockets; Linux's
    /proc/self/io wchar), None where that is not available: the measured side of
    exchange.Traffic's count."""
    try:
        with open("/proc/self/io", encoding="ascii") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("wchar:"))
    except (OSError, StopIteration, ValueError):
        return None


def _broadcast(flat: np.ndarray) -> None:
    """Rank 0's bytes into every rank's `flat` (a uint8 view), in chunks."""
    for lo in range(0, len(flat), CHUNK):
        dist.broadcast(torch.from_numpy(flat[lo: lo + CHUNK]), 0)


def shard_batch(shows: np.ndarray, b: int, n: int, lo: int, hi: int) -> np.ndarray:
    """The titles of examples [lo, hi) of a batch laid out as example_batches lays it out
    (b x (n-1) contexts, b positives, then the candidates), in the same layout: their
    contexts, their positives, every candidate."""
    ctx = b * (n - 1)
    return np.concatenate([shows[:ctx].reshape(b, n - 1)[lo:hi].ravel(), shows[ctx + lo: ctx + hi],
                           shows[b * n:]])


class RowGradient:
    """grad(titles, shows, b, allowed, n, scale, order) -> (loss_sum, rows, row_grad): the
    batch's summed loss and the gradient of every distinct token row it uses, from the
    current table, nothing applied. As CompiledStep, but each example's loss is weighted
    by `scale` instead of 1 / b (1 / the global batch, when this is one rank's share of it);
    `order` ([b, C]) ranks the candidates when they are random (hard=False). The rows and
    gradients returned are this thread's work arrays: read them before its next call."""

    def __init__(self, table: np.ndarray, k: int, margin: float, hard: bool = True,
                 generator: torch.Generator | None = None):
        self.table, self.k, self.margin, self.hard, self.generator = table, k, float(margin), hard, generator
        self._local = threading.local()

    def _work(self, size: int) -> dict:
        """This thread's work arrays, for `size` token occurrences (grown, never shrunk)."""
        w = getattr(self._local, "work", None)
        if w is None:
            w = self._local.work = {"slot_of": np.full(len(self.table), -1, np.int32), "size": -1}
        if w["size"] < size:
            size = max(size, 2 * w["size"])
            w.update(size=size, occ_slot=np.empty(size, np.int32), counts=np.empty(size, np.int64),
                     occ_title=np.empty(size, np.int32), occ_w=np.empty(size, np.float32),
                     rows=np.empty(size, np.int64),
                     grad=np.empty((size, self.table.shape[1]), np.float32))
        return w

    def __call__(self, titles, shows: np.ndarray, b: int, allowed, n: int, scale: float,
                 order: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
        dim = self.table.shape[1]
        if b == 0:
            return 0.0, np.empty(0, np.int64), np.empty((0, dim), np.float32)
        weights = titles.weights if titles.weights is not None else np.ones(len(titles.tokens), np.float32)
        allowed = allowed.numpy() if isinstance(allowed, torch.Tensor) else allowed
        uniq, slots = np.unique(shows, return_inverse=True)
        slots = slots.reshape(-1)
        t = len(uniq)
        u, norms = np.empty((t, dim), np.float32), np.empty(t, np.float32)
        unit_title_sums(self.table, titles.tokens, titles.start, titles.length, weights, uniq, u, norms)
        bag, bag_norm = np.empty((b, dim), np.float32), np.empty(b, np.float32)
        context_bags(u, slots, b, n, bag, bag_norm)
        scores = torch.from_numpy(bag).mm(torch.from_numpy(u[slots[b * n:]]).T).numpy()
        if order is None:
            order = scores if self.hard else torch.rand(scores.shape, generator=self.generator).numpy()
        d_u, d_sums = np.empty((t, dim), np.float32), np.empty((t, dim), np.float32)
        loss = triplet_grad(u, norms, slots, b, n, bag, bag_norm, scores, order, allowed,
                            self.k, self.margin, d_u, d_sums)
        if scale != 1.0 / b:                        # triplet_grad weighs each example 1 / b
            d_sums *= np.float32(scale * b)
        occ = int(titles.length[uniq].sum())
        work = self._work(occ)
        m = row_gradients(titles.tokens, titles.start, titles.length, weights, uniq, d_sums,
                          work["slot_of"], work["occ_slot"], work["counts"], work["occ_title"],
                          work["occ_w"], work["rows"], work["grad"])
        return float(loss) * b, work["rows"][:m], work["grad"][:m]


class ShardStep:
    """step(titles, shows, b, allowed, n) -> the whole batch's loss, as train.make_step's
    steps: this rank's slice of the batch's examples, the row gradients summed over the
    ranks, the same Adagrad step on every rank."""

    def __init__(self, group: Group, table: torch.Tensor, row_weights: torch.Tensor | None,
                 cfg: TrainConfig, generator: torch.Generator):
        self.group, self.table, self.row_weights, self.lr = group, table, row_weights, float(cfg.lr)
        self.accum = torch.zeros(len(table))
        self.hard, self.generator = cfg.hard_negatives, generator
        self.grad = RowGradient(table.numpy(), cfg.max_negatives, cfg.margin, cfg.hard_negatives, generator)

    def __call__(self, titles, shows: np.ndarray, b: int, allowed, n: int) -> float:
        lo, hi = self.group.share(b)
        mine = shard_batch(shows, b, n, lo, hi)
        allowed = (allowed.numpy() if isinstance(allowed, torch.Tensor) else allowed)[lo:hi]
        order = None   # random negatives: the whole batch's draw, as one process makes it
        if not self.hard:
            order = torch.rand((b, len(shows) - b * n), generator=self.generator).numpy()[lo:hi]
        loss, rows, grad = self.grad(titles, mine, hi - lo, allowed, n, 1.0 / b, order)
        # rows with no gradient (their examples met the margin, candidates nobody picked):
        # their step changes nothing, so they are not sent (~5% of the rows on de_magenta)
        moved = grad.any(axis=1)
        rows, grads, total = self.group.exchange(rows[moved], grad[moved], loss)
        rowwise_adagrad_(self.table, self.accum, torch.from_numpy(rows), torch.from_numpy(grads), self.lr,
                         self.row_weights)
        return total / b


def launch(args: list[str], ranks: int, **run) -> subprocess.CompletedProcess:
    """`epgembed ARGS` (with --distributed) as `ranks` processes on this machine: torchrun
    --standalone (a free port on loopback). RuntimeError with the end of its output when a
    rank fails."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={ranks}", "-m", "epgembed.cli.main", *args]
    done = subprocess.run(command, capture_output=True, text=True, **run)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise RuntimeError(f"{' '.join(command)}: exit {done.returncode}\n{tail}")
    return done


def send_training(group: Group, token_ids: np.ndarray, show_categories: list[list[int]],
                  n_categories: int, cfg: TrainConfig, vocab_size: int, init: np.ndarray | None,
                  token_weights: np.ndarray | None, views: tuple,
                  series: np.ndarray | None) -> PackedTitles:
    """Rank 0: train()'s inputs to the others (`follow`): the shows and their views packed
    (no padding, no second copy on the other ranks), the supervision, series, the warm
    start and the config. Returns the packed titles, for rank 0's own train(titles=)."""
    titles = PackedTitles(token_ids, token_weights, views)
    sizes = np.array([len(c) for c in show_categories], np.int64)
    arrays = {"tokens": titles.tokens, "weights": titles.weights, "length": titles.length,
              "init": init, "series": series, "category_sizes": sizes,
              "categories": np.fromiter((c for cats in show_categories for c in cats), np.int64,
                                        int(sizes.sum()))}
    group.send_inputs(arrays, {"n_categories": n_categories, "vocab_size": vocab_size,
                               "n_shows": len(titles), "train": asdict(cfg)})
    return titles


def follow(group: Group):
    """A rank other than 0: receive rank 0's training inputs and train with it; returns the
    TrainResult (the table rank 0 writes), or None when rank 0 stopped before training."""
    got = group.receive_inputs()
    if got is None:
        return None
    a, meta = got
    show_categories = [c.tolist() for c in np.split(a["categories"], np.cumsum(a["category_sizes"])[:-1])]
    titles = PackedTitles.from_packed(a["tokens"], a.get("weights"), a["length"], meta["n_shows"])
    cfg = replace(TrainConfig(**meta["train"]), progress=False)     # rank 0 draws the bar
    return train(None, show_categories, meta["n_categories"], cfg,
                 meta["vocab_size"], init=a.get("init"), series=a.get("series"), group=group,
                 titles=titles)
