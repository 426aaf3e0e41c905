"""The synthetic catalog generator: seeded, valid XMLTV, real-looking shape (small sizes only)."""
from __future__ import annotations

import gzip

import pytest

from epgembed.build.ingest.catalog_build import build_catalog
from epgembed.config import CatalogConfig
from epgembed.build.ingest.epg import read_programmes
from epgembed.gen.synth import SynthConfig, main, write_synth

pytestmark = pytest.mark.unit


def test_seeded_determinism(tmp_path):
    a, b, c = tmp_path / "a.xml.gz", tmp_path / "b.xml.gz", tmp_path / "c.xml.gz"
    write_synth(a, SynthConfig(shows=300, seed=1))
    write_synth(b, SynthConfig(shows=300, seed=1))
    write_synth(c, SynthConfig(shows=300, seed=2))
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_parses_and_has_the_shape_of_a_guide(tmp_path):
    path = tmp_path / "s.xml.gz"
    counts = write_synth(path, SynthConfig(shows=2000, seed=0))
    progs = list(read_programmes([path]))
    assert len(progs) == counts["programmes"] > 2000            # several airings per show
    catalog = build_catalog(progs, CatalogConfig())
    assert abs(len(catalog) - 2000) <= 20                       # titles are distinct shows
    words = [len(s.key.split()) for s in catalog.shows]
    assert min(words) == 1 and 6 <= max(words) <= 17        # series: prefix + episode
    assert any(":" in p.title for p in progs)                   # Series: Episode titles
    assert any(p.title != p.title.encode("ascii", "ignore").decode() for p in progs)
    assert 0.03 < sum(1 for s in catalog.shows if not s.categories) / len(catalog) < 0.15
    # skewed (power-law) category sizes: the biggest dwarfs the median
    sizes = sorted((k for c, k in catalog.category_counts.items()
                    if c not in catalog.broad_categories(0.3)), reverse=True)
    assert len(sizes) > 30 and sizes[0] > 10 * sizes[len(sizes) // 2]
    assert catalog.broad_categories(0.3)                        # a `Series`-like broad one


def test_cli_plain_xml(tmp_path, capsys):
    out = tmp_path / "s.xml"
    assert main([str(out), "--shows", "50", "--seed", "3"]) == 0
    assert "shows=50" in capsys.readouterr().out
    assert out.read_bytes().startswith(b"<?xml")
    assert not out.read_bytes().startswith(gzip.compress(b"")[:2])
