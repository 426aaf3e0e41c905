"""Streaming, safe XMLTV reader: ``read_programmes(paths) -> Iterator[Programme]``.

One pass over each dump with ``lxml.etree.iterparse`` on ``<programme>`` end events;
every finished element is cleared and its earlier siblings deleted, so memory stays
flat however large the dump is. Plain and gzip files are accepted (gzip is detected
by its magic bytes, not by the file name); a directory stands for its ``*.xml`` and
``*.xml.gz`` files, in sorted order.

Safety: entities are never resolved, nothing is fetched from the network or disk
(``no_network``, no DTD loading), and a document that declares entities in its
DOCTYPE is refused outright ("entity declarations are not allowed"), so entity bombs
and external entities never get a chance to expand.

Bounded work and memory (``ReadLimits``; libxml2's own limits stay on: ``huge_tree`` is
off, so a text node, comment or attribute over 10,000,000 characters and nesting deeper
than 256 are errors): the input between two ``</programme>`` ends is capped in bytes and
in tags, so a giant element or a flood of junk elements (which a tree would hold in
memory) is an error, not a memory blow-up; a gzip stream that inflates more than
``max_gzip_ratio`` times (real dumps: 5-15) is refused as a gzip bomb; a programme whose
title is longer than ``max_title_chars`` is skipped with the reason.

Errors: a problem with a whole file (missing, empty, truncated gzip, malformed XML,
invalid UTF-8, root element other than ``<tv>``, entity declarations, a limit above) raises
``DumpError`` whose text is ``"FILE:LINE: message"``. With ``skip_bad_input=True`` the
error is recorded in the ``ReadReport`` instead (``skipped`` and ``file_errors``), the
programmes read from that file before the failure are kept, and reading continues with
the next file. A programme
without a title (or with an overlong one) is never a file-level error: it is skipped and
recorded with its line and reason.

Note that this is a generator: a file-level error is raised only when reading reaches
it, possibly after some programmes of that file have been yielded. Callers that must
produce nothing on failure should consume everything before writing anything.
"""
from __future__ import annotations

import gzip
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Union

from lxml import etree

PathArg = Union[str, "os.PathLike[str]"]

_GZIP_MAGIC = b"\x1f\x8b"
_HEAD_BYTES = 64 * 1024  # sniffed before parsing: emptiness, entity declarations
_XML_WS = " \t\r\n"
_FIRST_ELEMENT = re.compile(rb"<[^?!]")  # first start tag: the prolog ends here
_LXML_POSITION = re.compile(r",?\s*line \d+, column (\d+)\s*$")
_PARSE_OPTIONS = dict(
    events=("end",), tag="programme", resolve_entities=False, no_network=True,
    load_dtd=False, huge_tree=False, recover=False,
)
_LIBXML_HINT = re.compile(r",?\s*(?:try|use) XML_PARSE_HUGE(?: option)?", re.IGNORECASE)
SKIP_NO_TITLE = "programme without title"
SKIP_LONG_TITLE = "title too long"


@dataclass(frozen=True)
class ReadLimits:
    """Guards against hostile or broken dumps; every default is far above real dumps
    (longest real title 121 characters, about 30 tags and 3 kB per programme)."""
    max_title_chars: int = 1000          # longer: the programme is skipped ("title too long")
    max_element_bytes: int = 32 << 20    # input between two programme ends: one programme or junk
    max_element_tags: int = 100_000      # tags in that span (an element tree costs ~30x its text)
    max_gzip_ratio: float = 100.0        # decompressed / compressed bytes (real dumps: 5-15) ...
    gzip_ratio_after: int = 8 << 20      # ... checked once this much has been decompressed


@dataclass(frozen=True, slots=True)
class Programme:
    title: str                    # raw title text, XML-unescaped, not normalized
    sub_title: str | None
    desc: str | None
    categories: tuple[str, ...]   # raw category texts, in document order
    channel: str
    start: str
    source: str                   # file path it came from
    line: int                     # line of the <programme> start tag


class DumpError(ValueError):
    """A dump that cannot be read as a whole; ``str(e) == "FILE:LINE: message"``."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[type[DumpError], tuple[str, int | None, str]]:
        return (type(self), (self.path, self.line, self.message))


@dataclass
class ReadReport:
    files: list[str] = field(default_factory=list)      # every file opened, in order
    programmes: int = 0                                  # programmes yielded
    skipped: list[tuple[str, int | None, str]] = field(default_factory=list)
    file_errors: list[tuple[str, int | None, str]] = field(default_factory=list)  # also in skipped

    def skip_counts(self) -> dict[str, int]:
        """Skips by kind, e.g. ``{"programme without title": 3, "file error": 1}``."""
        errors = set(self.file_errors)
        return dict(Counter("file error" if s in errors else s[2].split(" (")[0]
                            for s in self.skipped))

    def summary(self, limit: int = 5) -> str:
        """E.g. ``"read 3 files, 12,125 programmes; skipped 1: a.xml:14: missing title"``."""
        files = f"{len(self.files)} file" + ("" if len(self.files) == 1 else "s")
        text = f"read {files}, {self.programmes:,} programmes"
        if not self.skipped:
            return text
        shown = [f"{p}:{ln}: {why}" if ln is not None else f"{p}: {why}"
                 for p, ln, why in self.skipped[:limit]]
        more = len(self.skipped) - limit
        if more > 0:
            shown.append(f"... and {more:,} more")
        return f"{text}; skipped {len(self.skipped):,}: " + "; ".join(shown)


def expand_paths(paths: PathArg | Iterable[PathArg]) -> list[Path]:
    """Files named by ``paths``: a directory becomes its sorted ``*.xml``/``*.xml.gz``
    files (not recursive); other paths are kept as given (a missing one is reported
    when read). Duplicates are dropped, first occurrence kept."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out: list[Path] = []
    seen: set[Path] = set()
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file()
                           and p.name.lower().endswith((".xml", ".xml.gz")))
        else:
            found = [path]
        for p in found:
            if p not in seen:
                seen.add(p)
                out.append(p)
    return out


def read_programmes(paths: PathArg | Iterable[PathArg], *, skip_bad_input: bool = False,
                    report: ReadReport | None = None,
                    limits: ReadLimits | None = None) -> Iterator[Programme]:
    """Yield every titled ``<programme>`` of the dumps in ``paths``, file by file."""
    rep = report if report is not None else ReadReport()
    lim = limits if limits is not None else ReadLimits()
    for path in expand_paths(paths):
        rep.files.append(str(path))
        try:
            for programme in _read_file(path, rep, lim):
                rep.programmes += 1
                yield programme
        except DumpError as err:
            if not skip_bad_input:
                raise
            rep.skipped.append((err.path, err.line, err.message))
            rep.file_errors.append((err.path, err.line, err.message))


class _Source:
    """Binary reader for lxml over a plain or gzip stream, starting with a sniffed head.

    Counts newlines (for the line of a gzip failure) and turns decompression and I/O
    errors, and the ``ReadLimits`` on input size, into end-of-data plus a recorded
    ``error``, so lxml never sees them; data passed on before the failure is still parsed.
    ``mark()`` (called at every programme end) starts a new element window.
    """

    def __init__(self, stream: BinaryIO, limits: ReadLimits, raw: BinaryIO | None = None) -> None:
        self._stream = stream
        self._raw = raw                  # the compressed file under a gzip stream
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
        if self._raw is not None and self.out > lim.gzip_ratio_after:
            packed = max(1, self._raw.tell())
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
    if isinstance(exc, EOFError):
        return "truncated gzip stream"
    if isinstance(exc, (zlib.error, gzip.BadGzipFile)):
        return f"corrupt gzip stream ({exc})"
    if isinstance(exc, OSError):
        return f"read error ({exc.strerror or exc})"
    return f"read error ({type(exc).__name__}: {exc})"


def _read_file(path: Path, report: ReadReport, limits: ReadLimits) -> Iterator[Programme]:
    src = str(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        raise DumpError(src, None, "no such file") from None
    except OSError as exc:
        raise DumpError(src, None, f"cannot open ({exc.strerror or exc})") from None
    with raw:
        stream: BinaryIO = raw
        packed: BinaryIO | None = None
        try:
            if raw.read(2) == _GZIP_MAGIC:
                stream, packed = gzip.GzipFile(fileobj=raw, mode="rb"), raw  # type: ignore[assignment]
            raw.seek(0)
        except OSError as exc:
            raise DumpError(src, None, _stream_error(exc)) from None
        source = _Source(stream, limits, packed)
        if source.error is not None and not source.head.strip():
            raise DumpError(src, source.lines + 1, source.error)
        _check_head(src, source.head)
        yield from _parse(src, source, report, limits)
        if source.error is not None:  # stream broke after a complete document
            raise DumpError(src, source.lines + 1, source.error)


def _check_head(src: str, head: bytes) -> None:
    if not head.lstrip(b"\xef\xbb\xbf").strip():
        raise DumpError(src, None, "empty file")
    first = _FIRST_ELEMENT.search(head)
    prolog = head if first is None else head[: first.start()]
    at = prolog.find(b"<!ENTITY")
    if at >= 0:
        raise DumpError(src, prolog.count(b"\n", 0, at) + 1,
                        "entity declarations are not allowed")


def _check_document(src: str, tree: etree._ElementTree) -> None:
    """Second line of defence after ``_check_head`` (e.g. a DTD longer than the head)."""
    dtd = tree.docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise DumpError(src, None, "entity declarations are not allowed")
    root = tree.getroot()
    if root is None or root.tag != "tv":
        tag = root.tag if root is not None else "none"
        line = root.sourceline if root is not None else None
        raise DumpError(src, line, f"not an XMLTV document (root element <{tag}>, expected <tv>)")


def _parse(src: str, source: _Source, report: ReadReport,
           limits: ReadLimits) -> Iterator[Programme]:
    etree.clear_error_log()  # this thread's log: a syntax error then shows only this file's
    events = etree.iterparse(source, **_PARSE_OPTIONS)
    checked = False
    try:
        for _, el in events:
            if not checked:
                _check_document(src, el.getroottree())
                checked = True
            source.mark()
            programme = _programme(el, src, limits)
            el.clear(keep_tail=True)
            parent = el.getparent()
            while el.getprevious() is not None:
                del parent[0]
            if isinstance(programme, str):
                report.skipped.append((src, el.sourceline, programme))
            else:
                yield programme
        if not checked and events.root is not None:
            _check_document(src, events.root.getroottree())
    except etree.LxmlError as exc:
        if source.error is not None:  # the parser only saw the stream end early
            raise DumpError(src, source.lines + 1, source.error) from None
        raise _syntax_error(src, exc) from None


def _syntax_error(src: str, exc: etree.LxmlError) -> DumpError:
    msg = str(getattr(exc, "msg", None) or exc)
    lineno = getattr(exc, "lineno", None)
    if msg == "no element found" or not lineno:  # iterparse's generic text: the log has the cause
        fatal = [e for e in getattr(exc, "error_log", ()) if e.level_name == "FATAL"]
        if fatal:
            msg, lineno = f"{fatal[-1].message} (column {fatal[-1].column})", fatal[-1].line
    msg = _LIBXML_HINT.sub(" (a limit of the safe parser)", " ".join(msg.split()))  # one line
    match = _LXML_POSITION.search(msg)
    if match:
        msg = msg[: match.start()].rstrip() + f" (column {match.group(1)})"
    if "maximum entity amplification" in msg.lower():  # libxml2's own bomb guard
        msg, lineno = f"entity declarations are not allowed ({msg})", None
    return DumpError(src, lineno if isinstance(lineno, int) and lineno > 0 else None,
                     msg.strip() or "malformed XML")


def _text(el: etree._Element) -> str:
    return (el.text or "") if len(el) == 0 else "".join(el.itertext())


def _programme(el: etree._Element, src: str, limits: ReadLimits) -> Programme | str:
    """The programme, or the reason it is skipped."""
    titles: list[tuple[bool, str]] = []  # (has lang, text)
    sub_title: str | None = None
    desc: str | None = None
    categories: list[str] = []
    for child in el:
        tag = child.tag
        if tag == "title":
            text = _text(child).strip(_XML_WS)
            if text.strip():
                titles.append((child.get("lang") is not None, text))
        elif tag == "category":
            text = _text(child).strip(_XML_WS)
            if text:
                categories.append(text)
        elif tag == "sub-title" and sub_title is None:
            sub_title = _text(child).strip(_XML_WS) or None
        elif tag == "desc" and desc is None:
            desc = _text(child).strip(_XML_WS) or None
    if not titles:
        return SKIP_NO_TITLE
    title = next((t for has_lang, t in titles if not has_lang), titles[0][1])
    if len(title) > limits.max_title_chars:
        return f"{SKIP_LONG_TITLE} ({len(title):,} characters, limit {limits.max_title_chars:,})"
    return Programme(title=title, sub_title=sub_title, desc=desc,
                     categories=tuple(categories), channel=el.get("channel", ""),
                     start=el.get("start", ""), source=src, line=el.sourceline or 0)
