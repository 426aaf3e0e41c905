"""catalog.jsonl loaded eagerly (Show objects) and lazily (memory-mapped, parsed on access):
the same catalog either way, and the same answers from a model built on either; a catalog
whose fields break show.FieldLimits is refused either way, and never built."""
from __future__ import annotations

import json

import pytest

from guide import programme_xml, tiny_programmes, write_xmltv
from epgembed.query.load import load_model
from epgembed.artifact.catalog import Catalog, LazyShows
from epgembed.artifact.show import FieldLimits
from epgembed.query.requests import Options

pytestmark = pytest.mark.integration


def test_lazy_and_eager_load_are_the_same_catalog(tiny_model_dir):
    path = tiny_model_dir / "catalog.jsonl"
    eager, lazy = Catalog.load(path, lazy=False), Catalog.load(path, lazy=True)
    assert isinstance(lazy.shows, LazyShows) and isinstance(eager.shows, list)
    assert len(lazy) == len(eager) > 40
    assert [s.to_json() for s in lazy.shows] == [s.to_json() for s in eager.shows]
    assert lazy.shows[-1] == eager.shows[-1] and lazy.shows[3:6] == eager.shows[3:6]
    assert lazy.keys == eager.keys and lazy.by_key == eager.by_key
    assert lazy.category_counts == eager.category_counts and lazy.summary() == eager.summary()
    for title in ("Football Weekly", "Football Tonight S1 Ep. 7", "Nothing Like It"):
        assert lazy.lookup(title) == eager.lookup(title)
    with pytest.raises(IndexError):
        lazy.shows[len(lazy)]


def test_a_lazy_catalog_answers_like_an_eager_one(tiny_model_dir, monkeypatch):
    eager = load_model(tiny_model_dir)
    monkeypatch.setattr("epgembed.artifact.catalog.LAZY_BYTES", 0)      # every catalog counts as large
    lazy = load_model(tiny_model_dir)
    assert isinstance(lazy.catalog.shows, LazyShows)
    for q in ("Football Weekly", "A Title Nobody Has Seen"):
        assert lazy.related(q, Options(k=5)) == eager.related(q, Options(k=5))
    assert lazy.related_to_id(7, Options(k=5, category="news")) == eager.related_to_id(7, Options(k=5, category="news"))


@pytest.mark.parametrize("lazy", [False, True])
def test_damaged_catalog_files(tmp_path, tiny_model_dir, lazy):
    lines = (tiny_model_dir / "catalog.jsonl").read_text(encoding="utf-8").splitlines()
    p = tmp_path / "c.jsonl"
    p.write_text("\n".join(lines[:3]) + "\n\n" + lines[3], encoding="utf-8")   # a blank line, no final newline
    assert len(Catalog.load(p, lazy=lazy)) == 4
    rows = [json.loads(x) for x in lines[:3]]
    rows[1]["id"] = 2
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: show id 2 out of order"):
        Catalog.load(p, lazy=lazy)
    p.write_text(lines[0] + "\n{not json\n", encoding="utf-8")
    with pytest.raises(ValueError):
        Catalog.load(p, lazy=lazy)


# ---------------------------------------------------------------- field bounds (issue 14.7)
def _with(row: dict, **fields) -> dict:
    return {**row, **fields}


OVERSIZED = {   # one show each, with what the refusal says
    "title": (lambda r: _with(r, title="x" * 50_000), "title of 50,000 characters (at most 1,000)"),
    "key": (lambda r: _with(r, key="k" * 1501), "key of 1,501 characters (at most 1,500)"),
    "channel": (lambda r: _with(r, channels=["c" * 5000]), "channels of 5,000 characters (at most 1,000)"),
    "categories": (lambda r: _with(r, categories={f"c{i}": 1 for i in range(300)}), "300 categories (at most 256)"),
    "aliases": (lambda r: _with(r, aliases=["a" * 1500] * 1000), "1,500,"),      # 1.5M characters in all
    "context": (lambda r: _with(r, context="d" * 70_000), "context of 70,000 characters"),
    "not text": (lambda r: _with(r, title=["a list"]), "title: list, not text"),
}


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("field", sorted(OVERSIZED))
def test_a_catalog_with_an_oversized_field_is_refused(tmp_path, tiny_model_dir, field, lazy):
    rows = [json.loads(x) for x in (tiny_model_dir / "catalog.jsonl").read_text(encoding="utf-8").splitlines()]
    change, message = OVERSIZED[field]
    rows[2] = change(rows[2])
    p = tmp_path / "c.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(ValueError, match="show 2 ") as e:
        Catalog.load(p, lazy=lazy)
    assert message in str(e.value)


def test_the_largest_accepted_title_loads(tmp_path, tiny_model_dir):
    rows = [json.loads(x) for x in (tiny_model_dir / "catalog.jsonl").read_text(encoding="utf-8").splitlines()]
    rows[0]["title"] = "t" * FieldLimits().title_chars
    p = tmp_path / "c.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert Catalog.load(p).shows[0].title == rows[0]["title"]


# ---------------------------------------------------------------- over a limit (issue 26.5)
def test_a_programme_over_a_field_limit_is_skipped_with_its_file_and_line(tmp_path, capsys):
    """300 categories, or a 1,001-character channel id, on one programme: that programme is
    skipped and named with its line (with and without --skip-bad-input), the rest trained."""
    from epgembed.cli.main import main
    bad = [programme_xml("Cats 300", [f"c{i}" for i in range(300)]),
           programme_xml("A Long Channel", ["News"], channel="c" * 1001)]
    dump = write_xmltv(tmp_path / "d.xml", tiny_programmes()[:40] + bad + tiny_programmes()[40:])
    lines = dump.read_text(encoding="utf-8").splitlines()
    at = [n for n, line in enumerate(lines, 1) if "Cats 300" in line or "A Long Channel" in line]
    for skip in ([], ["--skip-bad-input"]):
        out = tmp_path / f"m{len(skip)}"
        code = main(["train", str(dump), "--out", str(out), "--dim", "16", "--epochs", "1", "--quiet", *skip])
        err = capsys.readouterr().err
        assert code == 0, err
        assert f"skipped: {dump}:{at[0]}: too many categories (300, limit 256)" in err, err
        assert f"skipped: {dump}:{at[1]}: channel id too long (1,001 characters, limit 992)" in err, err
        catalog = Catalog.load(out / "catalog.jsonl")
        assert catalog.lookup("Cats 300") is None and catalog.lookup("Football Weekly") is not None
        data = json.loads((out / "manifest.json").read_text())["data"]
        assert data["skip_counts"] == {"too many categories": 1, "channel id too long": 1}


def test_what_a_show_accumulates_is_capped_keeping_the_most_frequent():
    """No programme over a limit, but a show that gathers too much: 40 new categories a
    night for 8 nights, one title on 10,001 channels, 1,100 channel ids of 990 characters
    (over a show's 1M characters): capped, the most frequent kept; the build never fails."""
    from epgembed.config import Config
    from epgembed.build.ingest.epg import Programme
    from epgembed.build.pipeline import prepare_programmes

    def airing(title: str, cats: tuple[str, ...] = ("Show",), channel: str = "ard") -> Programme:
        return Programme(title, None, None, cats, channel, "20220721201500 +0000", "x.xml", 1)
    programmes = [airing("Tatort", ("Krimi", *(f"Neu {night} {i}" for i in range(40)))) for night in range(8)]
    programmes += [airing("Everywhere", channel=f"ch-{c}") for c in range(10_001)]
    programmes += [airing("Everywhere", channel="ch-0")] * 2 + [airing("Everywhere", channel="ch-9999")]
    programmes += [airing("Long Ids", channel=f"{c:04d}" + "x" * 986) for c in range(1_100)]
    programmes += [airing("Long Ids", channel="0500" + "x" * 986)]
    programmes += [airing(t, ("Krimi",)) for t in ("Polizeiruf", "Soko", "Wilsberg", "Der Alte")]
    catalog = prepare_programmes(programmes, Config()).catalog
    shows = {s.key: s for s in catalog.shows}
    limits = FieldLimits()
    tatort, everywhere, long_ids = shows["tatort"], shows["everywhere"], shows["long ids"]
    assert len(tatort.categories) == limits.categories and tatort.categories["krimi"] == 8
    assert len(everywhere.channels) == limits.channels and {"ch-0", "ch-9999"} <= set(everywhere.channels)
    assert "0500" + "x" * 986 in long_ids.channels and len(long_ids.channels) < 1_100
    assert all(s.problem() is None for s in catalog.shows)




def test_a_long_title_is_cut_not_refused(tmp_path):
    from epgembed.config import Config
    from epgembed.build.pipeline import prepare
    ok = [programme_xml(f"News {w}", ["News"]) for w in ("Today", "Tonight", "Weekly", "Hour")]
    dump = write_xmltv(tmp_path / "ok.xml", ok + [programme_xml("ü" * 999, ["News"])])
    assert len(prepare([dump], Config()).catalog) == 5           # titles are cut to 500 characters
