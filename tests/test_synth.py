"""The synthetic guide generators: seeded, valid XMLTV, the structure of real guides (feeds,
themed channels, series, categories), and the flat guide of before unchanged (small sizes)."""
from __future__ import annotations

import gzip
import hashlib
from collections import Counter

import pytest

from epgembed.build.ingest.catalog_build import build_catalog
from epgembed.build.ingest.epg import read_programmes
from epgembed.config import CatalogConfig
from epgembed.gen.synth import GuideSynth, SynthConfig, main, write_synth
from epgembed.gen.synthplan import TOPIC_WORDS, GuidePlan, GuideShape, sub_genres

pytestmark = pytest.mark.unit

# sha256 of the plain XML the flat generator wrote for 300 shows, seed 1, before issue 27
# (epgembed/gen/synth.py at d1440b6): the worst case of the unseen-title benchmark stays that catalog
FLAT_300_SEED_1 = "55ed7d66e69774ffe50f955abde51b9ef1d96ecf793fbcea896f57cf13d40e88"


@pytest.mark.parametrize("structure", ["guide", "flat"])
def test_seeded_determinism(tmp_path, structure):
    a, b, c = tmp_path / "a.xml.gz", tmp_path / "b.xml.gz", tmp_path / "c.xml.gz"
    write_synth(a, SynthConfig(shows=300, seed=1, structure=structure))
    write_synth(b, SynthConfig(shows=300, seed=1, structure=structure))
    write_synth(c, SynthConfig(shows=300, seed=2, structure=structure))
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_flat_writes_the_bytes_of_before(tmp_path):
    out = tmp_path / "flat.xml"
    write_synth(out, SynthConfig(shows=300, seed=1, structure="flat"))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == FLAT_300_SEED_1


def test_a_small_guide_has_feeds_themed_channels_series_and_categories(tmp_path):
    path = tmp_path / "g.xml.gz"
    counts = write_synth(path, SynthConfig(shows=3000, seed=0))
    plan = GuideSynth(3000, seed=0)
    assert {f.streaming for f in plan.feeds} == {False, True}       # a broadcast feed and a streaming one
    assert sum(c.titles for c in plan.channels) == 3000
    assert any(len(c.ids) > 1 for c in plan.channels)               # regional copies of a channel
    progs = list(read_programmes([path]))
    assert len(progs) == counts["programmes"] > 3000                 # titles aired several times
    text = gzip.decompress(path.read_bytes()).decode()
    assert text.index('<channel id="f0001.') > text.index("<programme")   # each feed's channels with it
    assert {p.channel for p in progs} <= {i for c in plan.channels for i in c.ids}
    catalog = build_catalog(progs, CatalogConfig())
    assert abs(len(catalog) - 3000) <= 30                            # titles are distinct shows
    shows = catalog.shows
    assert 0.15 < sum(1 for s in shows if s.series) / len(shows) < 0.7            # `Series: Episode`
    assert 0.02 < sum(1 for s in shows if not s.categories) / len(shows) < 0.2
    assert "series" in catalog.broad_categories(0.3)                # streaming titles carry `Series`
    assert any(s.title != s.title.encode("ascii", "ignore").decode() for s in shows)   # not English only
    # a channel's titles share its genre: in most large channels one category covers half of them
    by_channel: dict[str, list] = {}
    for s in shows:
        by_channel.setdefault(s.channels[0], []).append(s)
    large = [group for group in by_channel.values() if len(group) >= 10]
    bare = [group for group in large if not any(s.categories for s in group)]   # guides without any
    themed = [max(Counter(c for s in group for c in s.categories if c != "series").values(), default=0)
              >= len(group) / 2 for group in large if group not in bare]
    assert bare and len(themed) >= 10 and sum(themed) / len(themed) > 0.8


def test_a_large_plan_names_more_sub_genres_than_a_topic_has_words():
    """Past ~200k titles a genre has more sub-genres (sqrt(N) / 15) than topic words (30);
    each is named (a small vocabulary keeps the plan of 250k titles quick)."""
    plan = GuidePlan(250_000, seed=0, shape=GuideShape(vocab_scale=0.01))
    assert sub_genres(250_000) > TOPIC_WORDS
    assert sum(c.titles for c in plan.channels) == 250_000
    subs = {c.sub for c in plan.channels if plan.feeds[c.feed].genres[c.genre] == plan.feeds[c.feed].genres[0]}
    assert len(subs) > TOPIC_WORDS


def test_config_refuses_an_unknown_structure():
    with pytest.raises(ValueError, match="structure"):
        SynthConfig(structure="tree")


def test_cli_plain_xml(tmp_path, capsys):
    out = tmp_path / "s.xml"
    assert main([str(out), "--shows", "50", "--seed", "3"]) == 0
    assert "shows=50" in capsys.readouterr().out
    assert out.read_bytes().startswith(b"<?xml")
    assert not out.read_bytes().startswith(gzip.compress(b"")[:2])
