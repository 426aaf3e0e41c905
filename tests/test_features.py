"""The guide in the title vector (issue 16): feature extraction from XMLTV, the catalog's
titles as aired, and series-aware answers on a small trained model."""
from __future__ import annotations

from collections import Counter

import pytest
from guide import TINY_CONFIG, programme_xml, write_xmltv

from epgembed.build.ingest.catalog_build import BARE_EPISODE, build_catalog
from epgembed.config import FeatureConfig
from epgembed.build.ingest.epg import read_programmes
from epgembed.query.requests import Context, Options
from epgembed.text.features import context_features, item_features, programme_features
from epgembed.text.normalize import series_head

pytestmark = pytest.mark.integration

FULL = """<programme start="20220723201500 +0200" stop="20220723214500 +0200" channel="Das Erste">
  <title lang="de">Tatort</title><sub-title>Im Schmerz geboren</sub-title>
  <desc>Ein Krimi.</desc>
  <credits><director>Florian Schwarz</director><actor role="Murot">Ulrich Tukur</actor>
    <actor>Ulrich Matthes</actor></credits>
  <date>2014</date><category>Krimi</category><country>DE</country>
  <episode-num system="onscreen">1234</episode-num>
  <rating system="FSK"><value>12</value></rating>
</programme>"""
BARE = '<programme start="2022" channel=""><title>Tatort</title></programme>'


def one(tmp_path, xml: str):
    (p,) = read_programmes(write_xmltv(tmp_path / "d.xml", [xml]))
    return p


def test_every_optional_element_becomes_a_feature(tmp_path):
    p = one(tmp_path, FULL)
    assert (p.stop, p.episode, p.year, p.country, p.rating) == (
        "20220723214500 +0200", True, "2014", "DE", "12")
    assert p.credits == ("Florian Schwarz", "Ulrich Tukur", "Ulrich Matthes")
    assert programme_features(p) == [
        "channel=Das Erste", "slot=6", "day=weekend", "duration=100", "episodic=yes",
        "credit=florian schwarz", "credit=ulrich tukur", "credit=ulrich matthes",
        "year=2010s", "country=de", "rating=12"]


def test_a_programme_with_no_optional_element_breaks_nothing(tmp_path):
    p = one(tmp_path, BARE)
    assert (p.stop, p.episode, p.credits, p.year, p.country, p.rating) == ("", False, (), "", "", "")
    assert programme_features(p) == ["episodic=no"]
    assert context_features() == [] and context_features("ch1", "2022", None) == ["channel=ch1"]
    assert context_features(None, "202207252015", 45) == ["slot=6", "day=weekday", "duration=50"]


def test_item_features_are_shares_of_airings():
    counts = Counter({"channel=a": 3, "channel=b": 1, "channel=c": 1, "channel=d": 1,
                      "channel=e": 1, "slot=6": 4, "credit=x": 0})
    got = item_features(counts, 4, FeatureConfig(per_kind=4, min_share=0.3))
    assert got == {"channel=a": 0.75, "slot=6": 1.0}          # b..e under the share; per kind cap
    assert item_features(counts, 0, FeatureConfig()) == {}


def test_titles_as_aired_spellings_time_prefixes_and_bare_episodes(tmp_path):
    xml = [programme_xml(t, ["Drama"]) for t in (
        "Star Trek: Deep Space Nine", "Star Trek: Deep Space Nine", "Star Trek - Deep Space Nine",
        "11am: Noticiero Telemundo", "Noticiero Telemundo", "Episode 17", "Show 15",
        "Saturday Night Live", "Guardians of the Galaxy Vol. 2", "Guardians of the Galaxy")]
    dropped: Counter = Counter()
    cat = build_catalog(read_programmes(write_xmltv(tmp_path / "d.xml", xml)), dropped=dropped)
    titles = sorted(s.title for s in cat.shows)
    assert titles == ["Guardians of the Galaxy", "Guardians of the Galaxy Vol. 2",
                      "Noticiero Telemundo", "Saturday Night Live", "Star Trek: Deep Space Nine"]
    trek = cat.shows[cat.lookup("Star Trek - Deep Space Nine")]
    assert trek.airings == 3 and trek.aliases == ["star trek - deep space nine"]  # one item
    assert cat.shows[cat.lookup("9:30am: Noticiero Telemundo")].airings == 2
    assert dropped[BARE_EPISODE] == 2 and cat.lookup("Episode 17") is None


def series_dump(tmp_path):
    """A 20-episode series (which also airs under its own name) among two other genres."""
    progs = [programme_xml(f"Der Bergdoktor: Fall {i}", ["Arztserie"], channel="zdf",
                           start=f"202601{1 + i % 9:02d}201500 +0000") for i in range(20)]
    progs += [programme_xml("Der Bergdoktor", ["Arztserie"], channel="zdf")] * 2
    doctors = ["Die Landarztpraxis", "Doktor Martin", "Bettys Diagnose", "Der Landarzt",
               "Praxis Dr. Weiss", "In aller Freundschaft", "Dr. Klein", "Die Klinik"]
    progs += [programme_xml(t, ["Arztserie"], channel="zdf") for t in doctors for _ in range(2)]
    progs += [programme_xml(t, ["Krimi"], channel="ard") for t in
              ["Tatort", "Polizeiruf 110", "SOKO Wien", "Der Alte", "Ein Fall für zwei",
               "Die Rosenheim-Cops", "Notruf Hafenkante", "Kommissar Rex"] for _ in range(2)]
    return write_xmltv(tmp_path / "series.xml", progs)


@pytest.fixture(scope="module")
def series_model(tmp_path_factory):
    from epgembed.query.load import load_model
    from epgembed.build.pipeline import train_model
    tmp = tmp_path_factory.mktemp("series")
    train_model([series_dump(tmp)], tmp / "model", TINY_CONFIG, threads=1)
    return load_model(tmp / "model")


def test_answers_are_distinct_shows_of_other_series(series_model):
    r = series_model.related("Der Bergdoktor: Fall 3", Options(k=10))
    heads = [series_head(series_model.catalog.keys[h.id]) for h in r.related]
    assert r.query.known and len(r.related) == 10 and "der bergdoktor" not in heads
    assert len({h.title.casefold() for h in r.related}) == 10                 # no repeats
    more = series_model.related("Der Bergdoktor: Fall 3", Options(k=10, same_series=True))
    assert sum(h.title.startswith("Der Bergdoktor") for h in more.related) >= 5   # "more episodes"


def test_an_unseen_episode_of_a_known_series_resolves_to_it(series_model):
    r = series_model.related("Der Bergdoktor: Ein ganz neuer Fall", Options(k=5))
    assert r.query.known and series_model.catalog.keys[r.query.id] == "der bergdoktor"
    assert all(not h.title.startswith("Der Bergdoktor") for h in r.related)


def test_a_query_without_letter_or_digit_is_refused(series_model):
    from epgembed.query.errors import QueryError
    for bad in ("!!!", "-- : --", "\u200b"):
        with pytest.raises(QueryError, match="no letter or digit"):
            series_model.related(bad, Options(k=5))


def test_schedule_context_moves_an_unseen_title(series_model):
    plain = series_model.embed("Zwei Mann im Schnee")
    ctx = series_model.embed("Zwei Mann im Schnee", Context(channel="zdf", start="202601052015"))
    assert float(plain @ ctx) < 0.999                                    # the features count

    def doctors(context):
        near = series_model.related("Zwei Mann im Schnee", Options(k=5), context=context).related
        return sum(series_model.catalog.shows[h.id].categories.get("arztserie", 0) > 0 for h in near)

    # the channel that airs the doctors' series pulls the unseen title toward them, the
    # crime channel does not
    assert doctors(Context(channel="zdf")) >= doctors(None) + 2
    assert doctors(Context(channel="ard")) <= doctors(None)
