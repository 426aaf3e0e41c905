"""The evaluation's own XMLTV reading and writing (independent of `epgembed.ingest`, like
the rest of the protocol): programmes as (title, categories), (title, channel) or whole
`Airing` records, and a dump rewritten with some programmes' categories or the
programmes themselves left out (the protocol's training files).

    for title, categories in iter_programmes("au.xml.gz"): ...
    write_dump("au.xml.gz", "train.xml", lambda title: STRIP if ... else KEEP)
"""
from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from xml.sax.saxutils import quoteattr

from lxml import etree

KEEP, STRIP, DROP = "keep", "strip", "drop"  # write_dump: a programme as is, without its categories, left out


def open_dump(path: Path) -> IO[bytes]:
    """Open a dump for reading, gunzipping when it starts with the gzip magic bytes."""
    fh = open(path, "rb")
    if fh.read(2) == b"\x1f\x8b":
        fh.close()
        return gzip.open(path, "rb")
    fh.seek(0)
    return fh


def _text(el: etree._Element | None) -> str:
    """An element's text (its children's too), line breaks turned into spaces, ends trimmed."""
    if el is None:
        return ""
    text = "".join(el.itertext())
    return text.replace("\r", " ").replace("\n", " ").strip()


def title_of(programme: etree._Element) -> str:
    """The programme's first <title> text, ends trimmed, line breaks turned into spaces."""
    text = programme.findtext("title") or ""
    return text.replace("\r", " ").replace("\n", " ").strip()


def _programme_elements(path: str | Path) -> Iterator[etree._Element]:
    """Stream the <programme> elements of an XMLTV dump (each freed once the next is read)."""
    with open_dump(Path(path)) as fh:
        for _, el in etree.iterparse(
            fh, tag="programme", resolve_entities=False, no_network=True, load_dtd=False
        ):
            yield el
            el.clear(keep_tail=False)
            while el.getprevious() is not None:
                del el.getparent()[0]


def iter_programmes(path: str | Path) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Yield (raw title, raw category texts) for every <programme> of an XMLTV dump."""
    for el in _programme_elements(path):
        yield title_of(el), tuple(c.text or "" for c in el.iterchildren("category"))


def iter_airings(path: str | Path) -> Iterator[tuple[str, str]]:
    """Yield (raw title, channel attribute, "" when missing) for every <programme>."""
    for el in _programme_elements(path):
        yield title_of(el), (el.get("channel") or "").strip()


@dataclass(frozen=True)
class Airing:
    """Everything the guide says about one airing but its categories ("" where it says
    nothing): what a client that has the programme can send with a cold-start query."""

    title: str
    channel: str
    start: str  # the XMLTV attribute as written ("20220723201500 +0200")
    stop: str
    sub_title: str
    desc: str
    credits: tuple[str, ...]  # every person of <credits>, in document order
    date: str
    country: str
    rating: str  # the first <rating>'s <value>
    episode_num: str  # the first <episode-num>


def iter_guide(path: str | Path) -> Iterator[Airing]:
    """Yield the `Airing` of every <programme> of an XMLTV dump."""
    for el in _programme_elements(path):
        credits = el.find("credits")
        rating = el.find("rating")
        people = (_text(c) for c in (credits if credits is not None else ()) if isinstance(c.tag, str))
        yield Airing(title_of(el), (el.get("channel") or "").strip(), el.get("start") or "",
                     el.get("stop") or "", _text(el.find("sub-title")), _text(el.find("desc")),
                     tuple(p for p in people if p), _text(el.find("date")), _text(el.find("country")),
                     _text(rating.find("value") if rating is not None else None),
                     _text(el.find("episode-num")))


def write_dump(src: str | Path, out_path: str | Path, action: Callable[[str], str]) -> Path:
    """Stream `src` to `out_path` (gzip if it ends with .gz), each <programme> as
    `action(raw title)` says: KEEP, STRIP (its <category> elements removed) or DROP.
    Channels and the root element's attributes are kept."""
    out_path = Path(out_path)
    opener = gzip.open if out_path.suffix == ".gz" else open
    with open_dump(Path(src)) as fh, opener(out_path, "wt", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        depth, root_tag = 0, "tv"
        events = etree.iterparse(
            fh, events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False
        )
        for event, el in events:
            if event == "start":
                depth += 1
                if depth == 1:
                    root_tag = el.tag
                    attrs = "".join(f" {k}={quoteattr(v)}" for k, v in el.attrib.items())
                    out.write(f"<{root_tag}{attrs}>\n")
                continue
            depth -= 1
            if depth != 1:
                continue
            what = action(title_of(el)) if el.tag == "programme" else KEEP
            if what == STRIP:
                for cat in list(el.iterchildren("category")):
                    el.remove(cat)
            if what != DROP:
                out.write("  " + etree.tostring(el, encoding="unicode", with_tail=False) + "\n")
            el.clear(keep_tail=False)
            while el.getprevious() is not None:
                del el.getparent()[0]
        out.write(f"</{root_tag}>\n")
    return out_path
