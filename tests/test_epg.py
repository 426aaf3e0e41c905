"""Tests for the streaming XMLTV reader (epgembed.build.ingest.epg)."""
from __future__ import annotations

import gzip
import pickle
import random
import time
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from epgembed.build.ingest.epg import DumpError, Programme, ReadReport, expand_paths, read_programmes

pytestmark = pytest.mark.unit

HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE tv SYSTEM "xmltv.dtd">\n'


def prog(title: str | None = "Show", *, channel: str = "c1", start: str = "20240101000000 +0000",
         extra: str = "") -> str:
    title_el = f"<title>{title}</title>" if title is not None else ""
    return (f'  <programme start="{start}" channel="{channel}">\n'
            f"    {title_el}{extra}\n  </programme>\n")


def doc(*programmes: str, header: str = HEADER) -> str:
    return header + '<tv generator-info-name="test">\n' + "".join(programmes) + "</tv>\n"


def write(path: Path, text: str | bytes, *, gz: bool = False) -> Path:
    data = text.encode("utf-8") if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def read_all(paths, **kw) -> list[Programme]:
    return list(read_programmes(paths, **kw))


SAMPLE = doc(
    prog("Home Shopping", channel="seven", start="20260822170000 +0000",
         extra="<sub-title>Handy Saw</sub-title><desc>Shopping program.</desc>"
               "<sub-title>second</sub-title><category>Special Interest</category>"),
    prog("Rote Rosen (3608)", channel="ard", extra="<category lang='de'>Serie</category>"),
)


def test_plain_file_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "a.xml", SAMPLE)
    got = read_all(path)
    assert got == [
        Programme("Home Shopping", "Handy Saw", "Shopping program.", ("Special Interest",),
                  "seven", "20260822170000 +0000", str(path), 4),
        Programme("Rote Rosen (3608)", None, None, ("Serie",), "ard", "20240101000000 +0000",
                  str(path), 7),
    ]


def test_gzip_file_same_as_plain_and_detected_by_magic(tmp_path: Path) -> None:
    plain = read_all(write(tmp_path / "a.xml", SAMPLE))
    gz = read_all(write(tmp_path / "b.xml.gz", SAMPLE, gz=True))
    disguised = read_all(write(tmp_path / "c.xml", SAMPLE, gz=True))  # gzip without .gz
    plain_named_gz = read_all(write(tmp_path / "d.xml.gz", SAMPLE))  # plain with .gz
    strip = [(p.title, p.categories, p.line) for p in plain]
    for other in (gz, disguised, plain_named_gz):
        assert [(p.title, p.categories, p.line) for p in other] == strip
    assert gz[0].source.endswith("b.xml.gz")


def test_directory_expands_sorted_xml_and_gz_only(tmp_path: Path) -> None:
    write(tmp_path / "b.xml.gz", doc(prog("B")), gz=True)
    write(tmp_path / "a.xml", doc(prog("A")))
    write(tmp_path / "c.xml", doc(prog("C")))
    write(tmp_path / "notes.txt", "not xml")
    (tmp_path / "sub.xml").mkdir()  # a directory named like a dump is not a file
    assert [p.name for p in expand_paths(tmp_path)] == ["a.xml", "b.xml.gz", "c.xml"]
    assert [p.title for p in read_all(tmp_path)] == ["A", "B", "C"]
    assert [p.title for p in read_all(str(tmp_path))] == ["A", "B", "C"]


def test_several_files_and_report(tmp_path: Path) -> None:
    a = write(tmp_path / "a.xml", doc(prog("A1"), prog("A2")))
    b = write(tmp_path / "b.xml.gz", doc(prog("B1")), gz=True)
    report = ReadReport()
    got = read_all([b, str(a), b], report=report)  # duplicate path read once
    assert [p.title for p in got] == ["B1", "A1", "A2"]
    assert report.files == [str(b), str(a)]
    assert report.programmes == 3 and report.skipped == []
    assert report.summary() == "read 2 files, 3 programmes"


def test_bom_at_start(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.xml", b"\xef\xbb\xbf" + doc(prog("Mit BOM")).encode())
    assert [p.title for p in read_all(path)] == ["Mit BOM"]


def test_nbsp_and_entities_kept_raw(tmp_path: Path) -> None:
    path = write(tmp_path / "t.xml", doc(
        prog("Grey&amp;apos;s\u00a0Anatomy"),          # double-escaped entity stays literal
        prog("A&#160;B &lt;C&gt; \u200bD \u2013 E"),  # character reference -> NBSP
    ))
    assert [p.title for p in read_all(path)] == ["Grey&apos;s\u00a0Anatomy",
                                                  "A\u00a0B <C> \u200bD \u2013 E"]


def test_all_categories_kept_in_order(tmp_path: Path) -> None:
    cats = ("<category lang='en'>Drama</category><category> News </category>"
            "<category></category><category>  </category><category>Drama</category>"
            "<category lang='de'>Komödie</category>")
    [p] = read_all(write(tmp_path / "c.xml", doc(prog("X", extra=cats))))
    assert p.categories == ("Drama", "News", "Drama", "Komödie")


def test_title_prefers_one_without_lang(tmp_path: Path) -> None:
    p1 = prog("ignored", extra="")
    p1 = p1.replace("<title>ignored</title>",
                    "<title lang='de'>Deutsch</title><title>Plain</title><title>Later</title>")
    p2 = prog("ignored").replace("<title>ignored</title>",
                                 "<title lang='fr'>  </title><title lang='fr'>Français</title>")
    got = read_all(write(tmp_path / "t.xml", doc(p1, p2)))
    assert [p.title for p in got] == ["Plain", "Français"]


@pytest.mark.parametrize("skip", [False, True])
def test_missing_title_skipped_with_line(tmp_path: Path, skip: bool) -> None:
    path = write(tmp_path / "m.xml", doc(prog("First"), prog(None), prog("   "), prog("Last")))
    report = ReadReport()
    got = read_all(path, skip_bad_input=skip, report=report)
    assert [p.title for p in got] == ["First", "Last"]
    assert report.skipped == [(str(path), 7, "programme without title"),
                              (str(path), 10, "programme without title")]
    assert report.programmes == 2
    assert report.summary().startswith(f"read 1 file, 2 programmes; skipped 2: {path}:7: ")


def _big_doc(n: int) -> bytes:
    rng = random.Random(7)  # random titles keep the gzip ratio low, so a cut lands mid-file
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=8)) for _ in range(n)]
    return doc(*(prog(f"T{i} {w}", extra=f"<desc>{w * 4}</desc>")
                 for i, w in enumerate(words))).encode()


def test_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(_big_doc(3000))
    path = write(tmp_path / "cut.xml.gz", data[: len(data) // 2])
    with pytest.raises(DumpError) as info:
        read_all(path)
    err = info.value
    assert err.path == str(path) and err.message == "truncated gzip stream"
    assert err.line is not None and err.line > 1000
    assert str(err) == f"{path}:{err.line}: truncated gzip stream"

    report = ReadReport()
    got = read_all([path, write(tmp_path / "ok.xml", doc(prog("After")))],
                   skip_bad_input=True, report=report)
    assert 100 < len(got) - 1 < 3000
    assert [p.title.split()[0] for p in got[:-1]] == [f"T{i}" for i in range(len(got) - 1)]
    assert got[-1].title == "After"
    assert report.skipped == [(str(path), err.line, "truncated gzip stream")]
    assert report.programmes == len(got)


def test_tiny_truncated_gzip_and_corrupt_gzip(tmp_path: Path) -> None:
    data = gzip.compress(doc(prog("A")).encode())
    with pytest.raises(DumpError, match="truncated gzip stream"):
        read_all(write(tmp_path / "tiny.xml.gz", data[:15]))
    corrupt = data[:10] + bytes(b ^ 0xFF for b in data[10:40]) + data[40:]
    with pytest.raises(DumpError, match=r"corrupt\.xml\.gz.*gzip"):
        read_all(write(tmp_path / "corrupt.xml.gz", corrupt))


def test_broken_xml_reports_line(tmp_path: Path) -> None:
    text = doc(prog("A"), prog("B"), "  <programme channel='x'><title>C</titel></programme>\n",
               prog("D"))
    path = write(tmp_path / "broken.xml", text)
    with pytest.raises(DumpError) as info:
        read_all(path)
    assert info.value.line == 10 and info.value.path == str(path)
    assert str(info.value).startswith(f"{path}:10: ")
    assert "Traceback" not in str(info.value) and "mismatch" in info.value.message
    report = ReadReport()
    assert [p.title for p in read_all(path, skip_bad_input=True, report=report)] == ["A", "B"]
    assert report.skipped[0][:2] == (str(path), 10)


@pytest.mark.parametrize("content,gz", [(b"", False), (b"  \n\t\n", False), (b"", True),
                                        (b"\xef\xbb\xbf\n", False)])
def test_empty_file(tmp_path: Path, content: bytes, gz: bool) -> None:
    path = write(tmp_path / "empty.xml", content, gz=gz)
    with pytest.raises(DumpError) as info:
        read_all(path)
    assert str(info.value) == f"{path}: empty file"


def test_non_xmltv_root(tmp_path: Path) -> None:
    for name, text in [("rss.xml", '<?xml version="1.0"?>\n<rss><programme><title>X</title>'
                                   "</programme></rss>"),
                       ("html.xml", "<html>\n<body/></html>")]:
        path = write(tmp_path / name, text)
        with pytest.raises(DumpError, match="not an XMLTV document") as info:
            read_all(path)
        assert info.value.path == str(path)
        report = ReadReport()
        assert read_all(path, skip_bad_input=True, report=report) == []
        assert "expected <tv>" in report.skipped[0][2]


def test_tv_without_programmes_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path / "none.xml", doc())
    report = ReadReport()
    assert read_all(path, report=report) == [] and report.skipped == []


LAUGHS = "".join(
    f' <!ENTITY lol{i} "{("&lol%d;" % (i - 1)) * 10}">\n' for i in range(1, 10))
BOMB = ('<?xml version="1.0"?>\n<!DOCTYPE tv [\n <!ENTITY lol0 "lol">\n' + LAUGHS + "]>\n"
        "<tv><programme channel='c'><title>&lol9;</title></programme></tv>\n")


@pytest.mark.parametrize("padding", [0, 70_000])  # padding pushes the DTD past the sniffed head
def test_billion_laughs_refused_quickly(tmp_path: Path, padding: int) -> None:
    text = BOMB.replace("<!DOCTYPE", f"<!-- {'x' * padding} -->\n<!DOCTYPE")
    path = write(tmp_path / "bomb.xml", text)
    t0 = time.perf_counter()
    with pytest.raises(DumpError, match="entity declarations are not allowed") as info:
        read_all(path)
    if not padding:  # found by the pre-scan, which knows the line of the first <!ENTITY
        assert info.value.line == 4  # after the (empty) comment line
    report = ReadReport()
    assert read_all(path, skip_bad_input=True, report=report) == []
    assert time.perf_counter() - t0 < 1.0
    assert report.skipped[0][0] == str(path)


@pytest.mark.parametrize("padding", [0, 70_000])
def test_external_entity_never_resolved(tmp_path: Path, padding: int) -> None:
    text = ('<?xml version="1.0"?>\n' + f"<!-- {'x' * padding} -->\n"
            '<!DOCTYPE tv [\n <!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n'
            "<tv><programme channel='c'><title>A &xxe; B</title><desc>&xxe;</desc>"
            "<category>&xxe;</category></programme></tv>\n")
    path = write(tmp_path / "xxe.xml", text)
    with pytest.raises(DumpError, match="entity declarations are not allowed") as info:
        read_all(path)
    report = ReadReport()
    got = read_all(path, skip_bad_input=True, report=report)
    seen = repr(got) + repr(report.skipped) + str(info.value)
    assert "root:" not in seen and "/bin/" not in seen
    assert got == [] and len(report.skipped) == 1


def test_external_dtd_not_loaded(tmp_path: Path) -> None:
    header = '<?xml version="1.0"?>\n<!DOCTYPE tv SYSTEM "file:///etc/passwd">\n'
    [p] = read_all(write(tmp_path / "dtd.xml", doc(prog("Safe"), header=header)))
    assert p.title == "Safe" and p.line == 4


def test_invalid_utf8(tmp_path: Path) -> None:
    data = doc(prog("Good"), prog("BAD")).encode().replace(b"BAD", b"B\xff\xfeD")
    path = write(tmp_path / "bad.xml.gz", data, gz=True)
    with pytest.raises(DumpError) as info:
        read_all(path)
    assert info.value.line == 8 and info.value.path == str(path)
    report = ReadReport()
    assert [p.title for p in read_all(path, skip_bad_input=True, report=report)] == ["Good"]
    assert report.skipped[0][1] == 8


def test_nonexistent_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.xml.gz"
    with pytest.raises(DumpError) as info:
        read_all(missing)
    assert str(info.value) == f"{missing}: no such file" and info.value.line is None
    report = ReadReport()
    ok = write(tmp_path / "ok.xml", doc(prog("OK")))
    assert [p.title for p in read_all([missing, ok], skip_bad_input=True, report=report)] == ["OK"]
    assert report.skipped == [(str(missing), None, "no such file")]
    assert report.summary() == f"read 2 files, 1 programmes; skipped 1: {missing}: no such file"


def test_error_stops_later_files_without_skip(tmp_path: Path) -> None:
    bad = write(tmp_path / "a.xml", "<tv><programme>")
    good = write(tmp_path / "b.xml", doc(prog("B")))
    seen: list[str] = []
    with pytest.raises(DumpError):
        for p in read_programmes([bad, good]):
            seen.append(p.title)
    assert seen == []


def test_dump_error_format_and_pickle() -> None:
    err = DumpError("x.xml", 3, "boom")
    assert str(err) == "x.xml:3: boom" and isinstance(err, ValueError)
    assert str(DumpError("x.xml", None, "boom")) == "x.xml: boom"
    again = pickle.loads(pickle.dumps(err))
    assert (again.path, again.line, again.message) == ("x.xml", 3, "boom")


def test_summary_truncates_long_skip_lists() -> None:
    report = ReadReport(files=["a"], programmes=1234,
                        skipped=[("a", i, "programme without title") for i in range(8)])
    text = report.summary(limit=2)
    assert text == ("read 1 file, 1,234 programmes; skipped 8: a:0: programme without title; "
                    "a:1: programme without title; ... and 6 more")


def _random_titles(n: int) -> list[str]:
    rng = random.Random(11)
    pool = ("abcXYZ 019&<>\"'\u00a0\u200b\u2013\u00e9\u00fc\u4e2d\u6587\uff21\U0001f3ac#:;()[]"
            "\u0301\u2028\u3000")
    return ["".join(rng.choices(pool, k=rng.randint(1, 30))) for _ in range(n)]


def test_any_title_round_trips(tmp_path: Path) -> None:
    titles = _random_titles(300) + ["  ", "\u00a0", " padded  "]
    path = write(tmp_path / "rt.xml", doc(*(prog(escape(t, {'"': "&quot;"})) for t in titles)))
    report = ReadReport()
    got = read_all(path, report=report)
    kept = [t for t in titles if t.strip()]  # unicode-blank titles count as missing
    assert [p.title for p in got] == [t.strip(" ") for t in kept]
    assert len(report.skipped) == len(titles) - len(kept) >= 2
