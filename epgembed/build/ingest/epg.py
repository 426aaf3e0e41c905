"""Streaming, safe XMLTV reader: ``read_programmes(paths) -> Iterator[Programme]``.

One pass over each dump with ``lxml.etree.iterparse`` on ``<programme>`` end events;
every finished element is cleared and its earlier siblings deleted, so memory stays
flat however large the dump is. Where the bytes come from is dumpfiles.py: plain and
gzip files (told by their first bytes, not the name; zip, bzip2 and xz are refused by
name), ``-`` for stdin, pipes and FIFOs (waits bounded by ``pipe_timeout_s``), and a
directory for its ``*.xml`` and ``*.xml.gz`` regular files, in sorted order (other entries
so named are reported as skipped). UTF-32 with a BOM reads like UTF-32 without one.

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
the next file. A programme without a title (or with an overlong one, or one that cleans
to nothing: zero-width, bidi, C1 control or combining characters only), or over a limit of
any show it would join (``catalog.programme_problem``: more categories than a show may
have, a channel id too long to be a feature) is never a file-level error: it is skipped
and recorded with its line and reason. So is a namespaced
``<x:programme>``, but a file where they are more than ``max_namespaced_share`` of the
programmes is an error. File names in messages and in the report's skip lists are
escaped (``dumpfiles.escape_name``).

Note that this is a generator: a file-level error is raised only when reading reaches
it, possibly after some programmes of that file have been yielded. Callers that must
produce nothing on failure should consume everything before writing anything.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from lxml import etree

from epgembed.artifact.show import programme_problem
from epgembed.build.ingest.dumpfiles import (InputError, PathArg, ReadLimits, ScannedPaths, Source, display_name,
                                       escape_name, expand_paths, open_dump)
from epgembed.text.normalize import clean_text

_XML_WS = " \t\r\n"
_FIRST_ELEMENT = re.compile(rb"<[^?!]")  # first start tag: the prolog ends here
_LXML_POSITION = re.compile(r",?\s*line \d+, column (\d+)\s*$")
_PARSE_OPTIONS = dict(
    events=("end",), tag="{*}programme", resolve_entities=False, no_network=True,
    load_dtd=False, huge_tree=False, recover=False,
)  # tag: <x:programme> too, so namespaced programmes are counted, not silently passed over
_LIBXML_HINT = re.compile(r",?\s*(?:try|use) XML_PARSE_HUGE(?: option)?", re.IGNORECASE)
SKIP_NO_TITLE = "programme without title"
SKIP_LONG_TITLE = "title too long"
SKIP_EMPTY_TITLE = "title empty after cleaning"
SKIP_NAMESPACED = "namespaced programme"


@dataclass(frozen=True, slots=True)
class Programme:
    title: str                    # raw title text, XML-unescaped, not normalized
    sub_title: str | None
    desc: str | None
    categories: tuple[str, ...]   # raw category texts, in document order
    channel: str
    start: str
    source: str                   # file path it came from ("<stdin>" for "-")
    line: int                     # line of the <programme> start tag
    # the guide's structure beyond text (epgembed/text/features.py); empty where a feed lacks it
    stop: str = ""
    episode: bool = False         # an <episode-num> is present
    credits: tuple[str, ...] = ()  # <credits> people, in document order
    year: str = ""                # <date>
    country: str = ""
    rating: str = ""              # the first <rating><value>


class DumpError(ValueError):
    """A dump that cannot be read as a whole; ``str(e) == "FILE:LINE: message"``."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        where = escape_name(f"{path}:{line}" if line is not None else path)
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[type[DumpError], tuple[str, int | None, str]]:
        return (type(self), (self.path, self.line, self.message))


@dataclass
class ReadReport:
    files: list[str] = field(default_factory=list)      # every file opened, in order
    programmes: int = 0                                  # programmes yielded
    skipped: list[tuple[str, int | None, str]] = field(default_factory=list)  # (escaped name, ...)
    file_errors: list[tuple[str, int | None, str]] = field(default_factory=list)  # also in skipped
    empty_keys: int = 0          # programmes the catalog dropped: a title with an empty key

    def empty_titles(self) -> int:
        """Programmes dropped because their title cleans to nothing: skipped by the reader
        (invisible, control or combining characters only) or by the catalog (``empty_keys``,
        e.g. a title of punctuation only)."""
        return sum(1 for s in self.skipped if s[2].startswith(SKIP_EMPTY_TITLE)) + self.empty_keys

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


def read_programmes(paths: PathArg | Iterable[PathArg], *, skip_bad_input: bool = False,
                    report: ReadReport | None = None,
                    limits: ReadLimits | None = None) -> Iterator[Programme]:
    """Yield every titled ``<programme>`` of the dumps in ``paths``, file by file."""
    rep = report if report is not None else ReadReport()
    lim = limits if limits is not None else ReadLimits()
    files = paths if isinstance(paths, ScannedPaths) else expand_paths(paths)
    rep.skipped.extend((name, None, why) for name, why in files.left_out)
    for path in files:
        rep.files.append(escape_name(display_name(path)))
        try:
            for programme in _read_file(path, rep, lim):
                rep.programmes += 1
                yield programme
        except DumpError as err:
            if not skip_bad_input:
                raise
            rep.skipped.append((escape_name(err.path), err.line, err.message))
            rep.file_errors.append(rep.skipped[-1])


def _read_file(path: Path, report: ReadReport, limits: ReadLimits) -> Iterator[Programme]:
    src = display_name(path)
    with ExitStack() as stack:
        try:
            stream, packed = stack.enter_context(open_dump(path, limits.pipe_timeout_s))
        except InputError as exc:
            raise DumpError(src, None, str(exc)) from None
        source = Source(stream, limits, packed)
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


def _parse(src: str, source: Source, report: ReadReport,
           limits: ReadLimits) -> Iterator[Programme]:
    etree.clear_error_log()  # this thread's log: a syntax error then shows only this file's
    events = etree.iterparse(source, **_PARSE_OPTIONS)
    name, checked, total, foreign = escape_name(src), False, 0, []
    try:
        for _, el in events:
            if not checked:
                _check_document(src, el.getroottree())
                checked = True
            source.mark()
            total += 1
            if el.tag == "programme":
                programme = _programme(el, src, limits)
            else:  # <x:programme>: not XMLTV's element; skipped (at the end), or the file's an error
                programme = None
                foreign.append((el.sourceline, _qname(el)))
            el.clear(keep_tail=True)
            parent = el.getparent()
            while el.getprevious() is not None:
                del parent[0]
            if isinstance(programme, str):
                report.skipped.append((name, el.sourceline, programme))
            elif programme is not None:
                yield programme
        if not checked and events.root is not None:
            _check_document(src, events.root.getroottree())
    except etree.LxmlError as exc:
        if source.error is not None:  # the parser only saw the stream end early
            raise DumpError(src, source.lines + 1, source.error) from None
        raise _syntax_error(src, exc) from None
    if len(foreign) > limits.max_namespaced_share * total:
        raise DumpError(src, foreign[0][0], f"{len(foreign):,} of {total:,} programmes "
                        f"({len(foreign) / total:.0%}) are namespaced, not XMLTV <programme> "
                        f"(the first, <{foreign[0][1]}>, on this line): more than "
                        f"{limits.max_namespaced_share:.0%} of the file would be lost")
    report.skipped.extend((name, line, f"{SKIP_NAMESPACED} (<{qname}>; XMLTV's <programme> has no "
                           "namespace)") for line, qname in foreign)


def _qname(el: etree._Element) -> str:
    return f"{el.prefix}:{el.tag.rpartition('}')[2]}" if el.prefix else el.tag


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
    invisible = False                    # a title that cleans to nothing was seen
    sub_title: str | None = None
    desc: str | None = None
    categories: list[str] = []
    guide: dict = {}
    for child in el:
        tag = child.tag
        if tag in _GUIDE_TAGS:
            _guide_field(child, tag, guide)
            continue
        if tag == "title":
            text = _text(child).strip(_XML_WS)
            if text.strip() and _visible(text):
                titles.append((child.get("lang") is not None, text))
            elif text.strip():
                invisible = True
        elif tag == "category":
            text = _text(child).strip(_XML_WS)
            if text:
                categories.append(text)
        elif tag == "sub-title" and sub_title is None:
            sub_title = _text(child).strip(_XML_WS) or None
        elif tag == "desc" and desc is None:
            desc = _text(child).strip(_XML_WS) or None
    if not titles:
        return (f"{SKIP_EMPTY_TITLE} (only invisible, control or combining characters)"
                if invisible else SKIP_NO_TITLE)
    title = next((t for has_lang, t in titles if not has_lang), titles[0][1])
    if len(title) > limits.max_title_chars:
        return f"{SKIP_LONG_TITLE} ({len(title):,} characters, limit {limits.max_title_chars:,})"
    too_much = programme_problem(len(categories), el.get("channel", ""))
    if too_much:
        return too_much
    return Programme(title=title, sub_title=sub_title, desc=desc,
                     categories=tuple(categories), channel=el.get("channel", ""),
                     start=el.get("start", ""), source=src, line=el.sourceline or 0,
                     stop=el.get("stop", ""), **guide)


_GUIDE_TAGS = frozenset({"episode-num", "credits", "date", "country", "rating"})
MAX_CREDITS = 16


def _guide_field(el: etree._Element, tag: str, guide: dict) -> None:
    """One of the guide's structural elements into `guide` (Programme's keyword fields)."""
    if tag == "episode-num":
        guide["episode"] = bool(_text(el).strip(_XML_WS))
    elif tag == "credits":
        people = [_text(c).strip(_XML_WS)[:200] for c in el if isinstance(c.tag, str)]
        guide["credits"] = tuple(p for p in people if p)[:MAX_CREDITS]
    elif tag == "rating":
        if "rating" not in guide:
            value = next((_text(c).strip(_XML_WS) for c in el if c.tag == "value"), "")
            if value:
                guide["rating"] = value[:100]
    elif tag not in guide:                           # date, country: the first one
        text = _text(el).strip(_XML_WS)[:100]
        if text:
            guide["year" if tag == "date" else tag] = text


def _visible(title: str) -> bool:
    """Whether a title keeps any character after normalize.clean_text (zero-width, bidi,
    C1 control and combining-mark-only titles do not). Short titles are memoized: they
    repeat; a long one is not kept (clean_text reads only its first 2,000 characters)."""
    if title.isascii() and "&" not in title:
        return True
    return _cleans_to_text(title) if len(title) <= 200 else bool(clean_text(title))


@lru_cache(maxsize=1 << 14)
def _cleans_to_text(title: str) -> bool:
    return bool(clean_text(title))
