"""A models root: versioned model directories and an atomically swapped `current` pointer.

    ROOT/versions/<version>/     complete model directories (artifact/manifest.py), never modified
    ROOT/current                 symlink -> versions/<version>, replaced with os.replace

Publishing writes the version folder completely, validates it by loading it, then swaps
`current` with one atomic rename: a reader sees the old or the new version, never a mix.
The service polls `current_version(root)` and reloads when it changes.

Maintenance (used by `epgembed nightly` / `rollback`): `locked(root)` takes ROOT/.lock
(fcntl.flock, non-blocking) so two writers never run at once; `clean_stale(root)` removes
hidden leftovers of a crashed run; `prune(root, keep)` deletes the oldest versions but never
the current one; `rollback(root, to)` validates a version by loading it, then points at it.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from epgembed.artifact.bundle import describe_links, linked_files, verify_files
from epgembed.artifact.manifest import ModelError, read_manifest
from epgembed.query.load import load_model
from epgembed.fsutil import escape_name, fsync_dir

VERSIONS = "versions"
CURRENT = "current"
LOCK = ".lock"


def versions_dir(root: Path) -> Path:
    return Path(root) / VERSIONS


def root_holding(path: Path) -> Path | None:
    """The models root whose versions/ holds `path` at any depth (links resolved: `current`
    too), or None. A root is known by its `current` link or its lock file."""
    resolved = Path(path).resolve()
    for folder in resolved.parents:
        if folder.name == VERSIONS and ((folder.parent / CURRENT).is_symlink()
                                        or (folder.parent / LOCK).exists()):
            return folder.parent
    return None


def refuse_inside_versions(path: Path) -> None:
    """ValueError when `path` lies in a models root's versions/: a published version is
    never replaced in place (a model is trained elsewhere, then published)."""
    root = root_holding(path)
    if root is not None:
        raise ValueError(f"{path}: inside the models root {root}'s {VERSIONS}/: a published version "
                         f"is never replaced in place; train into another folder, then "
                         f"`epgembed publish` it into {root}")


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


VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")   # e.g. 20261201T102103Z-b1b9d35c


def check_version_name(name) -> str:
    """`name` when it is one safe path component (letters, digits, '.', '_', '+', '-', at
    most 128, starting with a letter or digit: no '/', '..', hidden or NUL); else ValueError.
    A version name comes from a manifest, which anyone can write."""
    if not isinstance(name, str) or not VERSION_NAME.fullmatch(name):
        shown = escape_name(repr(name))[:160]
        raise ValueError(f"{shown} is not a safe version name (one path component of letters, "
                         "digits, '.', '_', '+', '-', at most 128, starting with a letter or digit)")
    return name


def point_current(root: Path, version: str) -> None:
    """Atomically make `current` point at versions/<version> (which must be complete)."""
    root = Path(root)
    check_version_name(version)
    if not (versions_dir(root) / version / "manifest.json").is_file():
        raise FileNotFoundError(f"{versions_dir(root) / version}: not a complete model version")
    tmp = root / f".{CURRENT}.tmp-{uuid.uuid4().hex[:8]}"
    os.symlink(f"{VERSIONS}/{version}", tmp)
    os.replace(tmp, root / CURRENT)
    fsync_dir(root)


def publish(root: Path, model_dir: Path, *, move: bool = True, validate: bool = True) -> str:
    """Install a complete model directory as a new version and make it current.

    The folder is renamed (or copied: real copies, never hard links) to a hidden temporary
    name inside versions/, loaded and validated there, then renamed to its version name and
    pointed at. A folder whose files have other names (st_nlink > 1, e.g. made by `cp -al`)
    is refused: a version must share no inode with any other path, or a write there would
    rewrite the served file in place. Any failure leaves `current` untouched and removes the
    temporary folder.
    """
    root = Path(root)
    version = check_version_name(read_manifest(model_dir).version)
    linked = linked_files(model_dir)
    if linked:
        raise ModelError(f"{model_dir}: refusing to publish files that have other names (hard links): "
                         f"{describe_links(linked)}; copy the folder (cp -r, not cp -al or cp -l)")
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
        fsync_dir(vdir)
    except BaseException:
        if move and staging.exists() and not Path(model_dir).exists():
            os.rename(staging, model_dir)  # give the caller its folder back
        shutil.rmtree(staging, ignore_errors=True)
        raise
    point_current(root, version)
    return version


def current_problem(root: Path) -> str | None:
    """Why `current` points at no version folder (dangling, or not a link); None when it
    does, or when nothing is published."""
    link = Path(root) / CURRENT
    if not link.is_symlink():
        return f"{link} is not a symbolic link" if link.exists() else None
    target = current_dir(root)
    if target is None or not target.is_dir():
        return f"current points to {os.readlink(link)}, which does not exist (dangling)"
    return None




def list_versions(root: Path, *, verify: bool = False) -> list[dict]:
    """Versions, oldest first, with their manifests' key figures; a folder that is broken
    (no readable manifest; with `verify`, a file whose size or sha256 differs from the
    manifest's: bundle.verify_files) is listed with its "error", not hidden."""
    out = []
    vdir = versions_dir(root)
    if not vdir.is_dir():
        return out
    cur = current_version(root)
    for d in sorted(p for p in vdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            m = read_manifest(d)
        except Exception as e:  # a broken or foreign folder is listed, not hidden
            out.append({"version": escape_name(d.name), "error": str(e), "current": d.name == cur})
            continue
        out.append({"version": d.name, "created": m.created, "n_shows": m.n_shows,
                    "quality": m.quality, "current": d.name == cur})
        if verify:
            try:
                verify_files(d, m)
            except (ModelError, OSError) as e:
                out[-1]["error"] = str(e)
    return out


# ---------------------------------------------------------------- maintenance


class RootLocked(OSError):
    """Another process holds the models root's lock."""


@contextmanager
def locked(root: Path) -> Iterator[Path]:
    """Hold ROOT/.lock exclusively for the block; refuse at once if someone else holds it.

    The lock is an fcntl.flock on an open file: the kernel releases it when the holder
    exits, even on kill -9, so a crashed run never leaves a stale lock behind.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise RootLocked(f"{path}: held by another run (pid {holder}); refusing to start") from None
    try:
        try:  # who holds it, for the message above; informational (a full disk must not stop us)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        yield path
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def clean_stale(root: Path) -> list[str]:
    """Remove hidden leftovers of interrupted runs (staging, temp, trash folders and links).

    Only hidden names are touched: complete versions and `current` never are. Call it
    while holding the lock.
    """
    root = Path(root)
    gone = []
    candidates = list(root.glob(f".{CURRENT}.tmp-*"))
    vdir = versions_dir(root)
    if vdir.is_dir():
        candidates += [p for p in vdir.iterdir() if p.name.startswith(".")]
    for p in sorted(candidates):
        _remove(p)
        gone.append(str(p.relative_to(root)))
    return gone


def delete_version(root: Path, version: str) -> None:
    """Delete a version that is not current: renamed to a hidden name first, so a crash
    mid-delete never leaves a half-deleted folder that looks like a version."""
    if version == current_version(root):
        raise ValueError(f"{version} is current; refusing to delete it")
    vdir = versions_dir(root)
    trash = vdir / f".trash-{version}-{uuid.uuid4().hex[:8]}"
    os.rename(vdir / version, trash)
    fsync_dir(vdir)
    shutil.rmtree(trash, ignore_errors=True)


def prune(root: Path, keep: int) -> list[str]:
    """Keep the newest `keep` versions (the current one always stays); return the deleted.
    A folder that is no version (listed with an "error") is neither counted nor deleted."""
    if keep < 1:
        raise ValueError("keep must be >= 1")
    names = [v["version"] for v in list_versions(root) if "error" not in v]
    cur = current_version(root)
    excess = len(names) - keep
    deleted = []
    for name in names:  # oldest first
        if excess <= 0:
            break
        if name == cur:
            continue
        delete_version(root, name)
        deleted.append(name)
        excess -= 1
    return deleted


def previous_version(root: Path) -> str | None:
    """The newest complete version older than the current one."""
    cur = current_version(root)
    names = [v["version"] for v in list_versions(root) if "error" not in v]
    older = [n for n in names if cur is None or n < cur]
    return older[-1] if older else None


def rollback(root: Path, to: str | None = None) -> tuple[str | None, str]:
    """Point `current` at `to` (default: the previous version) after loading it fully.

    Returns (old current, new current). The target must be a complete version that loads
    and passes its self-test; otherwise `current` is left alone and ModelError is raised.
    """
    old = current_version(root)
    target = to or previous_version(root)
    if target is None:
        raise ValueError(f"{root}: no version older than {old} to roll back to")
    check_version_name(target)
    if not (versions_dir(root) / target).is_dir():
        raise FileNotFoundError(f"{versions_dir(root) / target}: no such version")
    load_model(versions_dir(root) / target)
    point_current(root, target)
    return old, target


def restore_current(root: Path, version: str | None) -> None:
    """Put `current` back to `version` (None: nothing published) after a failed step."""
    if version is not None:
        point_current(root, version)
    else:
        (Path(root) / CURRENT).unlink(missing_ok=True)
        fsync_dir(Path(root))
