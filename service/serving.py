"""What a model holder (service/holder.py) hands out and reports: the per-request `Serving`
unit, the watcher's view of the models root, the listener protocol (the metrics), and its
structured log events."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from epgembed.query.related import RelatedModel

from epgembed.query.search import TitleIndex

log = logging.getLogger("epgembed.service")


@dataclass(frozen=True)
class RootView:
    """What the watcher last saw of the models root (readiness answers from it)."""
    current: str | None          # the version `current` named
    served_folder_missing: bool  # the served version's folder was gone
    at: float                    # unix time of that check


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
    def problems(self, flags: dict[str, bool]) -> None: ...


def log_event(event: str, level: int = logging.INFO, **fields: object) -> None:
    log.log(level, json.dumps({"event": event, **fields}, ensure_ascii=False, default=str))


def is_model_dir(path: Path) -> bool:
    return (Path(path) / "manifest.json").is_file()
