"""atheris (libFuzzer) harness: the XMLTV reader on arbitrary bytes.

    .venv/bin/python fuzz/fuzz_epg.py -max_total_time=60 -artifact_prefix=/tmp/x/ /tmp/x/corpus

Every input ends in programmes or a DumpError ("FILE:LINE: message" on one line), never
another exception; with skip_bad_input nothing is raised at all. An empty corpus directory
is seeded with small valid, gzipped, truncated and entity-declaring dumps. Inputs are
written to one temporary file (the reader takes paths). Run by `make fuzz` for a bounded time.
"""
import gzip
import os
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from epgembed.build.ingest.dumpfiles import ReadLimits
    from epgembed.build.ingest.epg import DumpError, ReadReport, read_programmes

LIMITS = ReadLimits(max_element_bytes=1 << 20, max_element_tags=5_000, gzip_ratio_after=1 << 20)
PATH = Path(tempfile.mkdtemp(prefix="epgembed-fuzz-")) / "input.xml"
DOC = (b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE tv SYSTEM "xmltv.dtd">\n<tv>\n'
       b'<channel id="c1"><display-name>One</display-name></channel>\n'
       b'<programme start="20260101060000 +0000" channel="c1"><title lang="en">Hey Arnold! S3 Ep. 42</title>'
       b'<sub-title>Part 2</sub-title><desc>A &amp; B</desc><category>Kids</category></programme>\n'
       b'<programme start="20260101070000 +0000" channel="c1"><title>Rote Rosen (3608)</title></programme>\n'
       b"</tv>\n")
SEEDS = {"valid.xml": DOC, "valid.xml.gz": gzip.compress(DOC, mtime=0), "cut.xml": DOC[:200],
         "entity.xml": DOC.replace(b"SYSTEM \"xmltv.dtd\">", b"[<!ENTITY a \"b\">]>"),
         "notitle.xml": DOC.replace(b"<title>Rote Rosen (3608)</title>", b"")}


def seed(argv: list[str]) -> None:
    for arg in argv[1:]:
        if not arg.startswith("-") and os.path.isdir(arg) and not os.listdir(arg):
            for name, data in SEEDS.items():
                Path(arg, name).write_bytes(data)


def test_one_input(data: bytes) -> None:
    PATH.write_bytes(data)
    try:
        for _ in read_programmes(PATH, limits=LIMITS):
            pass
    except DumpError as e:
        assert str(e).startswith(f"{PATH}") and "\n" not in e.message, str(e)
    report = ReadReport()
    for _ in read_programmes(PATH, skip_bad_input=True, report=report, limits=LIMITS):
        pass
    assert len(report.file_errors) <= 1


if __name__ == "__main__":
    seed(sys.argv)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
