"""The hostile and broken dumps that tests/test_fuzz_ingest.py feeds to the reader and to
`epgembed train`: each a writer of one file and what reading it must end in (`Case`).
EPGEMBED_FUZZ=1 (``make fuzz``) makes the bombs bigger and the random mutations more."""
from __future__ import annotations

import gzip
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from guide import programme_xml, tiny_programmes

FUZZ = os.environ.get("EPGEMBED_FUZZ") == "1"       # read here only: `make fuzz` sets it
MIB, GIB = 1 << 20, 1 << 30
BOMB = (8 if FUZZ else 1) * GIB                       # what each gzip bomb inflates to
MUTANTS = 400 if FUZZ else 40
MEMORY_LIMIT = 1 * GIB                                # RLIMIT_AS of each reading subprocess
MAX_RSS_MB = 200                                      # peak RSS (VmHWM) a case may reach
CASE_TIMEOUT = 30.0                                   # a hang fails here
MAX_SECONDS = 10.0                                    # per read, on a shared 2-core machine
REPO = Path(__file__).resolve().parents[1]
HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n<tv>\n<channel id="ch1"><display-name>One</display-name></channel>\n'
GOOD = "".join(tiny_programmes()).encode()            # 97 titled programmes
N_GOOD = len(tiny_programmes())


@dataclass(frozen=True)
class Case:
    expect: str                         # "error" | "skip" | "ok"
    detail: str = ""                    # in the error message, or the skip reason (lowercase)
    programmes: int | None = None       # expected for "ok"/"skip" (None: not checked)
    skips: dict = field(default_factory=dict)   # expected ReadReport.skip_counts()


def prog(title: bytes, extra: bytes = b"") -> bytes:
    return b'<programme start="20260101060000 +0000" channel="ch1"><title>' + title + b"</title>" + extra + b"</programme>\n"


def doc(*parts: bytes) -> bytes:
    return HEAD + b"".join(parts) + b"</tv>\n"


def gz_members(path: Path, head: bytes, body: bytes, total: int, tail: bytes = b"") -> None:
    """A gzip file inflating to `head` + `body` repeated up to `total` bytes + `tail`, written as
    concatenated members (valid gzip) so a gigabyte bomb costs milliseconds to make."""
    member = gzip.compress(body, 9, mtime=0)
    with open(path, "wb") as f:
        f.write(gzip.compress(head, mtime=0))
        for _ in range(max(1, total // len(body))):
            f.write(member)
        f.write(gzip.compress(tail, mtime=0))


def _laughs() -> bytes:
    ents = "".join(f' <!ENTITY l{i} "{("&l%d;" % (i - 1)) * 10}">\n' for i in range(1, 10))
    return (f'<?xml version="1.0"?>\n<!DOCTYPE tv [\n <!ENTITY l0 "lol">\n{ents}]>\n'
            "<tv><programme channel='c'><title>&l9;</title></programme></tv>\n").encode()


def _garbage(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def valid_dump() -> bytes:
    return doc(GOOD)


# name -> (writer(path), Case). Writers get a path and write the file.
CORPUS: dict[str, tuple[Callable[[Path], None], Case]] = {
    # ---- broken files
    "empty": (lambda p: p.write_bytes(b""), Case("error", "empty file")),
    "truncated_plain": (lambda p: p.write_bytes(valid_dump()[: len(valid_dump()) * 2 // 3]), Case("error")),
    "truncated_gzip": (lambda p: p.write_bytes(gzip.compress(valid_dump())[:-200]), Case("error", "truncated gzip")),
    "gzip_header_only": (lambda p: p.write_bytes(gzip.compress(valid_dump())[:12]), Case("error", "gzip")),
    "corrupt_gzip": (lambda p: p.write_bytes(b"\x1f\x8b" + _garbage(4000, 1)), Case("error", "gzip")),
    "binary_garbage": (lambda p: p.write_bytes(_garbage(64 * 1024, 2)), Case("error")),
    "binary_garbage_gz": (lambda p: p.write_bytes(gzip.compress(_garbage(64 * 1024, 3))), Case("error")),
    "bom_then_garbage": (lambda p: p.write_bytes(b"\xef\xbb\xbf" + _garbage(1000, 4)), Case("error")),
    "unterminated_programme": (lambda p: p.write_bytes(HEAD + GOOD + b"<programme><title>x"), Case("error")),
    "two_roots": (lambda p: p.write_bytes(doc(GOOD) + b"<tv></tv>"), Case("error", "extra content")),
    "not_xmltv": (lambda p: p.write_bytes(b"<rss><programme><title>x</title></programme></rss>"),
                  Case("error", "not an xmltv document")),
    "prolog_only": (lambda p: p.write_bytes(b'<?xml version="1.0"?>\n<!-- nothing -->\n'), Case("error")),
    # ---- encodings
    "invalid_utf8": (lambda p: p.write_bytes(doc(GOOD, prog(b"B\xff\xfeD"))), Case("error", "encoding")),
    "mixed_utf8_latin1": (lambda p: p.write_bytes(doc(prog("Café".encode()), prog("Café".encode("latin-1")))),
                          Case("error", "encoding")),
    "cp1252_quotes_in_utf8": (lambda p: p.write_bytes(doc(GOOD, prog(b"\x93Quoted\x94"))), Case("error")),
    "latin1_declared": (lambda p: p.write_bytes(
        b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<tv>' + prog("Télé à la carte".encode("latin-1")) + b"</tv>"),
        Case("ok", programmes=1)),
    "utf8_declared_latin1_mojibake": (lambda p: p.write_bytes(
        b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<tv>' + GOOD + prog("Café".encode()) + b"</tv>"),
        Case("ok", programmes=N_GOOD + 1)),
    "utf16_bom": (lambda p: p.write_bytes(
        ('<?xml version="1.0" encoding="UTF-16"?>\n<tv>\n' + GOOD.decode() + "</tv>\n").encode("utf-16")),
        Case("ok", programmes=N_GOOD)),
    "unknown_encoding": (lambda p: p.write_bytes(b'<?xml version="1.0" encoding="X-NOSUCH-8"?>\n<tv/>'),
                         Case("error")),
    "control_char": (lambda p: p.write_bytes(doc(GOOD, prog(b"Bad\x01Title"))), Case("error")),
    "control_char_ref": (lambda p: p.write_bytes(doc(prog(b"Bad&#1;Title"))), Case("error")),
    "surrogate_char_ref": (lambda p: p.write_bytes(doc(prog(b"Bad&#xD800;Title"))), Case("error")),
    # ---- DTDs and entities
    "billion_laughs": (lambda p: p.write_bytes(_laughs()), Case("error", "entity declarations")),
    "external_entity": (lambda p: p.write_bytes(
        b'<?xml version="1.0"?>\n<!DOCTYPE tv [\n<!ENTITY x SYSTEM "file:///etc/passwd">\n]>\n'
        b"<tv>" + prog(b"A &x; B") + b"</tv>"), Case("error", "entity declarations")),
    "parameter_entity": (lambda p: p.write_bytes(
        b'<?xml version="1.0"?>\n<!DOCTYPE tv [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]>\n<tv/>'),
        Case("error", "entity declarations")),
    "quadratic_blowup": (lambda p: p.write_bytes(
        b'<?xml version="1.0"?>\n<!DOCTYPE tv [<!ENTITY a "' + b"x" * 50_000 + b'">]>\n<tv>'
        + prog(b"&a;" * 50_000) + b"</tv>"), Case("error", "entity declarations")),
    "dtd_past_the_head": (lambda p: p.write_bytes(
        b'<?xml version="1.0"?>\n<!--' + b"x" * 100_000 + b'-->\n<!DOCTYPE tv [<!ENTITY a "b">]>\n<tv>'
        + prog(b"&a;") + b"</tv>"), Case("error", "entity declarations")),
    "external_dtd_not_loaded": (lambda p: p.write_bytes(
        b'<?xml version="1.0"?>\n<!DOCTYPE tv SYSTEM "http://127.0.0.1:9/xmltv.dtd">\n<tv>' + GOOD + b"</tv>"),
        Case("ok", programmes=N_GOOD)),
    "undeclared_entity": (lambda p: p.write_bytes(doc(prog(b"A &nbsp; B"))), Case("error", "entity")),
    # ---- sizes and shapes
    "title_10mb": (lambda p: p.write_bytes(doc(GOOD, prog(b"T" * (10 * MIB)), GOOD)), Case("error", "too long")),
    "title_5mb_skipped": (lambda p: p.write_bytes(doc(GOOD, prog(b"T" * (5 * MIB)), GOOD)),
                          Case("skip", programmes=2 * N_GOOD, skips={"title too long": 1})),
    "desc_9mb": (lambda p: p.write_bytes(doc(prog(b"Long Desc", b"<desc>" + b"d " * (4 * MIB) + b"</desc>"), GOOD)),
                 Case("ok", programmes=N_GOOD + 1)),
    "comment_12mb": (lambda p: p.write_bytes(doc(GOOD, b"<!--" + b"c" * (12 * MIB) + b"-->")), Case("error", "comment")),
    "attribute_40mb": (lambda p: p.write_bytes(doc(GOOD, b'<programme channel="' + b"a" * (40 * MIB) + b'"/>')),
                       Case("error")),
    "deeply_nested": (lambda p: p.write_bytes(doc(GOOD, b"<programme><title>" + b"<i>" * 100_000)),
                      Case("error", "depth")),
    "nested_200_in_title": (lambda p: p.write_bytes(doc(prog(b"<i>" * 200 + b"Deep" + b"</i>" * 200))),
                            Case("ok", programmes=1)),
    "element_flood_in_programme": (lambda p: gz_members(p, HEAD + b"<programme><title>x</title>", b"<x/>" * 4096, BOMB // 4),
                                   Case("error", "too many elements")),
    "element_flood_after_programmes": (lambda p: p.write_bytes(doc(GOOD, b"<channel/>" * 300_000)),
                                       Case("error", "too many elements")),
    "missing_titles": (lambda p: p.write_bytes(doc(
        GOOD, prog(b""), prog(b"   "), prog("\u00a0\u3000".encode()),
        b'<programme channel="c"><sub-title>no title</sub-title></programme>\n')),
        Case("skip", programmes=N_GOOD, skips={"programme without title": 4})),
    "invisible_titles": (lambda p: p.write_bytes(doc(
        GOOD, prog("\u200b\u2060".encode()), prog("\u009c".encode()), prog("\u202e\u2066".encode()),
        prog("\u0301\u0308".encode()))),
        Case("skip", programmes=N_GOOD, skips={"title empty after cleaning": 4})),
    "namespaced_half": (lambda p: p.write_bytes(doc(GOOD, GOOD.replace(
        b"<programme ", b'<x:programme xmlns:x="http://example.com/x" ').replace(b"</programme>", b"</x:programme>"))),
        Case("error", "are namespaced")),
    "only_missing_titles": (lambda p: p.write_bytes(doc(*[b'<programme channel="c"/>\n'] * 5000)),
                            Case("skip", programmes=0, skips={"programme without title": 5000})),
    "fifty_categories": (lambda p: p.write_bytes(doc(GOOD, programme_xml(
        "Everything Show", [f"Category {i}" for i in range(50)]).encode())), Case("ok", programmes=N_GOOD + 1)),
    # ---- gzip bombs
    "gzip_bomb_zeros": (lambda p: gz_members(p, b"", b"\0" * MIB, BOMB), Case("error")),
    "gzip_bomb_zeros_in_title": (lambda p: gz_members(p, HEAD + b"<programme><title>", b"\0" * MIB, BOMB),
                                 Case("error")),
    "gzip_bomb_whitespace_in_element": (lambda p: gz_members(p, HEAD + GOOD + b"<programme><title>", b" " * MIB, BOMB),
                                        Case("error")),
    "gzip_bomb_whitespace_between": (lambda p: gz_members(p, HEAD + GOOD, b"\n" * MIB, BOMB, b"</tv>"), Case("error")),
    "gzip_bomb_programmes": (lambda p: gz_members(p, HEAD, prog(b"Same Show") * 4096, BOMB, b"</tv>"),
                             Case("error", "gzip bomb")),
}
