"""Ingest inputs that used to be dropped, hang or mislead (issue 14, items 8-12): namespaced
programmes, titles that clean to nothing, pipes and FIFOs, directory scans, UTF-32 BOMs,
file names with control characters, archives named .xml.gz, and `epgembed versions`."""
from __future__ import annotations

import bz2
import contextlib
import functools
import gzip
import io
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from guide import tiny_programmes, write_xmltv
from epgembed.build.ingest import epg
from epgembed import registry
from epgembed.build.ingest.catalog_build import EMPTY_KEY, build_catalog
from epgembed.cli.main import main
from epgembed.build.ingest.dumpfiles import ReadLimits
from epgembed.build.ingest.epg import (SKIP_EMPTY_TITLE, SKIP_NAMESPACED, DumpError, Programme,
                                 ReadReport, expand_paths, read_programmes)
from epgembed.text.normalize import clean_text, title_key

pytestmark = pytest.mark.integration

HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<tv xmlns:x="http://example.com/x">\n'
TINY = {"train": {"dim": 8, "epochs": 1, "min_examples": 0, "val_fraction": 0.0}, "index": {"n_trees": 2}}
QUICK = ReadLimits(pipe_timeout_s=0.3)


def prog(title: str, tag: str = "programme") -> str:
    return f'<{tag} start="20260101060000 +0000" channel="c1"><title>{title}</title></{tag}>\n'


def dump(*programmes: str) -> bytes:
    return (HEAD + "".join(programmes) + "</tv>\n").encode("utf-8")


def read(paths, **kw) -> tuple[list[str], ReadReport]:
    rep = ReadReport()
    return [p.title for p in read_programmes(paths, report=rep, **kw)], rep


@contextlib.contextmanager
def unblock_after(fifo: Path, seconds: float):
    """A safety net for the code before the fix (whose open() of a FIFO waited for a writer
    forever): after `seconds`, open the FIFO's write end once, if a reader is waiting, and close it."""
    stop = threading.Event()

    def run() -> None:
        deadline = time.monotonic() + seconds
        while not stop.wait(0.05):
            if time.monotonic() < deadline:
                continue
            with contextlib.suppress(OSError):  # ENXIO: no reader (any more), nothing to unblock
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def feed(target: str | Path, data: bytes, delay: float = 0.0) -> threading.Thread:
    """Write `data` into a FIFO (opened for writing, which waits for the reader) in a thread,
    `delay` s late: a writer that comes after the reader (the sleep is the input, not a wait)."""
    def run() -> None:
        time.sleep(delay)
        with open(target, "wb") as f:
            f.write(data)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------- item 8: <x:programme>
def test_a_dump_that_is_half_namespaced_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "half.xml"
    path.write_bytes(dump(*(prog(f"Show {i}", "x:programme" if i % 2 else "programme")
                            for i in range(20))))
    with pytest.raises(DumpError, match="10 of 20 programmes .* are namespaced") as info:
        read(path)
    assert info.value.path == str(path) and info.value.line == 4  # the first <x:programme>
    titles, rep = read(path, skip_bad_input=True)
    assert len(titles) == 10 and len(rep.file_errors) == 1 and rep.file_errors[0][0] == str(path)


def test_a_few_namespaced_programmes_are_skipped_with_their_lines(tmp_path):
    path = tmp_path / "few.xml"
    path.write_bytes(dump(*[prog(f"Show {i}") for i in range(39)], prog("Odd", "x:programme")))
    titles, rep = read(path)
    assert len(titles) == 39
    assert rep.skip_counts() == {SKIP_NAMESPACED: 1}
    assert rep.skipped[0][:2] == (str(path), 42) and "<x:programme>" in rep.skipped[0][2]


def test_train_on_an_all_namespaced_dump_names_the_file(tmp_path, capsys):
    path = tmp_path / "all_ns.xml"
    path.write_bytes(dump(*(prog(f"Show {i}", "x:programme") for i in range(5))))
    assert main(["train", str(path), "--out", str(tmp_path / "m"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}:" in err and "5 of 5 programmes (100%) are namespaced" in err


# ---------------------------------------------------------------- item 9: invisible titles
INVISIBLE = ["\u200b\u200c\u2060", "\u009c\u0090", "\u202e\u2066\u200f", "\u0301\u0308 \u20dd"]


def test_combining_marks_alone_clean_to_nothing():
    assert clean_text("\u0301\u0308 \u20dd") == "" and title_key("\u0301\u0308") == ""
    assert clean_text("Cafe\u0301") == "Café" and clean_text("a \u0301") == "a \u0301"


def test_titles_that_clean_to_nothing_are_skipped_with_a_count(tmp_path):
    path = tmp_path / "invisible.xml"
    path.write_bytes(dump(prog("Real Show"), *map(prog, INVISIBLE), prog("&#8203;")))
    titles, rep = read(path)
    assert titles == ["Real Show"]
    assert rep.skip_counts() == {SKIP_EMPTY_TITLE: 5} and rep.empty_titles() == 5
    assert [s[1] for s in rep.skipped] == [4, 5, 6, 7, 8]


def test_a_visible_title_in_another_language_is_kept(tmp_path):
    path = tmp_path / "lang.xml"
    path.write_bytes(dump('<programme channel="c"><title>\u200b</title>'
                          '<title lang="de">Tatort</title></programme>\n'))
    assert read(path)[0] == ["Tatort"]


def test_the_catalog_counts_titles_with_an_empty_key():
    programmes = [Programme(t, None, None, (), "c1", "20260101060000 +0000", "d.xml", 3)
                  for t in ("...", " - ", "News")]
    dropped: Counter[str] = Counter()
    catalog = build_catalog(programmes, dropped=dropped)
    assert [s.key for s in catalog.shows] == ["news"] and dropped == {EMPTY_KEY: 2}


# ---------------------------------------------------------------- item 10: pipes and FIFOs
def test_a_fifo_without_a_writer_times_out(tmp_path):
    fifo = tmp_path / "f.xml"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with unblock_after(fifo, 10), pytest.raises(DumpError, match=r"no data within 0\.3 s") as info:
        read(fifo, limits=QUICK)
    assert time.monotonic() - t0 < 5 and info.value.path == str(fifo)


def test_a_fifo_with_a_writer_is_read(tmp_path):
    fifo = tmp_path / "f.xml.gz"
    os.mkfifo(fifo)
    writer = feed(fifo, gzip.compress(dump(prog("A"), prog("B"))), delay=0.1)
    with unblock_after(fifo, 10):
        assert read(fifo)[0] == ["A", "B"]
    writer.join()


@contextlib.contextmanager
def pipe_of(data: bytes):
    """The /dev/fd/N path of a pipe that a thread fills with `data` (less than a pipe buffer),
    which is what a program gets for <(zcat dump.xml.gz)."""
    r, w = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(w, data), os.close(w)), daemon=True)
    writer.start()
    try:
        yield f"/dev/fd/{r}"
    finally:
        os.close(r)
        writer.join()


def test_an_anonymous_pipe_is_read_like_process_substitution():
    with pipe_of(gzip.compress(dump(*(prog(f"Show {i}") for i in range(200))))) as path:
        titles, rep = read(path)
    assert len(titles) == 200 and rep.files == [path]


def test_a_gzip_bomb_through_a_pipe_is_still_refused():
    with pipe_of(gzip.compress(b"<tv>" + b" " * (40 << 20))) as path:
        with pytest.raises(DumpError, match="gzip bomb"):
            read(path)


def test_dash_reads_standard_input(tmp_path):
    code = ("from epgembed.build.ingest.epg import ReadReport, read_programmes; r = ReadReport(); "
            "print(sum(1 for _ in read_programmes(['-'], report=r)), r.files)")
    (tmp_path / "in.gz").write_bytes(gzip.compress(dump(prog("A"), prog("B"), prog("C"))))
    for how in ("a pipe", "a file"):
        with open(tmp_path / "in.gz", "rb") as f:
            kw = {"input": f.read()} if how == "a pipe" else {"stdin": f}
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                                  cwd=tmp_path, **kw)
        assert proc.returncode == 0 and proc.stdout.decode().split() == ["3", "['<stdin>']"], proc


def test_cli_train_fifo_without_writer_is_a_clear_error(tmp_path, capsys):
    fifo = tmp_path / "f.xml"
    os.mkfifo(fifo)
    with unblock_after(fifo, 10):
        code = main(["train", str(fifo), "--out", str(tmp_path / "m"), "--quiet",
                     "--input-timeout", "0.3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"epgembed train: error: {fifo}: no data")
    assert not (tmp_path / "m").exists()


def test_nightly_with_a_silent_fifo_ends_and_releases_the_lock(tmp_path, monkeypatch):
    from epgembed.config import Config
    from epgembed.nightly.run import NightlyConfig, run_nightly
    monkeypatch.setattr(epg, "ReadLimits", functools.partial(ReadLimits, pipe_timeout_s=0.3))
    fifo, root = tmp_path / "tonight.xml", tmp_path / "root"
    os.mkfifo(fifo)
    with unblock_after(fifo, 10):
        result = run_nightly([fifo], root, NightlyConfig(), Config())
    assert result.exit_code != 0 and registry.current_version(root) is None
    assert "no data within 0.3 s" in json.dumps(result.report)
    with registry.locked(root):  # released: a new run may start
        pass


def test_cli_train_reads_stdin_and_the_manifest_counts_empty_titles(tmp_path):
    """`zcat dump | epgembed train - ...`; the dump also has titles that clean to nothing
    (skipped by the reader) and titles of punctuation only (dropped by the catalog)."""
    body = "".join(tiny_programmes()) + "".join(map(prog, INVISIBLE)) + prog("...") + prog("- -")
    data = gzip.compress(("<?xml version='1.0'?>\n<tv>\n" + body + "</tv>\n").encode())
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    proc = subprocess.run([sys.executable, "-m", "epgembed.cli.main", "train", "-", "--out", "m",
                           "--config", "tiny.json", "--quiet", "--threads", "1"],
                          input=data, capture_output=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    data = json.loads((tmp_path / "m" / "manifest.json").read_text())["data"]
    assert data["inputs"] == ["-"] and data["files"] == ["<stdin>"]
    assert data["empty_titles"] == len(INVISIBLE) + 2
    assert data["skip_counts"] == {SKIP_EMPTY_TITLE: len(INVISIBLE)}
    assert "dropped: 2 programmes whose title has an empty key" in proc.stderr.decode()


# ---------------------------------------------------------------- item 11: directory scans
def test_a_directory_scan_names_every_entry_it_leaves_out(tmp_path):
    d = tmp_path / "dumps"
    d.mkdir()
    write_xmltv(d / "good.xml", [prog("Good")])
    (d / "dangling.xml").symlink_to("nowhere.xml")
    (d / "loop.xml.gz").symlink_to("loop.xml.gz")
    os.mkfifo(d / "fifo.xml")
    (d / "null.xml").symlink_to(os.devnull)
    (d / "sub.xml").mkdir()
    (d / "notes.txt").symlink_to("nowhere")           # not named like a dump: not a dump
    why = {"dangling.xml": "a dangling symbolic link", "fifo.xml": "a FIFO",
           "loop.xml.gz": "a symbolic link loop", "null.xml": "a character device",
           "sub.xml": "a directory"}
    want = [(str(d / n), None, f"left out of the directory scan: {w}") for n, w in sorted(why.items())]
    files = expand_paths(d)
    assert files == [d / "good.xml"] and [(n, None, w) for n, w in files.left_out] == want
    for paths in (d, files, [str(d)]):   # nightly expands first, then reads the expanded list
        titles, rep = read(paths)
        assert titles == ["Good"] and rep.skipped == want and rep.file_errors == []


# ---------------------------------------------------------------- item 12
@pytest.mark.parametrize("codec", ["utf-32-le", "utf-32-be"])
@pytest.mark.parametrize("gz", [False, True])
def test_utf32_with_a_bom_reads_like_without(tmp_path, codec, gz):
    text = dump(prog("Télé à la carte"), prog("Zürich")).decode().replace(
        'encoding="UTF-8"', 'encoding="UTF-32"')
    bom = "\ufeff".encode(codec)
    pack = gzip.compress if gz else bytes
    plain, with_bom = tmp_path / "plain.xml", tmp_path / "bom.xml"
    plain.write_bytes(pack(text.encode(codec)))
    with_bom.write_bytes(pack(bom + text.encode(codec)))
    assert read(with_bom)[0] == read(plain)[0] == ["Télé à la carte", "Zürich"]


def test_file_names_with_control_characters_are_printed_escaped(tmp_path, capsys):
    path = tmp_path / "evil\n\x1b[31mred.xml"
    path.write_bytes(b"<tv><programme>")
    shown = str(path).replace("\n", "\\n").replace("\x1b", "\\x1b")
    with pytest.raises(DumpError) as info:
        read(path)
    assert str(info.value).startswith(f"{shown}:1: ") and info.value.path == str(path)
    rep = read(path, skip_bad_input=True)[1]
    assert rep.skipped[0][0] == shown and shown in rep.summary()
    assert main(["train", str(path), "--out", str(tmp_path / "m"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and shown in err


def test_a_file_name_that_is_not_utf8_is_read_and_named_escaped(tmp_path, tiny_dump, capsys):
    """Issue 26.13: a byte that is not UTF-8 in a dump's name stopped train and nightly with
    a bare codec error (the manifest and report could not be written)."""
    path = tmp_path / os.fsdecode(b"night\xff.xml.gz")
    path.write_bytes(tiny_dump.read_bytes())
    out = tmp_path / "m"
    assert main(["train", str(path), "--out", str(out), "--quiet", "--epochs", "1", "--dim", "16"]) == 0, \
        capsys.readouterr().err
    data = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["data"]
    shown = str(tmp_path / "night\\xff.xml.gz")
    assert data["files"] == data["inputs"] == [shown] and data["programmes"] > 90


def _zip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("dump.xml", data)
    return buf.getvalue()


@pytest.mark.parametrize("pack, name", [(_zip, "a zip archive"), (bz2.compress, "a bzip2 file"),
                                        (lzma.compress, "an xz file")])
def test_other_compressed_formats_named_xml_gz_are_named(tmp_path, pack, name):
    path = tmp_path / "dump.xml.gz"
    path.write_bytes(pack(dump(prog("A"))))
    with pytest.raises(DumpError, match=f"^{re.escape(str(path))}: {name} by its first bytes, not XML"):
        read(path)


# ---------------------------------------------------------------- item 12: epgembed versions
@pytest.fixture
def models_root(tmp_path, tiny_model_dir) -> Path:
    root = tmp_path / "root"
    registry.publish(root, tiny_model_dir, move=False)
    return root


def test_versions_verify_finds_a_truncated_file(models_root, capsys):
    version = registry.current_version(models_root)
    assert main(["versions", "--models-root", str(models_root), "--verify"]) == 0
    vectors = registry.versions_dir(models_root) / version / "vectors.npy"
    os.truncate(vectors, vectors.stat().st_size // 2)
    capsys.readouterr()
    assert main(["versions", "--models-root", str(models_root), "--verify"]) == 1
    out = capsys.readouterr().out
    assert f"* {version}" in out and "BROKEN" in out and "vectors.npy" in out
    assert main(["versions", "--models-root", str(models_root), "--verify", "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert [r["version"] for r in rows if "vectors.npy" in r.get("error", "")] == [version]


def test_versions_always_reports_a_dangling_current(models_root, capsys):
    version = registry.current_version(models_root)
    shutil.rmtree(registry.versions_dir(models_root) / version)
    assert main(["versions", "--models-root", str(models_root)]) == 1
    out = capsys.readouterr().out
    assert f"* {version}" in out and "dangling" in out
    assert main(["versions", "--models-root", str(models_root), "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert rows == [{"version": version, "current": True, "error": rows[0]["error"]}]
    assert "dangling" in rows[0]["error"]


def test_versions_of_a_missing_root_is_an_error(tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "dir"
    assert main(["versions", "--models-root", str(missing)]) == 2
    assert f"{missing}: no such models root" in capsys.readouterr().err
    assert not missing.exists()
