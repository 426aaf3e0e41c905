"""The model folder on the file system: atomic replacement of a folder, the refusal to
replace anything that is no model, hashes and sizes against the manifest, hard links.

    check_replaceable(out_dir)          ValueError when a model may not replace out_dir
    move_into_place(tmp, files, out)    fsync a staged folder and rename it into place
    check_files(dir, manifest, verify)  sizes and sha256 (ModelError), hard-link warning

What the folder holds is artifact/manifest.py's table (FOLDER_FILES); folder.py writes and
reads it. No pickles: numpy .npy (allow_pickle=False), JSON.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from pathlib import Path

from epgembed.artifact.manifest import VERSION_EXTRAS, Manifest, ModelError, listed_files
from epgembed.fsutil import escape_name, fsync_dir

log = logging.getLogger("epgembed.artifact.bundle")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def replace_problem(out_dir: Path) -> str | None:
    """Why writing a model to `out_dir` would destroy something that is no model (None: the
    path is free, an empty folder, or a model folder, as its manifest says, holding nothing
    but the model's own files). A model is written by replacing the whole folder."""
    out_dir = Path(out_dir)
    if out_dir.is_symlink():
        return "it is a symbolic link (give a folder)"
    if not out_dir.exists():
        return None
    if not out_dir.is_dir():
        return "it is not a folder"
    entries = sorted(p.name for p in out_dir.iterdir())
    if not entries:
        return None
    own = listed_files(out_dir)
    if own is None:
        return f"it holds {_names(entries)} and no model manifest"
    foreign = [e for e in entries if e not in own and e not in VERSION_EXTRAS]
    return f"it is a model folder that also holds {_names(foreign)}" if foreign else None


def _names(entries: list[str], shown: int = 3) -> str:
    names = ", ".join(escape_name(e) for e in entries[:shown])
    return names + (f" and {len(entries) - shown:,} more" if len(entries) > shown else "")


def check_replaceable(out_dir: Path) -> None:
    """ValueError when `out_dir` may not be replaced by a model (replace_problem)."""
    why = replace_problem(out_dir)
    if why:
        raise ValueError(f"{out_dir}: refusing to replace it: {why}; a model replaces only an "
                         "empty folder or an earlier model (choose another --out)")


def move_into_place(tmp: Path, files: list[str], out_dir: Path) -> None:
    """fsync the staged files and folder, then rename the folder to `out_dir` (an old model
    is renamed away first and removed after): a reader sees the old model or the new one.
    Anything else at `out_dir` is refused (check_replaceable), never removed."""
    for f in files:
        with open(tmp / f, "rb") as fh:
            os.fsync(fh.fileno())
    fsync_dir(tmp)
    check_replaceable(out_dir)
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out_dir)
    fsync_dir(out_dir.parent)


def verify_files(model_dir: Path, manifest: Manifest) -> None:
    for name, meta in manifest.files.items():
        p = Path(model_dir) / name
        if not p.is_file():
            raise ModelError(f"{model_dir}: missing file {name}")
        if p.stat().st_size != meta.bytes:
            raise ModelError(f"{model_dir}: {name} has {p.stat().st_size} bytes, manifest says {meta.bytes}")
        if sha256_file(p) != meta.sha256:
            raise ModelError(f"{model_dir}: {name} does not match its sha256 in the manifest")


def linked_files(model_dir: Path) -> list[tuple[str, int]]:
    """(name, st_nlink) of the folder's files that have other names too (hard links): a
    write through any of those names rewrites the file in place (docs/SERVICE.md)."""
    with os.scandir(model_dir) as entries:
        found = [(e.name, e.stat(follow_symlinks=False).st_nlink) for e in entries
                 if e.is_file(follow_symlinks=False)]
    return sorted((name, n) for name, n in found if n > 1)


def describe_links(linked: list[tuple[str, int]]) -> str:
    return ", ".join(f"{name} ({n} links)" for name, n in linked)


def check_files(model_dir: Path, manifest: Manifest, verify: bool) -> None:
    """Hashes and sizes (when `verify`), and a warning for files with other names: they are
    memory-mapped, so truncating one through another name kills the reader (SIGBUS)."""
    if verify:
        verify_files(model_dir, manifest)
    linked = linked_files(model_dir)
    if linked:
        log.warning("%s: files shared with other paths (hard links): %s; a write through another "
                    "name changes them under every process serving them", model_dir, describe_links(linked))
