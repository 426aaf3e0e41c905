"""A models root: versioned model directories and an atomically swapped `current` pointer.

    ROOT/versions/<version>/     complete model directories (bundle.py layout), never modified
    ROOT/current                 symlink -> versions/<version>, replaced with os.replace

Publishing writes the version folder completely, validates it by loading it, then swaps
`current` with one atomic rename: a reader sees the old or the new version, never a mix.
The service polls `current_version(root)` and reloads when it changes.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from .bundle import _fsync_dir, load_model, read_manifest

VERSIONS = "versions"
CURRENT = "current"


def versions_dir(root: Path) -> Path:
    return Path(root) / VERSIONS


def current_version(root: Path) -> str | None:
    """The version name `current` points to, or None when nothing is published."""
    try:
        target = os.readlink(Path(root) / CURRENT)
    except (FileNotFoundError, OSError):
        return None
    return Path(target).name


def current_dir(root: Path) -> Path | None:
    name = current_version(root)
    return versions_dir(root) / name if name else None


def point_current(root: Path, version: str) -> None:
    """Atomically make `current` point at versions/<version> (which must be complete)."""
    root = Path(root)
    if not (versions_dir(root) / version / "manifest.json").is_file():
        raise FileNotFoundError(f"{versions_dir(root) / version}: not a complete model version")
    tmp = root / f".{CURRENT}.tmp-{uuid.uuid4().hex[:8]}"
    os.symlink(f"{VERSIONS}/{version}", tmp)
    os.replace(tmp, root / CURRENT)
    _fsync_dir(root)


def publish(root: Path, model_dir: Path, *, move: bool = True, validate: bool = True) -> str:
    """Install a complete model directory as a new version and make it current.

    The folder is renamed (or copied) to a hidden temporary name inside versions/, loaded
    and validated there, then renamed to its version name and pointed at. Any failure
    leaves `current` untouched and removes the temporary folder.
    """
    root = Path(root)
    version = read_manifest(model_dir)["version"]
    vdir = versions_dir(root)
    vdir.mkdir(parents=True, exist_ok=True)
    final = vdir / version
    if final.exists():
        raise FileExistsError(f"{final}: version already published")
    staging = vdir / f".staging-{version}-{uuid.uuid4().hex[:8]}"
    try:
        if move:
            os.rename(model_dir, staging)
        else:
            shutil.copytree(model_dir, staging)
        if validate:
            load_model(staging)
        os.rename(staging, final)
        _fsync_dir(vdir)
    except BaseException:
        if move and staging.exists() and not Path(model_dir).exists():
            os.rename(staging, model_dir)  # give the caller its folder back
        shutil.rmtree(staging, ignore_errors=True)
        raise
    point_current(root, version)
    return version


def list_versions(root: Path) -> list[dict]:
    """Complete versions, oldest first, with their manifests' key figures."""
    out = []
    vdir = versions_dir(root)
    if not vdir.is_dir():
        return out
    cur = current_version(root)
    for d in sorted(p for p in vdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            m = read_manifest(d)
        except Exception as e:  # a broken folder is listed, not hidden
            out.append({"version": d.name, "error": str(e), "current": d.name == cur})
            continue
        out.append({"version": d.name, "created": m["created"], "n_shows": m["n_shows"],
                    "quality": m.get("quality", {}), "current": d.name == cur})
    return out
