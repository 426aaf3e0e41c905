"""The one decision all workers of a service follow: which version of a models root to serve.

The workers of one gunicorn instance share a run directory (EPGEMBED_RUN_DIR; by default
gunicorn.conf.py makes a fresh one per instance) holding:

    decision.json        a Decision (below; /v1/model and /readyz show it as it is)
    decision.lock        flock, held by the one worker that resolves `current` (and loads it)
    workers/<pid>.json   {"pid", "serving"}: what each worker serves (readiness compares them)

A decision is written (atomically) only by a worker holding the lock; every worker reads it
on each check and serves what it says. Without a run directory (tests, a single process)
the same lives in memory. Failures of the run directory itself never stop a worker: a
decision that cannot be read counts as none, one that cannot be written is logged.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import msgspec

from epgembed.fsutil import atomic_write, flock_within

log = logging.getLogger("epgembed.service")

DECISION = "decision.json"
LOCK = "decision.lock"
WORKERS = "workers"
LOCK_SECONDS = 20.0     # waiting for another worker's load; below gunicorn's 30 s worker timeout


_SHAPE = dict(forbid_unknown_fields=True, frozen=True)
NEVER = datetime.fromtimestamp(0, timezone.utc)


class Refused(msgspec.Struct, **_SHAPE):
    """A version that did not load, and why."""
    name: str
    reason: str


class Decision(msgspec.Struct, **_SHAPE):
    """The version decision all workers follow: the file decision.json, and what /v1/model
    and /readyz show of it."""
    current: Annotated[Optional[str], msgspec.Meta(description="what `current` named when it was resolved")]
    serve: Annotated[Optional[str], msgspec.Meta(description="the version every worker serves")]
    refused: Annotated[Optional[Refused], msgspec.Meta(description="`current`, when it did not load")] = None
    at: Annotated[datetime, msgspec.Meta(description="when it was written (UTC, ISO 8601)")] = NEVER
    pid: Annotated[int, msgspec.Meta(description="the worker that wrote it")] = 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Shared:
    """The decision store of one service: files in `run_dir`, or memory when it is None."""

    def __init__(self, run_dir: Path | None):
        self.dir = Path(run_dir) if run_dir is not None else None
        self._memory: Decision | None = None
        self._workers: dict[int, str | None] = {}

    # ------------------------------------------------------------------ the decision
    def read(self) -> Decision | None:
        if self.dir is None:
            return self._memory
        try:
            return msgspec.json.decode((self.dir / DECISION).read_bytes(), type=Decision)
        except FileNotFoundError:
            return None
        except (OSError, msgspec.DecodeError) as e:   # unreadable: resolve again
            log.warning(json.dumps({"event": "decision_unreadable", "error": repr(e)}))
            return None

    def write(self, d: Decision) -> Decision:
        d = Decision(d.current, d.serve, d.refused, datetime.now(timezone.utc), os.getpid())
        if self.dir is None:
            self._memory = d
            return d
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.dir / DECISION, msgspec.json.encode(d))
        except OSError as e:      # this worker still serves it; the others resolve for themselves
            log.error(json.dumps({"event": "decision_write_failed", "error": repr(e)}))
        return d

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the resolver's lock (waits for another worker's load, at most LOCK_SECONDS)."""
        fd = self._open_lock()
        if fd is None:            # in memory (the holder's own lock serialises), or no lock to be had
            yield
            return
        try:
            if not flock_within(fd, LOCK_SECONDS):
                raise TimeoutError(f"{self.dir / LOCK}: held by another worker for over {LOCK_SECONDS:g} s")
            yield
        finally:
            os.close(fd)          # releases the lock (so does the kernel on kill -9)

    def _open_lock(self) -> int | None:
        if self.dir is None:
            return None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            return os.open(self.dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:      # resolve alone rather than not at all
            log.error(json.dumps({"event": "decision_lock_failed", "error": repr(e)}))
            return None

    # ------------------------------------------------------------------ what each worker serves
    def record(self, serving: str | None, pid: int | None = None) -> None:
        pid = os.getpid() if pid is None else pid
        if self.dir is None:
            self._workers[pid] = serving
            return
        try:
            (self.dir / WORKERS).mkdir(parents=True, exist_ok=True)
            atomic_write(self.dir / WORKERS / f"{pid}.json", json.dumps({"pid": pid, "serving": serving}).encode())
        except OSError as e:
            log.error(json.dumps({"event": "worker_record_failed", "error": repr(e)}))

    def recorded(self, pid: int | None = None) -> bool:
        pid = os.getpid() if pid is None else pid
        return pid in self._workers if self.dir is None else (self.dir / WORKERS / f"{pid}.json").is_file()

    def workers(self) -> dict[int, str | None]:
        """pid -> served version of every live worker that has a record."""
        if self.dir is None:
            return dict(self._workers)
        out = {}
        try:
            files = sorted((self.dir / WORKERS).glob("*.json"))
        except OSError:
            return out
        for f in files:
            try:
                rec = json.loads(f.read_bytes())
                pid = int(rec["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                continue           # gone meanwhile, or a stray file
            if alive(pid):
                out[pid] = rec.get("serving")
        return out
