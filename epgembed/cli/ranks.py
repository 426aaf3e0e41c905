"""`--distributed` for `train` and `nightly`: the command as one rank of a data-parallel run
started by torchrun (epgembed/build/model/distributed.py).

    torchrun --standalone --nproc-per-node=2 -m epgembed.cli.main train DUMP --out M --distributed

torchrun starts the ranks and sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (read here,
at the edge). Rank 0 runs the command (ingest, train with the others, write, publish); every
other rank receives the training inputs from rank 0, trains, prints one line and exits 0.
"""
from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Callable

ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--distributed", action="store_true",
                   help="one rank of a data-parallel run started by torchrun (gloo, CPU): "
                        "torchrun --standalone --nproc-per-node=2 -m epgembed.cli.main "
                        f"{p.prog.split()[-1]} ... --distributed; rank 0 reads the input and "
                        "alone writes, the others train beside it (docs/SCALE.md)")
    p.add_argument("--exchange", choices=("allgather", "union"), default="allgather",
                   help="how the ranks sum each step's row gradients (default allgather: the "
                        "least traffic at 2-3 ranks; union from about 4)")


def ranked(args: argparse.Namespace, lead: Callable[[object], int], what: str) -> int:
    """lead(None) for a plain run; with --distributed, lead(group) on rank 0 and the
    follower's part on the others (`what` rank 0 alone does, for their line)."""
    if not args.distributed:
        return lead(None)
    missing = [name for name in ENV if name not in os.environ]
    if missing:
        raise ValueError(f"--distributed runs under torchrun ({', '.join(missing)} not set): "
                         f"torchrun --standalone --nproc-per-node=2 -m epgembed.cli.main {args.command} "
                         "... --distributed")
    from epgembed.build.model.distributed import Group, follow
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    with Group.open(rank, world, "env://", exchange=args.exchange) as group:
        if rank == 0:
            with group.leading():
                return lead(group)
        result = follow(group)
    if result is None:
        print(f"rank {rank} of {world}: rank 0 stopped before training (its output says why)")
    else:
        digest = hashlib.sha256(result.embeddings.tobytes()).hexdigest()
        print(f"rank {rank} of {world}: trained {len(result.history)} epochs, "
              f"{result.examples:,} examples, table sha256 {digest}; rank 0 {what}")
    return 0
