"""ModelHolder: the one reference to the model a worker serves, and its hot reload.

A holder serves either a models root (epgembed.registry layout: versions/<v>/ + `current`)
or one fixed model directory (no reload). For a root, a daemon thread checks `current`
every `poll_seconds` and whenever `request_reload()` is called (SIGHUP). A new version is
loaded from its resolved, immutable folder versions/<v>/ (never through `current`, never
a folder being written), fully validated by `load_model` (manifest format, file hashes,
dimensions, counts, self-test), its title search index is built, and only then is the
single `_serving` reference replaced. A request takes `get()` once and keeps that object,
so requests in flight finish on the model they started with. A refused version is logged,
reported to the listener (a metric) and not retried until `current` changes or a reload
is forced; the old model keeps serving.
"""
from __future__ import annotations

import json
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from epgembed.bundle import load_model
from epgembed.registry import current_version, versions_dir
from epgembed.related import RelatedModel

from .search import TitleIndex

log = logging.getLogger("epgembed.service")


@dataclass(frozen=True)
class Serving:
    """Everything one request needs, swapped as a unit."""
    model: RelatedModel
    titles: TitleIndex
    name: str            # folder name (= version for a registry root)
    loaded_at: float     # unix time
    load_seconds: float

    @property
    def version(self) -> str:
        return self.model.version


class ReloadListener(Protocol):
    def loaded(self, serving: Serving, previous: Serving | None) -> None: ...
    def refused(self, name: str, reason: str) -> None: ...


def log_event(event: str, level: int = logging.INFO, **fields: object) -> None:
    log.log(level, json.dumps({"event": event, **fields}, ensure_ascii=False, default=str))


def is_model_dir(path: Path) -> bool:
    return (Path(path) / "manifest.json").is_file()


class ModelHolder:
    def __init__(self, path: Path, *, poll_seconds: float = 5.0, verify: bool = True,
                 listener: ReloadListener | None = None):
        self.path = Path(path)
        self.single = is_model_dir(self.path)
        self.poll_seconds = poll_seconds
        self.verify = verify
        self.listener = listener
        self._serving: Serving | None = None
        self._lock = threading.Lock()          # one load at a time
        self._wake = threading.Event()
        self._force = False
        self._stop = False
        self._thread: threading.Thread | None = None
        self._refused: tuple[str, str] | None = None   # (name, reason) of the last refusal
        self._checked_at: float | None = None

    # ------------------------------------------------------------------ reading
    def get(self) -> Serving | None:
        return self._serving

    @property
    def mode(self) -> str:
        return "model_dir" if self.single else "models_root"

    def not_ready_reason(self) -> str | None:
        if self._serving is not None:
            return None
        if self._refused:
            return f"model {self._refused[0]} refused: {self._refused[1]}"
        if not self.single and current_version(self.path) is None:
            return f"no model published yet ({self.path.name}/current is missing)"
        return "no model loaded"

    def status(self) -> dict:
        s = self._serving
        refused = {"name": self._refused[0], "reason": self._refused[1]} if self._refused else None
        return {"mode": self.mode, "serving": s.name if s else None, "refused": refused,
                "checked_at": self._checked_at, "poll_seconds": None if self.single else self.poll_seconds}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Load the first model (synchronously) and, for a root, start the watcher thread."""
        if self.single:
            self._try_load(self.path, self.path.name)
            return
        if not self.check() and self._serving is None and self._refused is not None:
            self._fallback()
        self._thread = threading.Thread(target=self._watch, name="epgembed-model-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def request_reload(self) -> None:
        """Check `current` now and retry a refused version (safe to call from a signal handler)."""
        self._force = True
        self._wake.set()

    def _watch(self) -> None:
        timeout = self.poll_seconds if self.poll_seconds > 0 else None
        while True:
            self._wake.wait(timeout)
            self._wake.clear()
            if self._stop:
                return
            force, self._force = self._force, False
            try:
                self.check(force=force)
            except Exception as e:  # the watcher must survive anything (e.g. a vanished root)
                log_event("reload_check_failed", logging.ERROR, error=repr(e))

    # ------------------------------------------------------------------ loading
    def check(self, force: bool = False) -> bool:
        """Swap to the version `current` points at if it is new; True when swapped."""
        if self.single:
            if force:
                log_event("reload_ignored", reason="serving a single model directory")
            return False
        with self._lock:
            self._checked_at = time.time()
            name = current_version(self.path)
            if force:
                log_event("reload_requested", current=name, serving=self._serving.name if self._serving else None)
            if name is None:
                return False
            if self._serving is not None and self._serving.name == name:
                return False
            if not force and self._refused is not None and self._refused[0] == name:
                return False
            return self._try_load(versions_dir(self.path) / name, name)

    def _try_load(self, folder: Path, name: str) -> bool:
        t0 = time.perf_counter()
        try:
            model = load_model(folder, verify=self.verify)
            titles = TitleIndex.from_catalog(model.catalog)
        except Exception as e:  # anything wrong with a new model is a refusal, never a crash
            reason = str(e).replace(str(folder), name)
            self._refused = (name, reason)
            log_event("model_refused", logging.ERROR, name=name, reason=reason,
                      serving=self._serving.name if self._serving else None)
            if self.listener:
                self.listener.refused(name, reason)
            return False
        new = Serving(model, titles, name, time.time(), time.perf_counter() - t0)
        previous, self._serving = self._serving, new      # the one atomic swap
        self._refused = None
        log_event("model_loaded", name=name, version=new.version, shows=len(model),
                  seconds=round(new.load_seconds, 3), previous=previous.name if previous else None)
        if self.listener:
            self.listener.loaded(new, previous)
        return True

    def _fallback(self) -> None:
        """At start only: `current` was refused, serve the newest other version that loads."""
        refused = self._refused
        vdir = versions_dir(self.path)
        names = sorted((p.name for p in vdir.iterdir() if p.is_dir() and not p.name.startswith(".")),
                       reverse=True) if vdir.is_dir() else []
        for name in names:
            if refused and name == refused[0]:
                continue
            with self._lock:
                if self._try_load(vdir / name, name):
                    log_event("model_fallback", logging.WARNING, serving=name,
                              refused=refused[0] if refused else None)
                    self._refused = refused   # `current` is still refused; don't retry it
                    return
        self._refused = refused


def install_sighup(holder: ModelHolder) -> None:
    """SIGHUP -> holder.request_reload(). Main thread only (a gunicorn worker's post_worker_init)."""
    signal.signal(signal.SIGHUP, lambda signum, frame: holder.request_reload())
