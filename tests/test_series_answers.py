"""One answer per series (issue 23): the catalog's series link, one row per series with its
count, expanding a series, paging by series, same_series, and whole programmes over HTTP."""
from __future__ import annotations

from collections import Counter

import pytest

from guide import TINY_CONFIG, programme_xml, write_xmltv
from epgembed.build.ingest.catalog_build import build_catalog
from epgembed.build.ingest.epg import read_programmes
from epgembed.query.errors import NotFound
from epgembed.query.requests import Options
from service_util import make_root, serving_app

pytestmark = pytest.mark.integration

# a 20-episode show and three 5-episode shows of one genre, a few single shows of it, and
# another genre on another channel
SERIES = {"Alpha Files": 20, "Bravo Squad": 5, "Charlie Case": 5, "Delta Desk": 5}
SINGLES = ["Echo Investigates", "Foxtrot Detective", "Golf Crime Hour", "Hotel Mystery"]
OTHER = ["Kitchen Heroes", "Baking Masters", "Cooking Weekly", "Family Kitchen", "Quick Cooking",
         "Baking at Home"]


def guide() -> list[str]:
    out = []
    for show, n in SERIES.items():
        for i in range(n):
            out += [programme_xml(f"{show}: Episode Title {i}", ["Crime"], channel="crime",
                                  start=f"202601{1 + i % 9:02d}{20 + i % 3}0000 +0000")]
    for title in SINGLES:
        out += [programme_xml(title, ["Crime"], channel="crime")] * 2
    for title in OTHER:
        out += [programme_xml(title, ["Cooking"], channel="food")] * 2
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from epgembed.query.load import load_model
    from epgembed.build.pipeline import train_model
    tmp = tmp_path_factory.mktemp("series")
    cfg = TINY_CONFIG.replace(catalog={"max_category_share": 0.9}, index={"feedback": 0})
    train_model([write_xmltv(tmp / "guide.xml", guide())], tmp / "model", cfg, threads=1)
    return load_model(tmp / "model")


def series_of(model, hit) -> str:
    return model.catalog.groups.names[int(model.catalog.groups.of[hit.id])]


def test_one_row_per_show_with_its_count_and_expanding_gives_its_episodes(model):
    r = model.related("Echo Investigates", Options(k=20))
    rows = Counter(h.series for h in r.related)
    assert all(n == 1 for n in rows.values())                    # each series once
    counts = {h.series: h.series_titles for h in r.related}
    assert {s.casefold(): n for s, n in SERIES.items()}.items() <= counts.items()
    assert all(h.series == series_of(model, h) for h in r.related)
    best = next(h for h in r.related if h.series == "alpha files")
    episodes = model.related("Echo Investigates", Options(k=30, expand="alpha files")).related
    assert len(episodes) == 20 and {h.series for h in episodes} == {"alpha files"}
    assert [h.score for h in episodes] == sorted((h.score for h in episodes), reverse=True)
    assert episodes[0].id == best.id and episodes[0].score == best.score      # the row is its best title
    with pytest.raises(NotFound):
        model.related("Echo Investigates", Options(k=5, expand="no such series"))


def test_paging_never_shows_a_series_twice(model):
    pages = [model.related("Echo Investigates", Options(k=3, offset=o)).related for o in range(0, 12, 3)]
    seen = [h.series for page in pages for h in page]
    assert len(seen) == len(set(seen)) >= 10


def test_same_series_brings_the_own_titles_back_first_one_per_row(model):
    query = "Alpha Files: Episode Title 3"
    plain = model.related(query, Options(k=10)).related
    assert all(h.series != "alpha files" for h in plain)
    more = model.related(query, Options(k=25, same_series=True)).related
    own = [h for h in more if h.series == "alpha files"]
    assert len(own) == 19 and more[:19] == own                    # its other episodes, first
    others = Counter(h.series for h in more[19:])
    assert others and all(n == 1 for n in others.values())        # the rest stays grouped


@pytest.mark.unit
@pytest.mark.parametrize("titles, together", [
    (["Tennis Tonight", "Tennis Tonight - Live"], True),        # a qualifier on a show that airs alone
    (["Live: Racing Xtra", "Racing Xtra"], True),
    (["Tatort", "Tatort: Anne und der Tod", "Tatort: Borowski und das Meer"], True),
    (["CSI: Miami", "CSI: New York", "CSI"], True),              # franchise siblings may group
    (["Dynasty: The Ball", "Dynasty: The Will", "Dynasty: The Fire"], True),
])
def test_the_catalog_links_a_series_from_the_data(tmp_path, titles, together):
    xml = [programme_xml(t, ["Drama"]) for t in titles for _ in range(2)]
    cat = build_catalog(read_programmes(write_xmltv(tmp_path / "d.xml", xml)))
    groups = {int(cat.groups.of[cat.lookup(t)]) for t in titles}
    assert (len(groups) == 1) is together


@pytest.mark.unit
def test_a_label_that_other_shows_carry_is_no_series(tmp_path):
    """au_freeview's 'Live: ...' shows: each recurring with episodes of its own, on several
    channels; and two unrelated shows that share a prefix once. Each stays its own show."""
    xml = []
    for i, show in enumerate(["NRL Friday Night Footy", "News Central", "Racing Xtra", "Race Day Sunday",
                              "Thoroughbred Weekly", "Sky Racing Late Night"]):
        for ep in range(3):
            xml.append(programme_xml(f"Live: {show}", ["Sport"], channel=f"ch{i % 3}",
                                     start=f"2026010{1 + ep}0{i}0000 +0000")
                       .replace("</title>", f"</title><desc>{show}, part {ep}.</desc>"))
    xml += [programme_xml("Love Island: Aftersun", ["Reality"]), programme_xml("Blue Planet", ["Nature"])]
    cat = build_catalog(read_programmes(write_xmltv(tmp_path / "d.xml", xml)))
    live = [cat.lookup(f"Live: {s}") for s in ("NRL Friday Night Footy", "News Central", "Racing Xtra")]
    assert len({int(cat.groups.of[i]) for i in live}) == 3


# ---------------------------------------------------------------------- over HTTP
@pytest.fixture(scope="module")
def client(model, tmp_path_factory):
    root = tmp_path_factory.mktemp("root") / "root"
    make_root(root, model.path)
    with serving_app(root) as app:
        yield app.test_client()


def test_http_rows_carry_their_series_and_expand_lists_one(client):
    body = client.get("/v1/related?title=Echo%20Investigates&k=10").get_json()
    assert all({"series", "series_titles"} <= set(h) for h in body["related"])
    alpha = next(h for h in body["related"] if h["series"] == "alpha files")
    assert alpha["series_titles"] == 20
    page = client.get("/v1/related?title=Echo%20Investigates&k=30&expand=alpha%20files").get_json()
    assert len(page["related"]) == 20 and page["related"][0]["id"] == alpha["id"]
    r = client.get("/v1/related?title=Echo%20Investigates&expand=nothing%20like%20it")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"


def test_http_programmes_are_answered_in_order(client):
    programmes = [{"title": "Golf Crime Hour"},                        # a catalog title: as GET answers it
                  {"title": "Zulu Murders", "channel": "crime", "start": "202601042000", "duration": 60,
                   "desc": "A detective case.", "credits": ["Ann Example"], "year": 2020}]
    r = client.post("/v1/related", json={"programmes": programmes, "k": 5})
    assert r.status_code == 200, r.get_data(as_text=True)
    results = r.get_json()["results"]
    assert [x["query"]["title"] for x in results] == ["Golf Crime Hour", "Zulu Murders"]
    assert results[0]["query"]["known"] and not results[1]["query"]["known"]
    single = client.get("/v1/related?title=Golf%20Crime%20Hour&k=5").get_json()["related"]
    assert results[0]["related"] == single


@pytest.mark.parametrize("body, names", [
    ({"programmes": [{"title": "X", "colour": "red"}]}, "colour"),
    ({"programmes": [{"title": "X", "duration": "long"}]}, "duration"),
    ({"programmes": [{"title": ""}]}, "title"),
    ({"programmes": [{"title": "X", "credits": "Ann"}]}, "credits"),
    ({"programmes": [{"desc": "no title"}]}, "title"),
    ({"programmes": [{"title": "X"}], "titles": ["Y"]}, "exactly one"),
    ({"programmes": [{"title": "X"}], "channel": "crime"}, "channel: only with titles, not with programmes"),
    ({"programmes": []}, "programmes"),
])
def test_http_a_bad_programme_is_a_400_naming_the_field(client, body, names):
    r = client.post("/v1/related", json=body)
    assert r.status_code == 400 and r.mimetype == "application/json"
    assert names in r.get_json()["error"]["message"]


def test_http_a_batch_of_64_programmes_with_descriptions_fits_the_body_limit(client):
    desc = "A long description of the episode, its story and its people. " * 30     # ~1,900 characters
    programmes = [{"title": f"Unseen Case {i}", "desc": desc, "channel": "crime", "start": "202601042000",
                   "duration": 45, "credits": [f"Person {j}" for j in range(10)]} for i in range(64)]
    r = client.post("/v1/related", json={"programmes": programmes, "k": 10})
    assert r.status_code == 200, r.get_data(as_text=True)[:200]
    assert len(r.get_json()["results"]) == 64
