"""Where a dump's bytes come from: paths and directory scans, files, FIFOs, pipes, stdin.

    files = expand_paths(["dumps/", "extra.xml.gz", "-"])   # ScannedPaths: a list of paths
    with open_dump(files[0], timeout=60.0) as (stream, packed): ...

A directory stands for its ``*.xml`` and ``*.xml.gz`` entries that are regular files (or
links to one), in sorted order. Every other entry with such a name (a dangling link, a link
loop, a FIFO, a device, a socket, a directory) is left out, and named with the reason in
``ScannedPaths.left_out``, which the reader reports as skipped: never silently ignored.

A path given by name is read whatever it is: ``-`` is standard input, and a FIFO, a pipe
(``/dev/stdin``, ``<(zcat dump.xml.gz)``) or a character device is read as a stream (nothing
is seeked), every wait for data bounded by ``timeout`` seconds, so a FIFO that nothing
writes to ends in an error ("no data within 60 s") instead of a hang.

The format is told by the first bytes, never by the name: gzip is decompressed; zip,
bzip2, xz, zstd and 7-Zip are refused with their name; anything else goes to the XML parser.

``Source`` is what the XML parser reads: the stream with its first 64 kB sniffed (a UTF-32
BOM, which libxml2 refuses, is dropped: the file then reads like one without it), lines
counted, and read errors, timeouts and the ``ReadLimits`` on bytes (element windows, the gzip
ratio) turned into end-of-data plus a recorded ``error``.

``escape_name`` makes a file name safe to print: a newline or an ANSI escape sequence in a
name cannot split or forge a message line.
"""
from __future__ import annotations

import errno
import gzip
import io
import os
import select
import stat
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union
from epgembed.fsutil import escape_name
from epgembed.text.normalize import MAX_RAW_TITLE_CHARS

PathArg = Union[str, "os.PathLike[str]"]

PIPE_TIMEOUT_S = 60.0        # default longest wait for data from a pipe or FIFO
STDIN = "-"                  # the path that means standard input
STDIN_NAME = "<stdin>"       # its name in messages and reports
GZIP_MAGIC = b"\x1f\x8b"
@dataclass(frozen=True)
class ReadLimits:
    """Guards against hostile or broken dumps; every default is far above real dumps
    (longest real title 121 characters, about 30 tags and 3 kB per programme)."""
    max_title_chars: int = MAX_RAW_TITLE_CHARS   # longer: the programme is skipped ("title too long")
    max_element_bytes: int = 32 << 20    # input between two programme ends: one programme or junk
    max_element_tags: int = 100_000      # tags in that span (an element tree costs ~30x its text)
    max_gzip_ratio: float = 100.0        # decompressed / compressed bytes (real dumps: 5-15) ...
    gzip_ratio_after: int = 8 << 20      # ... checked once this much has been decompressed
    max_namespaced_share: float = 0.05   # more <x:programme> than this share: the file is an error
    pipe_timeout_s: float | None = PIPE_TIMEOUT_S  # longest wait for pipe/FIFO data (None: forever)


_OTHER_FORMATS = (           # first bytes -> what the file really is
    (b"PK\x03\x04", "a zip archive"), (b"PK\x05\x06", "a zip archive (empty)"),
    (b"BZh", "a bzip2 file"), (b"\xfd7zXZ\x00", "an xz file"),
    (b"\x28\xb5\x2f\xfd", "a zstd file"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
)
_SNIFF = max(len(magic) for magic, _ in _OTHER_FORMATS)
_HEAD_BYTES = 64 * 1024  # sniffed before parsing: emptiness, entity declarations
_UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")  # libxml2 refuses them; it reads the rest
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))
LEFT_OUT = "left out of the directory scan"


class InputError(Exception):
    """A dump whose bytes cannot be had; ``str(e)`` is the reason, without the file name."""


def display_name(path: PathArg) -> str:
    """How reports and messages name a dump: ``<stdin>`` for ``-``, else the path as given."""
    text = str(path)
    return STDIN_NAME if text == STDIN else text


# ---------------------------------------------------------------- paths
class ScannedPaths(list):
    """``expand_paths``' answer: the paths to read, and in ``left_out`` the (escaped name,
    reason) of every directory entry named like a dump that is not a regular file."""

    def __init__(self, paths: Iterable[Path] = (), left_out: Iterable[tuple[str, str]] = ()):
        super().__init__(paths)
        self.left_out: list[tuple[str, str]] = list(left_out)


def expand_paths(paths: PathArg | Iterable[PathArg]) -> ScannedPaths:
    """Files named by ``paths``: a directory becomes its sorted ``*.xml``/``*.xml.gz``
    regular files (not recursive, the others in ``left_out``); other paths are kept as given
    (a missing one is reported when read; ``-`` is stdin). Duplicates are dropped, first kept."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out = ScannedPaths()
    seen: set[Path] = set()
    for item in items:
        path = Path(item)
        found = [path]
        if str(item) != STDIN and path.is_dir():
            found = []
            for p in sorted(e for e in path.iterdir() if e.name.lower().endswith((".xml", ".xml.gz"))):
                why = _not_a_dump(p)
                if why is None:
                    found.append(p)
                else:
                    out.left_out.append((escape_name(str(p)), f"{LEFT_OUT}: {why}"))
        for p in found:
            if p not in seen:
                seen.add(p)
                out.append(p)
    return out


def _not_a_dump(entry: Path) -> str | None:
    """Why a directory entry named like a dump is not read (None: a regular file, read it)."""
    try:
        mode = entry.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        if exc.errno == errno.ENOENT:
            return "a dangling symbolic link"
        return f"cannot be examined ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


# ---------------------------------------------------------------- bytes
class _Stream(io.RawIOBase):
    """A file descriptor as a raw stream that counts the bytes read. For a pipe, FIFO or
    device, every read first waits at most ``timeout`` seconds for data (None: no limit);
    ``sniff(n)`` peeks at the first bytes, which later reads still return."""

    def __init__(self, fd: int, timeout: float | None) -> None:
        super().__init__()
        self._fd, self._timeout = fd, timeout
        self.count = 0
        self._pending = b""
        self._poll: select.poll | None = None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            self._poll = select.poll()
            self._poll.register(fd, select.POLLIN)

    def readable(self) -> bool:
        return True

    def sniff(self, n: int) -> bytes:
        while len(self._pending) < n and (chunk := self._next(n - len(self._pending))):
            self._pending += chunk
        return self._pending

    def readinto(self, buf) -> int:  # noqa: ANN001 - a writable buffer
        if self._pending:
            n = min(len(buf), len(self._pending))
            buf[:n], self._pending = self._pending[:n], self._pending[n:]
            return n
        if self._poll is None:
            n = os.readv(self._fd, [buf])
            self.count += n
            return n
        data = self._next(len(buf))
        buf[: len(data)] = data
        return len(data)

    def _next(self, size: int) -> bytes:
        while True:
            if self._poll is not None and not self._poll.poll(
                    None if self._timeout is None else max(0, int(self._timeout * 1000))):
                raise InputError(self._silence())
            try:
                data = os.read(self._fd, size)
            except BlockingIOError:  # another reader took the data poll saw: wait again
                continue
            self.count += len(data)
            return data

    def _silence(self) -> str:
        if self.count == 0:
            return (f"no data within {self._timeout:g} s: a FIFO or pipe that nothing writes to? "
                    "(limit: ReadLimits.pipe_timeout_s, `epgembed train --input-timeout`)")
        return f"no data for {self._timeout:g} s after {self.count:,} bytes (the writer stalled)"

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def _open_fd(path: Path) -> int:
    if str(path) == STDIN:
        if os.isatty(0):
            raise InputError("standard input is a terminal (pipe a dump into it: "
                             "zcat dump.xml.gz | epgembed train - ...)")
        try:
            return os.dup(0)
        except OSError as exc:
            raise InputError(f"cannot read standard input ({exc.strerror or exc})") from None
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer (reads wait, bounded)
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        link = " (a dangling symbolic link)" if os.path.islink(path) else ""
        raise InputError(f"no such file{link}") from None
    except OSError as exc:
        raise InputError(f"cannot open ({exc.strerror or exc})") from None


@contextmanager
def open_dump(path: Path, timeout: float | None) -> Iterator[tuple[BinaryIO, Callable[[], int] | None]]:
    """The bytes of a dump (decompressed when gzip) and, for gzip, a function giving the
    compressed bytes read so far (None otherwise). Raises InputError before yielding when
    the file cannot be opened or is an archive of another format."""
    raw = _Stream(_open_fd(path), timeout)
    try:
        try:
            head = raw.sniff(_SNIFF)
        except OSError as exc:
            raise InputError(_stream_error(exc)) from None
        for magic, what in _OTHER_FORMATS:
            if head.startswith(magic):
                raise InputError(f"{what} by its first bytes, not XML or gzip: "
                                 "decompress it first (dumps are read as plain or gzip XML)")
        buffered = io.BufferedReader(raw, 1 << 16)
        if head.startswith(GZIP_MAGIC):
            yield gzip.GzipFile(fileobj=buffered, mode="rb"), lambda: raw.count  # type: ignore[misc]
        else:
            yield buffered, None
    finally:
        raw.close()


class Source:
    """Binary reader for lxml over a plain or gzip stream, starting with a sniffed head.

    Counts newlines (for the line of a gzip failure) and turns decompression and I/O
    errors, and the ``ReadLimits`` on input size, into end-of-data plus a recorded
    ``error``, so lxml never sees them; data passed on before the failure is still parsed.
    ``mark()`` (called at every programme end) starts a new element window.
    """

    def __init__(self, stream: BinaryIO, limits: ReadLimits,
                 packed: Callable[[], int] | None = None) -> None:
        self._stream = stream
        self._packed = packed            # compressed bytes read so far, under a gzip stream
        self._limits = limits
        self.lines = 0
        self.error: str | None = None
        self.out = 0                     # bytes decompressed (or read)
        self._fed = self._tags = 0       # bytes and "<" handed to lxml ...
        self._mark = (0, 0)              # ... at the last programme end
        parts: list[bytes] = []
        size = 0
        while size < _HEAD_BYTES and (chunk := self._read1(_HEAD_BYTES - size)):
            parts.append(chunk)
            size += len(chunk)
        self.head = self._pending = b"".join(parts)
        if self.head.startswith(_UTF32_BOMS):  # read like the same file without its BOM
            self.head = self._pending = self.head[4:]

    def _read1(self, size: int) -> bytes:
        if self.error is not None:
            return b""
        try:
            chunk = self._stream.read1(size)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - any stream failure ends the file
            self.error = _stream_error(exc)
            return b""
        self.lines += chunk.count(b"\n")
        self.out += len(chunk)
        lim = self._limits
        if self._packed is not None and self.out > lim.gzip_ratio_after:
            packed = max(1, self._packed())
            if self.out > lim.max_gzip_ratio * packed:
                self.error = (f"gzip bomb refused: {self.out:,} bytes inflated from {packed:,} "
                              f"(over {lim.max_gzip_ratio:g}:1; real dumps stay below 20:1)")
                return b""
        return chunk

    def mark(self) -> None:
        self._mark = (self._fed, self._tags)

    def read(self, size: int = -1) -> bytes:
        if self._pending:
            chunk, self._pending = self._pending, b""
        else:
            chunk = self._read1(size if size > 0 else 1 << 16)
        self._fed += len(chunk)
        self._tags += chunk.count(b"<")
        lim = self._limits
        if self._fed - self._mark[0] > lim.max_element_bytes:
            self.error = (f"element too large: over {lim.max_element_bytes:,} bytes without "
                          "a programme ending (a giant or unterminated element)")
        elif self._tags - self._mark[1] > lim.max_element_tags:
            self.error = (f"too many elements: over {lim.max_element_tags:,} tags without "
                          "a programme ending")
        return b"" if self.error is not None and chunk else chunk


def _stream_error(exc: Exception) -> str:
    if isinstance(exc, InputError):
        return str(exc)
    if isinstance(exc, EOFError):
        return "truncated gzip stream"
    if isinstance(exc, (zlib.error, gzip.BadGzipFile)):
        return f"corrupt gzip stream ({exc})"
    if isinstance(exc, OSError):
        return f"read error ({exc.strerror or exc})"
    return f"read error ({type(exc).__name__}: {exc})"
