"""catalog.jsonl loaded eagerly (Show objects) and lazily (memory-mapped, parsed on access):
the same catalog either way, and the same answers from a model built on either."""
from __future__ import annotations

import json

import pytest

from epgembed.bundle import load_model
from epgembed.catalog import Catalog, LazyShows


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
    monkeypatch.setattr("epgembed.catalog.LAZY_BYTES", 0)      # every catalog counts as large
    lazy = load_model(tiny_model_dir)
    assert isinstance(lazy.catalog.shows, LazyShows)
    for q in ("Football Weekly", "A Title Nobody Has Seen"):
        assert lazy.related(q, 5).to_json() == eager.related(q, 5).to_json()
    assert lazy.related_to_id(7, 5, category="news").to_json() == eager.related_to_id(7, 5, category="news").to_json()


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
