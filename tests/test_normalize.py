import pytest

from epgembed.build.ingest.catalog_build import build_catalog
from epgembed.config import CatalogConfig
from epgembed.build.ingest.epg import Programme
from epgembed.text.normalize import (clean_text, is_bare_episode, normalize_category, series_head, split_series,
                                     squash, strip_episode, title_forms, title_key)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("raw, key", [
    ("Hey Arnold! S3 Ep. 42", "hey arnold!"),
    ("Rote Rosen (3608)", "rote rosen"),
    ("Doctor Who (S2 E5)", "doctor who"),
    ("Grey's Anatomy [S02E05]", "grey's anatomy"),
    ("Der Bergdoktor (Staffel 2, Folge 5)", "der bergdoktor"),
    ("Los Serrano (T2, E5)", "los serrano"),
    ("Plus belle la vie (Saison 2, épisode 5) (HD)", "plus belle la vie"),
    ("Tatort (Spezial, Folge 5)", "tatort (spezial, folge 5)"),   # never cut inside a bracket
    ("Mork vom Ork: Auf der Flucht (Teil 1)", "mork vom ork: auf der flucht (teil 1)"),  # two programmes
    ("Die Bergretter (1.3)", "die bergretter"),
    ("SOKO Leipzig Folge 12", "soko leipzig"),
    ("Star Trek S01E05", "star trek"),
    ("Friends Episode 4", "friends"),
    ("Sissi - Teil 2 (HD)", "sissi"),
    ("Sportschau - Live", "sportschau - live"),        # "Live" is no episode marker (issue 16)
    ("Tatort [OmU]", "tatort"),
    ("House of Cards, S2, E3", "house of cards"),
    ("Hey\u00a0Arnold\u200b!", "hey arnold !"),
    ("\ufeffTatort", "tatort"),
    ("Grey&amp;apos;s Anatomy", "grey's anatomy"),
    ("Grey&apos;s Anatomy", "grey's anatomy"),
    ("ＴＶ　Ｔｏｋｙｏ", "tv tokyo"),
    ("Soft\u00adhyphen", "soft hyphen"),
    ("Mission: Impossible 2", "mission: impossible 2"),  # a number alone is not an episode
    ("24", "24"),
    ("Folge 12", "folge 12"),                           # nothing but a marker: kept whole
    ("Rocky II", "rocky ii"),
    # titles that were cut (issue 16): only episode markers ever leave a key
    ("Saturday Night Live", "saturday night live"),
    ("Guardians of the Galaxy Vol. 2", "guardians of the galaxy vol. 2"),
    ("Open Season 3", "open season 3"),
    ("BILD LIVE", "bild live"),
    ("KiKA LIVE", "kika live"),
    ("PULS 24 Live", "puls 24 live"),
    ("DECIBELS - Le Live", "decibels - le live"),
    ("Tatort (HD)", "tatort"),                           # bracketed meta information still goes
    # time-of-day prefixes are no part of a key; a number that names the show stays
    ("11am: Noticiero Telemundo", "noticiero telemundo"),
    ("9:30am: Paid Program", "paid program"),
    ("20:15 - Tatort", "tatort"),
    ("24: Live Another Day", "24: live another day"),
])
def test_title_key(raw, key):
    assert title_key(raw) == key


def test_strip_episode_returns_both_parts():
    assert strip_episode("Hey Arnold! S3 Ep. 42") == ("Hey Arnold!", "S3 Ep. 42")
    assert strip_episode("Tatort") == ("Tatort", "")


def test_clean_text_collapses_and_is_idempotent():
    s = "  A\u2013B \t\n C\u200b  "
    assert clean_text(s) == "A-B C"
    assert clean_text(clean_text(s)) == clean_text(s)


def test_split_series_first_separator():
    assert split_series("big time rush: el gran videoclip") == ("big time rush", "el gran videoclip")
    assert split_series("sissi - die kaiserin") == ("sissi", "die kaiserin")
    assert split_series("tatort") is None


@pytest.mark.parametrize("raw, norm", [
    (" News ", "news"), ("SPORT", "sport"), ("No information available", None), ("n/a", None),
    ("", None), ("Unknown", None), ("Kids &amp; Family", "kids & family"),
])
def test_normalize_category(raw, norm):
    assert normalize_category(raw) == norm


def _p(title, cats=("drama",), sub=None, channel="c1"):
    return Programme(title, sub, None, tuple(cats), channel, "20260101000000 +0000", "x.xml", 1)


def _colon_programmes():
    progs = [_p(f"Big Time Rush: Episode title {i}", [f"c{i % 2}"]) for i in range(6)]  # many suffixes
    progs += [_p("CSI: Miami") for _ in range(6)]                              # one suffix, often
    progs += [_p("Agents: Berlin"), _p("Agents: Berlin"), _p("Agents: Paris")]  # 2 suffixes, rare
    progs += [_p("Sissi - Die Kaiserin", sub="Die Kaiserin"), _p("Sissi - Die Jugend", sub="Die Jugend")]
    return progs


def test_colon_ambiguity_is_decided_from_the_data():
    cat = build_catalog(_colon_programmes(), CatalogConfig(fold_series=True))
    keys = {s.key for s in cat.shows}
    assert "big time rush" in keys and not any(k.startswith("big time rush:") for k in keys)
    assert "csi: miami" in keys and "csi" not in keys
    assert {"agents: berlin", "agents: paris"} <= keys
    assert "sissi" in keys  # the suffix is the sub-title: evidence of a series
    brt = cat.shows[cat.by_key["big time rush"]]
    assert brt.title == "Big Time Rush" and brt.airings == 6 and len(brt.aliases) == 6
    # a new episode of a known series resolves to the series; an unseen title to nothing
    assert cat.lookup("Big Time Rush: A Brand New Episode") == brt.id
    assert cat.lookup("CSI: Vegas") is None


def test_unfolded_titles_are_linked_to_their_series_and_pool_its_labels():
    cfg = CatalogConfig()                      # default: titles as aired, linked to a series
    cat = build_catalog(_colon_programmes(), cfg)
    ep = cat.shows[cat.by_key["big time rush: episode title 0"]]
    assert ep.series == "big time rush" and ep.categories == {"c0": 1}
    assert cat.shows[cat.by_key["csi: miami"]].series is None
    assert cat.shows[cat.by_key["agents: berlin"]].series is None
    assert cat.shows[cat.by_key["sissi - die kaiserin"]].series == "sissi"
    names, per_show = cat.supervision(cfg)
    assert sorted(names[c] for c in per_show[ep.id]) == ["c0", "c1"]   # the series' categories
    names, per_show = cat.supervision(CatalogConfig(series_labels=False))
    assert [names[c] for c in per_show[ep.id]] == ["c0"]


def test_catalog_counts_categories_airings_channels():
    progs = [_p("News at Six", ["News", "Nachrichten"], channel="a"),
             _p("News at Six (HD)", ["news"], channel="b"),
             _p("Quiz Night", ["No information available"]),
             _p("Quiz Night", [])]
    cat = build_catalog(progs)
    news = cat.shows[cat.by_key["news at six"]]
    assert news.categories == {"news": 2, "nachrichten": 1}
    assert news.airings == 2 and news.channels == ["a", "b"]
    quiz = cat.shows[cat.by_key["quiz night"]]
    assert quiz.categories == {} and quiz.airings == 2  # unlabelled, still in the catalog
    assert news.title == "News at Six"


@pytest.mark.parametrize("key, bare", [
    ("episode 17", True), ("series 20 ep 19 with sir patrick stewart", True), ("show 15", True),
    ("folge 12", True), ("showtime 15", False), ("episodes", False), ("the show", False),
    ("24", False),
])
def test_bare_episode_titles(key, bare):
    assert is_bare_episode(key) is bare


def test_squash_and_series_head():
    assert squash("star trek: deep space nine") == squash("star trek - deep space nine")
    assert squash("utta danella: x") == squash("utta danella - x")
    assert squash("!!!") == ""
    assert series_head("der bergdoktor: schatten") == series_head("der bergdoktor") == "der bergdoktor"
    assert series_head("star trek - deep space nine") == "star trek"
    assert series_head(": x") == ": x"                  # nothing before the separator: the whole key


# The ingest key of a title (the item build_catalog makes of it) is the key its lookup
# computes, for titles whose passes of cleaning and stripping interact.
INGEST_EQUALS_LOOKUP = ["Show Ep. 4:.", "News &NBSP; Today", "Hey Arnold!  S3 Ep. 42",
                        "11am: Noticiero Telemundo", "Rote Rosen (3608)", "Tatort: Borowski (S7 Ep18)",
                        "A #2.. #3.. #2..", "ZÜRICH  live", "Star Trek – Deep Space Nine",
                        "Mañana &amp; más", "Das Erste Nachrichten - Folge 12"]


@pytest.mark.parametrize("title", INGEST_EQUALS_LOOKUP)
def test_ingest_key_is_lookup_key(title):
    catalog = build_catalog([_p(title, ["news"])])
    forms = title_forms(title)
    assert catalog.keys == [forms.key]
    assert catalog.lookup(title) == 0
    assert forms.key == title_key(title) == title_key(forms.key)


@pytest.mark.parametrize("title, display, exact, key, episode, series", [
    ("Show Ep. 4:.", "Show Ep. 4:.", "show ep. 4", "show", "Ep. 4", None),
    ("News &NBSP; Today", "News &NBSP; Today", "news today", "news today", "", None),
    ("Tatort: Borowski – Folge 3", "Tatort: Borowski – Folge 3", "tatort: borowski - folge 3",
     "tatort: borowski", "Folge 3", "tatort"),
    ("Zürich  S03E05", "Zürich S03E05", "zürich s03e05", "zürich", "S03E05", None),
])
def test_title_forms_by_hand(title, display, exact, key, episode, series):
    forms = title_forms(title)
    assert (forms.display, forms.exact, forms.key, forms.episode, forms.series) == \
        (display, exact, key, episode, series)
    assert forms.search == forms.exact.replace("ü", "u")
