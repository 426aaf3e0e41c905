"""The embedded sample guide: deterministic, valid XMLTV, as messy as real feeds, and in sync with data/."""
from __future__ import annotations

import collections
import gzip
import re
from pathlib import Path

import pytest
from lxml import etree

from epgembed.gen.sample import DEFAULT_CHANNELS, main, write_sample

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "data" / "sample.xml.gz"
XMLTV_TIME = re.compile(r"^\d{14} \+0000$")


def _parse(raw: bytes):
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(raw, parser)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("sample") / "sample.xml.gz"
    counts = write_sample(path)
    raw = gzip.decompress(path.read_bytes())
    return path, counts, raw, _parse(raw)


def test_same_seed_same_bytes_other_seed_differs(tmp_path, sample):
    path, _, _, _ = sample
    again = tmp_path / "again.xml.gz"  # a different file name must not change the bytes
    write_sample(again)
    assert again.read_bytes() == path.read_bytes()
    other = tmp_path / "other.xml.gz"
    write_sample(other, seed=1)
    assert other.read_bytes() != path.read_bytes()
    assert path.read_bytes()[4:8] == b"\0\0\0\0"  # gzip header mtime


def test_plain_xml_when_not_gz(tmp_path, sample):
    plain = tmp_path / "sample.xml"
    counts = write_sample(plain)
    assert plain.read_bytes() == sample[2]
    assert counts["bytes"] == len(sample[2])


def test_structure_and_counts(sample):
    path, counts, _, root = sample
    assert root.tag == "tv"
    channels = [c.get("id") for c in root.findall("channel")]
    assert len(channels) == len(set(channels)) == counts["channels"] == DEFAULT_CHANNELS
    assert all(c.findtext("display-name") for c in root.findall("channel"))
    programmes = root.findall("programme")
    assert len(programmes) == counts["programmes"]
    assert 2000 <= counts["programmes"] <= 8000
    assert 250 <= counts["shows"] <= 400 and counts["genres"] >= 14
    assert counts["distinct_titles"] == len({p.findtext("title") for p in programmes})
    for p in programmes:
        assert p.get("channel") in channels
        assert XMLTV_TIME.match(p.get("start")) and XMLTV_TIME.match(p.get("stop"))
        assert p.get("start") < p.get("stop")
        assert len(p.findall("title")) == 1 and p.findtext("title").strip()
    assert counts["bytes"] == path.stat().st_size < 300_000


def test_messy_features(sample):
    _, counts, raw, root = sample
    assert raw.startswith(b"\xef\xbb\xbf<?xml")
    assert b"&amp;apos;" in raw
    programmes = root.findall("programme")
    titles = [p.findtext("title") for p in programmes]
    text = "\n".join(titles)
    for needle in ("\u00a0", "\u200b", "\u2013", "#", "\u2605", "\uff34", "(HD)", "[OmU]", " - Live", "&apos;"):
        assert needle in text, needle
    for marker in (r" S\d+ Ep\. \d+", r" S\d\dE\d\d", r" \(\d{3,4}\)", r" \(\d+\.\d+\)", r" Folge \d+",
                   r" Teil \d", r" Épisode \d+", r" Capítulo \d+"):
        assert re.search(marker, text), marker
    cats = [[c.text for c in p.findall("category")] for p in programmes]
    assert 0.02 < sum(not c for c in cats) / len(cats) < 0.1
    assert max(len(c) for c in cats) == 4
    flat = collections.Counter(c for cs in cats for c in cs)
    assert flat["No information available"] > 0
    assert flat["Series"] > len(programmes) / 2
    for variants in (("News", "news"), ("Sport", "Sports"), ("Comedy", "Komödie"), ("Kids", "Kinder")):
        assert all(flat[v] for v in variants), variants
    assert sum(p.find("sub-title") is not None for p in programmes) > len(programmes) / 4
    assert sum(p.find("desc") is not None for p in programmes) > len(programmes) / 2


def test_repeats_and_colon_titles(sample):
    root = sample[3]
    same_slot = collections.Counter((p.get("start"), p.findtext("title")) for p in root.findall("programme"))
    assert sum(n >= 3 for n in same_slot.values()) > 100  # regional channels repeat the network
    suffixes = collections.defaultdict(set)
    for title in {p.findtext("title") for p in root.findall("programme")}:
        if ": " in title:
            prefix, _, rest = title.partition(": ")
            suffixes[prefix.strip()].add(rest)
    assert len(suffixes["Kommissarin Lund"]) >= 3 and len(suffixes["Kitchen Heroes"]) >= 3
    assert suffixes["Strike Team"] and all(s.startswith("Lisbon") for s in suffixes["Strike Team"])  # not a series


def test_committed_sample_matches_generator(sample):
    """data/sample.xml.gz must be exactly what `python -m epgembed.gen.sample data/sample.xml.gz` writes."""
    assert COMMITTED.exists(), "run: python -m epgembed.gen.sample data/sample.xml.gz"
    # Compare the XML, not the gzip stream: zlib builds may compress the same bytes differently.
    assert gzip.decompress(COMMITTED.read_bytes()) == sample[2]


def test_fewer_channels_days_and_cli(tmp_path, capsys):
    counts = write_sample(tmp_path / "small.xml.gz", seed=3, days=1, n_channels=4)
    root = _parse(gzip.decompress((tmp_path / "small.xml.gz").read_bytes()))
    assert counts["channels"] == len(root.findall("channel")) == 4
    assert 0 < counts["programmes"] == len(root.findall("programme")) < 600
    with pytest.raises(ValueError):
        write_sample(tmp_path / "bad.xml.gz", n_channels=0)
    assert main([str(tmp_path / "cli.xml"), "--days", "1", "--seed", "2"]) == 0
    assert "programmes=" in capsys.readouterr().out
    assert (tmp_path / "cli.xml").read_bytes().startswith(b"\xef\xbb\xbf")
