"""catalog.jsonl loaded eagerly (Show objects) and lazily (memory-mapped, parsed on access):
the same catalog either way, and the same answers from a model built on either; a catalog
whose fields break catalog.FieldLimits is refused either way, and never built."""
from __future__ import annotations

import json

import pytest

from conftest import programme_xml, write_xmltv
from epgembed.artifact.bundle import load_model
from epgembed.ingest.catalog import Catalog, FieldLimits, LazyShows

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
    monkeypatch.setattr("epgembed.ingest.catalog.LAZY_BYTES", 0)      # every catalog counts as large
    lazy = load_model(tiny_model_dir)
    assert isinstance(lazy.catalog.shows, LazyShows)
    for q in ("Football Weekly", "A Title Nobody Has Seen"):
        assert lazy.related(q, 5) == eager.related(q, 5)
    assert lazy.related_to_id(7, 5, category="news") == eager.related_to_id(7, 5, category="news")


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


def test_a_build_whose_catalog_would_be_refused_stops_with_the_reason(tmp_path):
    from epgembed.config import Config
    from epgembed.pipeline import prepare
    ok = [programme_xml(f"News {w}", ["News"]) for w in ("Today", "Tonight", "Weekly", "Hour")]
    dump = write_xmltv(tmp_path / "ok.xml", ok + [programme_xml("ü" * 999, ["News"])])
    assert len(prepare([dump], Config()).catalog) == 5           # titles are cut to 500 characters
    dump = write_xmltv(tmp_path / "bad.xml", ok + [programme_xml("A Long Channel", ["News"], channel="c" * 20_000)])
    with pytest.raises(ValueError, match=r"show 0 'a long channel': channels of 20,000 characters \(at most 1,000\)"):
        prepare([dump], Config())
