"""The library versions a model was built with, against the running ones.

A model's bytes depend on the libraries that wrote them (torch's arithmetic, numpy's file
format, the tokenizer, Annoy's tree layout, numba's kernels); the manifest records them and
a load warns when they differ. Reading them must not import them: a query command never
imports torch.
"""
from __future__ import annotations

import logging
import os
import re
import sys
from functools import lru_cache
from pathlib import Path

log = logging.getLogger("epgembed.artifact.libraries")

LIBRARIES = ("torch", "numpy", "sentencepiece", "annoy", "numba")   # what the files' bytes depend on


def _norm_dist(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _dist_info_versions() -> dict[str, str]:
    """{normalized name: version} from the installed distributions' folder names,
    `{name}-{version}.dist-info` (the wheel spec's naming: nothing is parsed or imported).
    importlib.metadata parses each METADATA file with the email package: about 60 ms of a
    0.5 s query command. The first folder on sys.path wins, as for imports."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in names:
            dist, sep, version = folder.removesuffix(".dist-info").rpartition("-")
            if folder.endswith(".dist-info") and sep:
                found.setdefault(_norm_dist(dist), version)
    return found


@lru_cache(maxsize=1)
def _running_libraries() -> tuple[tuple[str, str | None], ...]:
    installed = _dist_info_versions()

    def version(name: str) -> str | None:
        if _norm_dist(name) in installed:
            return installed[_norm_dist(name)]
        from importlib import metadata  # e.g. an egg-info install: the slow, general reader
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None
    return tuple((name, version(name)) for name in LIBRARIES)


def library_versions() -> dict[str, str | None]:
    """The installed versions of LIBRARIES (package metadata: nothing is imported)."""
    return dict(_running_libraries())


def warn_library_drift(model_dir: Path, built_with: dict[str, str | None]) -> dict[str, tuple[str | None, str | None]]:
    """Log a warning when the libraries that built the model (the manifest's `libraries`)
    differ from the running ones; returns {name: (built, running)} of the differences."""
    running = library_versions()
    drift = {name: (built, running.get(name)) for name, built in built_with.items()
             if name in running and built != running[name]}
    if drift:
        log.warning("%s: built with other library versions than these: %s", model_dir,
                    ", ".join(f"{name} {built} (running {now})" for name, (built, now) in sorted(drift.items())))
    return drift
