"""The served version's files after the load: still the files that were verified?

A served model memory-maps its arrays, so a write into one of its files changes the answers
of every worker at once, undetected (issue 26.16: `dd conv=notrunc` over neighbours.npy
changed 100 of 100 answers while /readyz said 200), and a truncation kills the workers
(SIGBUS). The model watcher calls `ServedFiles.check()` on every tick:

- every file of the version is stat'ed (size, inode, mtime, ctime: a write through any
  name of a file changes its ctime, which no one can set back); a file whose stat changed
  is hashed again and compared with the manifest (a `touch` or a new hard link alone
  changes nothing that matters), manifest.json with the manifest that was loaded;
- besides, each check hashes the next HASH_BYTES_PER_CHECK bytes of the files in turn, so
  damage that leaves the stat alone (below the file system) is found within one cycle.

A file that is gone, or whose content differs, is the reason returned; the holder then
refuses the version and falls back (service/holder.py). Costs: a few stat calls per tick,
a hash only on a change, plus the rolling hash (hashlib releases the GIL while it hashes).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from epgembed.artifact.bundle import sha256_file
from epgembed.artifact.manifest import FileEntry, Manifest, ModelError, read_manifest

HASH_BYTES_PER_CHECK = 4 << 20   # rolling verification per tick: a 256 MB model in about a minute
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Stamp:
    size: int
    ino: int
    mtime_ns: int
    ctime_ns: int


def stamp(path: Path) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return Stamp(st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


def stamps(folder: Path) -> dict[str, Stamp]:
    """Every regular file of `folder` (taken before a load, so a change during it shows)."""
    out = {}
    try:
        with os.scandir(folder) as entries:
            for e in entries:
                if e.is_file(follow_symlinks=False):
                    s = stamp(Path(e.path))
                    if s is not None:
                        out[e.name] = s
    except OSError:
        pass
    return out


class ServedFiles:
    """The files of one loaded version: `check()` says why they are no longer what was loaded."""

    def __init__(self, folder: Path, manifest: Manifest, before: dict[str, Stamp], rolling: bool = True):
        self.folder, self.manifest = Path(folder), manifest
        self.files: dict[str, FileEntry] = dict(manifest.files)
        self.stamps = {name: before[name] for name in (*self.files, MANIFEST) if name in before}
        self._known: dict[str, tuple[Stamp, str]] = {}   # name -> (its stamp, why) of a damage found
        self.rolling = rolling and bool(self.files)
        self._order = sorted(self.files)
        self._at, self._offset, self._hash = 0, 0, hashlib.sha256()

    def check(self, roll: bool = True) -> str | None:
        """None while every file is as loaded, else what changed (`roll`: and hash the next
        part of the rolling verification)."""
        for name, was in self.stamps.items():
            now = stamp(self.folder / name)
            if now is None:
                return "the folder is gone" if not self.folder.is_dir() else f"{name} is gone"
            known = self._known.get(name)
            if known is not None and known[0] == now:
                return known[1]
            if now == was:
                continue
            why = self._differs(name)
            if why is not None:
                self._known[name] = (now, why)
                return why
            self.stamps[name] = now                # same content: a touch, a new hard link
        return self._roll() if roll and self.rolling else None

    def _differs(self, name: str) -> str | None:
        path = self.folder / name
        try:
            if name == MANIFEST:
                same = read_manifest(self.folder) == self.manifest
                return None if same else f"{MANIFEST} was rewritten since the version was loaded"
            meta = self.files[name]
            size = path.stat().st_size
            if size != meta.bytes:
                return f"{name} has {size} bytes, the manifest says {meta.bytes} (changed on disk)"
            if sha256_file(path) != meta.sha256:
                return f"{name} was rewritten on disk: it no longer matches its sha256 in the manifest"
        except (OSError, ValueError, ModelError) as e:
            return f"{name} is unreadable: {type(e).__name__}: {e}"
        return None

    def _roll(self) -> str | None:
        """Hash the next HASH_BYTES_PER_CHECK bytes; the reason when a completed file differs."""
        budget = HASH_BYTES_PER_CHECK
        while budget > 0:
            name = self._order[self._at]
            try:
                with open(self.folder / name, "rb") as f:
                    f.seek(self._offset)
                    data = f.read(budget)
            except OSError as e:
                return f"{name} is unreadable: {type(e).__name__}: {e}"
            self._hash.update(data)
            self._offset += len(data)
            budget -= len(data)
            if len(data) and self._offset < self.files[name].bytes:
                continue
            digest, self._hash = self._hash.hexdigest(), hashlib.sha256()
            self._at, self._offset = (self._at + 1) % len(self._order), 0
            if digest != self.files[name].sha256:
                now = stamp(self.folder / name)
                why = f"{name} no longer matches its sha256 in the manifest (found by the periodic re-hash)"
                if now is not None:
                    self._known[name] = (now, why)   # the stat pass reports it from now on
                return why
            if self._at == 0:
                return None                      # one whole cycle this check: enough
        return None
