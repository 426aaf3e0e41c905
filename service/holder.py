"""ModelHolder: the one reference to the model a worker serves, and its hot reload.

A holder serves either a models root (epgembed.registry layout: versions/<v>/ + `current`)
or one fixed model directory (no reload). For a root, every worker of a service serves the
version of one shared decision (service/shared.py, in the service's run directory): the
worker that finds the decision stale (`current` moved, the decided folder is gone, or a
forced reload) takes the decision lock, loads the version `current` names and records the
result: that version, or a refusal with the version served instead (the one this worker
serves, or the newest other version that loads). Every other worker reads the decision and
loads what it says; none chooses for itself, so a worker that restarts serves what the
others serve.

A daemon thread follows the decision every FOLLOW_SECONDS (at most), reads `current` every
`poll_seconds`, and does both at once when `request_reload()` is called (SIGHUP). A version
is loaded from its resolved, immutable folder versions/<v>/ (never through `current`),
fully validated by `load_model` (manifest format, file hashes, dimensions, counts,
self-test), its title search index is built, and only then is the single `_serving`
reference replaced. A request takes `get()` once and keeps that object, so requests in
flight finish on the model they started with. A refused version is logged, reported to the
listener (a metric) and not retried until `current` changes or a reload is forced. Each
tick also checks that the served version's files are still the ones loaded
(service/integrity.py): a file rewritten, truncated or removed under the workers refuses
that version the same way, and every worker falls back (the newest other version that loads).
`readiness()` is what /readyz answers: not ready while the served folder is missing, any
live worker serves another version than the decision, or a check of the models root has
hung. It never touches the models root itself (a hung NFS mount would hold the request
thread): it answers from what the watcher saw at its last check (`RootView`, a tick old, or
as old as a model load or a wait for the decision lock in the running check) and the run
directory's files, which are local.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

from msgspec import to_builtins

from epgembed.query.load import load_model
from epgembed.registry import current_version, versions_dir
from epgembed.fsutil import utc

from .integrity import ServedFiles, stamps
from epgembed.query.search import TitleIndex
from .serving import ReloadListener, RootView, Serving, is_model_dir, log_event
from .shared import Decision, Refused, Shared

FOLLOW_SECONDS = 1.0     # how often a worker re-reads the shared decision (cheap: one small file)
STUCK_SECONDS = 10.0     # a check of the root running longer (outside a long wait): storage hangs
LOAD_STUCK_SECONDS = 600.0   # a long wait (a model load, the decision lock) running longer (a
                             # 1M-title model loads in about a minute)


class ModelHolder:
    def __init__(self, path: Path, *, poll_seconds: float, verify: bool = True,
                 listener: ReloadListener | None = None, run_dir: Path | None = None,
                 stuck_seconds: float = STUCK_SECONDS, load_stuck_seconds: float = LOAD_STUCK_SECONDS):
        self.path = Path(path)
        self.single = is_model_dir(self.path)
        self.poll_seconds = poll_seconds
        self.verify = verify
        self.listener = listener
        self.shared = Shared(run_dir)           # the decision all workers follow
        self._serving: Serving | None = None
        self._files: ServedFiles | None = None   # the served version's files as loaded
        self._damage: str | None = None          # what changed in them, at the last check
        self._lock = threading.Lock()          # one load at a time
        self._wake = threading.Event()
        self._force = False
        self._force_at = 0.0                   # when the last reload was requested
        self._stop = False
        self._thread: threading.Thread | None = None
        self._refused: Refused | None = None   # the last refusal
        self._checked_at: float | None = None
        self._flags: dict[str, bool] = {}
        self._view: RootView | None = None     # the last completed check's view of the root
        # while a check runs: (its start, the start of a long wait in it: a model load or the
        # decision lock held by a worker that loads), time.monotonic()
        self._busy: tuple[float, float | None] | None = None
        self.stuck_seconds, self.load_stuck_seconds = stuck_seconds, load_stuck_seconds

    # ------------------------------------------------------------------ reading
    def get(self) -> Serving | None:
        return self._serving

    @property
    def mode(self) -> str:
        return "model_dir" if self.single else "models_root"

    def not_ready_reason(self) -> str | None:
        """Why nothing is served (None when a model is), from the last check's view."""
        if self._serving is not None:
            return None
        if self._refused:
            return f"model {self._refused.name} refused: {self._refused.reason}"
        hung = self.hung()
        if hung:
            return hung
        if not self.single and self._view is not None and self._view.current is None:
            return f"no model published yet ({self.path.name}/current is missing)"
        return "no model loaded"

    def hung(self) -> str | None:
        """Why the running check of the root counts as hung (storage that does not answer),
        or None: a check past stuck_seconds outside a long wait, or a long wait (a model
        load, the decision lock while another worker loads) past load_stuck_seconds."""
        busy, now = self._busy, time.monotonic()
        if busy is None:
            return None
        began, long_wait = busy
        serves = "; the held model serves on" if self._serving is not None else ""
        if long_wait is not None and now - long_wait > self.load_stuck_seconds:
            return f"a model load has run for {now - long_wait:.0f} s (the models root slow or hung{serves})"
        if long_wait is None and now - began > self.stuck_seconds:
            return f"the models root has not answered for {now - began:.0f} s (storage hung?{serves})"
        return None

    def _long_wait(self, waiting: bool) -> None:
        """Mark the start (or the end) of a long wait inside the running check."""
        if self._busy is not None:
            now = time.monotonic()
            self._busy = (self._busy[0], now) if waiting else (now, None)

    def status(self) -> dict:
        s = self._serving
        d = None if self.single else self.shared.read()
        return {"mode": self.mode, "serving": s.name if s else None, "refused": to_builtins(self._refused),
                "checked_at": None if self._checked_at is None else utc(self._checked_at),
                "poll_seconds": None if self.single else self.poll_seconds, "decision": to_builtins(d)}

    def readiness(self) -> tuple[bool, dict]:
        """(ready, details) for /readyz: a model is served, its folder was there at the last
        check, it is the shared decision's version in this and every other live worker, and
        no check of the root hangs. Reads the run directory only, never the models root."""
        s = self._serving
        if s is None:
            return False, {"reason": self.not_ready_reason()}
        body: dict = {"model": {"version": s.version}}
        if self.single:
            return True, body
        d = self.shared.read()
        workers = self.shared.workers()
        decided = d.serve if d else None
        view = self._view
        reasons = []
        hung = self.hung()
        if hung:
            reasons.append(hung)
        if (view is not None and view.served_folder_missing) or self._damage == "the folder is gone":
            reasons.append(f"the served folder versions/{s.name} is missing (deleted while served)")
        elif self._damage is not None:
            reasons.append(f"the files of versions/{s.name} changed since it was loaded: {self._damage}")
        if decided != s.name:
            reasons.append(f"this worker serves {s.name}, the workers' shared decision is {decided or 'none'}")
        others = [f"pid {pid} serves {v or 'nothing'}" for pid, v in sorted(workers.items())
                  if pid != os.getpid() and v != decided]
        if others:
            reasons.append("workers disagree: " + ", ".join(others))
        body.update(current=view.current if view else None, decision=to_builtins(d),
                    workers={str(pid): v for pid, v in sorted(workers.items())},
                    root_checked_at=utc(view.at) if view else None)
        if reasons:
            body["reason"] = "; ".join(reasons)
        return not reasons, body

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Load the first model (synchronously) and, for a root, start the watcher thread."""
        if self.single:
            reason = self._load(self.path, self.path.name)
            self._refused = Refused(self.path.name, reason) if reason else None
            return
        self.shared.record(None)
        try:
            self.check()
        except Exception as e:  # e.g. the decision lock held too long: the watcher retries
            log_event("reload_check_failed", logging.ERROR, error=repr(e))
        self._thread = threading.Thread(target=self._watch, name="epgembed-model-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def request_reload(self) -> None:
        """Check `current` now and retry a refused version (safe to call from a signal handler)."""
        self._force_at = time.time()
        self._force = True
        self._wake.set()

    def _watch(self) -> None:
        poll = self.poll_seconds
        tick = min(poll, FOLLOW_SECONDS) if poll > 0 else FOLLOW_SECONDS
        next_poll = time.monotonic() + poll
        while True:
            self._wake.wait(tick)
            self._wake.clear()
            if self._stop:
                return
            force, self._force = self._force, False
            now = time.monotonic()
            pointer = force or (poll > 0 and now >= next_poll)
            if pointer:
                next_poll = now + poll
            try:
                self.check(force=force, since=self._force_at if force else None, pointer=pointer)
            except Exception as e:  # the watcher must survive anything (e.g. a vanished root)
                log_event("reload_check_failed", logging.ERROR, error=repr(e))

    # ------------------------------------------------------------------ following the decision
    def check(self, force: bool = False, *, since: float | None = None, pointer: bool = True) -> bool:
        """Serve the shared decision's version, resolving `current` first when the decision is
        stale (`pointer`: compare it with `current`; `force`: a decision older than `since`,
        default now, is stale too, so a refused version is retried); True when swapped."""
        if self.single:
            if force:
                log_event("reload_ignored", reason="serving a single model directory")
            return False
        with self._lock:
            self._checked_at = time.time()
            self._busy = (time.monotonic(), None)
            try:
                return self._check(force, since, pointer)
            except Exception:
                self._report(self.shared.read())    # readiness still learns what the root shows
                raise
            finally:
                self._busy = None

    def _check(self, force: bool, since: float | None, pointer: bool) -> bool:
        """check() under the lock: follow the decision, then record what the root showed."""
        before = self._serving
        if force:
            since = time.time() if since is None else since
            log_event("reload_requested", current=current_version(self.path),
                      serving=before.name if before else None)
        d = self._decide(since, pointer)
        avoid, reason = d.serve, self._follow(d)
        if reason is None and self._serving is not None:   # its files changed since the load?
            avoid, reason = self._serving.name, self._inspect()
        if reason is not None:          # the decided version does not load or serve here: decide without it
            d = self._decide(since, pointer, avoid=Refused(avoid, reason))
            self._follow(d)
        if not self.shared.recorded():
            self.shared.record(self._serving.name if self._serving else None)
        self._report(d)
        return self._serving is not before

    def _valid(self, d: Decision | None, cur: str | None, since: float | None, avoid: str | None) -> bool:
        return (d is not None and d.current == cur and (since is None or d.at.timestamp() > since)
                and (d.serve is None or (d.serve != avoid and is_model_dir(versions_dir(self.path) / d.serve))))

    def _decide(self, since: float | None, pointer: bool, avoid: Refused | None = None) -> Decision:
        """The shared decision, resolved again under the lock when it is stale."""
        avoided = avoid.name if avoid else None
        d = self.shared.read()
        if d is not None and self._valid(d, current_version(self.path) if pointer else d.current, since, avoided):
            return d
        self._long_wait(True)                  # the lock's holder may be loading a large model
        with self.shared.locked():
            self._long_wait(False)
            d = self.shared.read()             # another worker may have resolved it meanwhile
            cur = current_version(self.path)
            if self._valid(d, cur, since, avoided):
                return d
            new = self.shared.write(self._resolve(cur, d, retry=since is not None, avoid=avoid))
            log_event("version_decided", current=cur, serve=new.serve,
                      refused=new.refused.name if new.refused else None, previous=d.serve if d else None)
            return new

    def _resolve(self, cur: str | None, prev: Decision | None, retry: bool,
                 avoid: Refused | None) -> Decision:
        """Under the lock: `current`'s version if it loads here, else a refusal and the version
        every worker serves instead (this worker loads it before the decision is written)."""
        refused = None
        if cur is not None:
            if avoid is not None and avoid.name == cur:
                refused = avoid
            elif not retry and prev is not None and prev.current == cur and prev.refused and prev.refused.name == cur:
                refused = prev.refused       # not retried until `current` changes or a reload is forced
            else:
                reason = self._ensure(cur)
                if reason is None:
                    return Decision(cur, cur)
                refused = Refused(cur, reason)
        serve = self._fallback({cur, avoid.name if avoid else None}, prev, newest=refused is not None)
        if refused is not None and serve is not None:
            log_event("model_fallback", logging.WARNING, serving=serve, refused=cur)
        return Decision(cur, serve, refused)

    def _fallback(self, skip: set[str | None], prev: Decision | None, newest: bool) -> str | None:
        """The first that loads of: what this worker serves, what the last decision served and,
        when `current` is refused, the other versions, newest first."""
        names = [n for n in (self._serving.name if self._serving else None, prev.serve if prev else None) if n]
        vdir = versions_dir(self.path)
        if newest and vdir.is_dir():
            names += sorted((p.name for p in vdir.iterdir() if p.is_dir() and not p.name.startswith(".")),
                            reverse=True)
        tried = set(skip)
        for name in names:
            if name in tried:
                continue
            tried.add(name)
            if is_model_dir(vdir / name) and self._ensure(name) is None:
                return name
        return None

    def _follow(self, d: Decision) -> str | None:
        """Serve the decision's version; the reason when it does not load here."""
        self._refused = d.refused
        if d.serve is None or self._serves_intact(d.serve):
            return None
        return self._load(versions_dir(self.path) / d.serve, d.serve)

    def _ensure(self, name: str) -> str | None:
        """Serve versions/<name> (already served and still there: nothing to do); the reason
        when it does not load."""
        folder = versions_dir(self.path) / name
        if self._serves_intact(name) and is_model_dir(folder):
            return None
        return self._load(folder, name)

    def _serves_intact(self, name: str) -> bool:
        """This worker serves `name`, and its files are as loaded (stat'ed now)."""
        return self._serving is not None and self._serving.name == name and self._inspect(roll=False) is None

    def _inspect(self, roll: bool = True) -> str | None:
        """What changed in the served version's files since the load (service/integrity.py)."""
        damage = self._files.check(roll) if self._files is not None else None
        if damage is not None and damage != self._damage:
            log_event("served_files_changed", logging.ERROR, name=self._serving.name, reason=damage)
        self._damage = damage
        return damage

    def _report(self, d: Decision | None) -> dict[str, bool]:
        """The problem flags (the listener's gauges) and the RootView readiness answers from."""
        s = self._serving
        cur = current_version(self.path)
        flags = {"served_folder_missing": s is not None and not is_model_dir(versions_dir(self.path) / s.name),
                 "version_disagreement": d is None or (s.name if s else None) != d.serve,
                 "current_refused": d is not None and d.refused is not None,
                 "served_files_changed": s is not None and self._damage is not None}
        if flags["served_folder_missing"] and not self._flags.get("served_folder_missing"):
            log_event("served_folder_missing", logging.ERROR, name=s.name)
        if flags != self._flags and self.listener:
            self.listener.problems(flags)
        self._flags = flags
        self._view = RootView(cur, flags["served_folder_missing"], time.time())
        return flags

    # ------------------------------------------------------------------ loading
    def _load(self, folder: Path, name: str) -> str | None:
        """Load, validate and swap in `folder`; None when served now, else the reason."""
        t0 = time.perf_counter()
        self._long_wait(True)
        try:
            before = stamps(folder)             # before the verification: a change during it shows
            model = load_model(folder, verify=self.verify)
            titles = TitleIndex.from_catalog(model.catalog)
        except Exception as e:  # anything wrong with a new model is a refusal, never a crash
            reason = str(e).replace(str(folder), name)
            log_event("model_refused", logging.ERROR, name=name, reason=reason,
                      serving=self._serving.name if self._serving else None)
            if self.listener:
                self.listener.refused(name, reason)
            return reason
        finally:
            self._long_wait(False)                         # the rest of the check: its own clock
        new = Serving(model, titles, name, time.time(), time.perf_counter() - t0)
        previous, self._serving = self._serving, new      # the one atomic swap
        self._files, self._damage = ServedFiles(folder, model.manifest, before, rolling=self.verify), None
        log_event("model_loaded", name=name, version=new.version, shows=len(model),
                  seconds=round(new.load_seconds, 3), previous=previous.name if previous else None)
        if not self.single:
            self.shared.record(name)
        if self.listener:
            self.listener.loaded(new, previous)
        return None


def install_sighup(holder: ModelHolder) -> None:
    """SIGHUP -> holder.request_reload(). Main thread only (a gunicorn worker's post_worker_init)."""
    signal.signal(signal.SIGHUP, lambda signum, frame: holder.request_reload())
