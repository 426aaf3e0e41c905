"""The file-system habits every writer shares: atomic writes, fsync of a folder, UTC times.

    atomic_write(path, data)     hidden temp sibling, fsynced, renamed over `path`
    fsync_dir(path)              make a rename inside `path` durable
    utc(t=None)                  ISO 8601 UTC, second resolution ("2026-12-01T09:24:28Z")
    gc_paused()                  no cyclic garbage collection inside (bulk loads of acyclic objects)
    clone_file(src, dst)         a new file with src's bytes: a reflink where the file system
                                 has them, else a copy (never a hard link)
    flock_within(fd, seconds)    an exclusive flock, waited for up to `seconds`
"""
from __future__ import annotations

import errno
import fcntl
import gc
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc(t: float | None = None) -> str:
    return time.strftime(UTC_FORMAT, time.gmtime(t))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_sibling(path: Path) -> Path:
    """A hidden name beside `path` (".<name>.tmp-<random>"), which cleaners recognise."""
    path = Path(path)
    return path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"


def write_synced(path: Path, data: bytes) -> None:
    """Write `data` to `path` and fsync it (no rename: the caller commits it)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write(path: Path, data: bytes) -> None:
    """`path` holds `data` completely or keeps what it held: never a half-written file and
    never a stray temp file (the temp sibling is removed on any failure)."""
    tmp = temp_sibling(path)
    try:
        write_synced(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

FICLONE = 0x40049409    # linux/fs.h _IOW(0x94, 9, int): make dst share src's blocks
_NO_CLONE = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EBADF}


def clone_file(src: Path, dst: Path) -> bool:
    """Write `dst`, a new file (its own inode), with the bytes of `src`. Where the file system
    shares blocks between files (btrfs, XFS, bcachefs: FICLONE) the two share them and only
    blocks written later are copied, so an unchanged file costs no disk; elsewhere (ext4,
    tmpfs) the kernel copies it (copy_file_range). Never a hard link: a write through one
    name must not change a file another process has memory-mapped under the other (SIGBUS).
    True when the blocks are shared."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
            return True
        except OSError as e:
            if e.errno not in _NO_CLONE:
                raise
        size, done = os.fstat(fin.fileno()).st_size, 0
        try:
            while done < size:
                n = os.copy_file_range(fin.fileno(), fout.fileno(), size - done)
                if n == 0:
                    break
                done += n
        except OSError as e:
            if e.errno not in _NO_CLONE or done:
                raise
            fin.seek(0)
            shutil.copyfileobj(fin, fout, 1 << 20)
        return False


def flock_within(fd: int, seconds: float, poll: float = 0.02) -> bool:
    """Take an exclusive flock on `fd`, trying every `poll` seconds for up to `seconds` (0:
    once); False when another open file still holds it then."""
    end = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= end:
                return False
            time.sleep(poll)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Cyclic garbage collection off inside (restored after): the imports and the model
    load of a query command make a few hundred thousand objects and no garbage cycles,
    and the collector's passes over them cost the command 5-10% of its time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def escape_name(name: str) -> str:
    """``name`` with every unprintable character escaped (``\\n``, ``\\x1b``, ``\\u200b``);
    a byte that is not UTF-8 (surrogate-escaped by the OS layer) is shown as ``\\xff``."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else _escape_char(c) for c in name)


def _escape_char(c: str) -> str:
    if 0xDC80 <= ord(c) <= 0xDCFF:
        return f"\\x{ord(c) - 0xDC00:02x}"
    return c.encode("unicode_escape").decode("ascii")
