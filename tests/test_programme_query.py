"""Queries with the whole programme (issue 23): the request shape, the vector of a programme
the catalog lacks (the same tokens a catalog item gets in training), and
`related --programmes-file`."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from xml.sax.saxutils import escape

import msgspec
import numpy as np
import pytest
from guide import TINY_CONFIG, write_xmltv

from epgembed.query.programme import programme_tokens, programme_vector
from epgembed.query.errors import QueryError
from epgembed.query.requests import Options, ProgrammeQuery
from epgembed.query.shapes import convert

pytestmark = pytest.mark.integration

# (title, channel, start, minutes, sub-title, description, credits, date, country, rating, episode-num)
FULL = ("Kitchen Secrets Live", "food1", "202601101930", 45, "Bread Night",
        "A baking contest with fresh bread and sourdough tips.",
        ("Anna Cook", "Ben Baker", "Carla Chef", "Dan Dough", "Eve Oven"), "2019", "GB", "12", "3.4.")
COOKING = ["Kitchen Heroes", "Baking Masters", "Cooking Weekly", "Great Kitchen Battle", "Family Kitchen"]
SPORT = ["Football Tonight", "Tennis Weekly", "Golf Highlights", "Rugby Highlights", "Boxing Tonight"]


def programme(title: str, channel: str, start: str, minutes: int, sub: str = "", desc: str = "",
              credits: tuple[str, ...] = (), date: str = "", country: str = "", rating: str = "",
              episode: str = "", category: str = "") -> str:
    stop = (datetime.strptime(start, "%Y%m%d%H%M") + timedelta(minutes=minutes)).strftime("%Y%m%d%H%M")
    parts = [f'<programme start="{start}00 +0100" stop="{stop}00 +0100" channel="{channel}">',
             f"<title>{escape(title)}</title>"]
    parts += [f"<sub-title>{escape(sub)}</sub-title>"] if sub else []
    parts += [f"<desc>{escape(desc)}</desc>"] if desc else []
    parts += (["<credits>" + "".join(f"<actor>{escape(c)}</actor>" for c in credits) + "</credits>"]
              if credits else [])
    parts += [f"<date>{date}</date>"] if date else []
    parts += [f"<category>{category}</category>"] if category else []
    parts += [f"<country>{country}</country>"] if country else []
    parts += [f'<episode-num system="xmltv_ns">{episode}</episode-num>'] if episode else []
    parts += [f'<rating system="BBFC"><value>{rating}</value></rating>'] if rating else []
    return "".join(parts) + "</programme>\n"


def programmes() -> list[str]:
    out = [programme(*FULL, category="Cooking")]
    for i, title in enumerate(COOKING):       # each word and feature of FULL on another item too
        out += [programme(title, "food1", f"2026010{1 + i}1930", 45, f"Part {i}",
                          "Fresh bread for beginners." if i == 0 else "Sourdough tips and cakes."
                          if i == 1 else f"Kitchen story number {i}.",
                          ("Anna Cook", "Ben Baker", "Carla Chef", "Dan Dough") if i < 2 else (),
                          "2015", "GB", "12", "1.2.", "Cooking")] * 2
    for i, title in enumerate(SPORT):
        out += [programme(title, "sport1", f"2026010{1 + i}2100", 120, desc=f"Live match {i}.",
                          country="US", category="Sport")] * 2
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from epgembed.query.load import load_model
    from epgembed.build.pipeline import train_model
    tmp = tmp_path_factory.mktemp("programme")
    cfg = TINY_CONFIG.replace(catalog={"max_category_share": 0.6})   # two genres of 6 and 5 titles
    train_model([write_xmltv(tmp / "guide.xml", programmes())], tmp / "model", cfg, threads=1)
    return load_model(tmp / "model")


def full_query(title: str = FULL[0]) -> ProgrammeQuery:
    _, channel, start, minutes, sub, desc, credits, date, country, rating, episode = FULL
    return ProgrammeQuery(title=title, sub_title=sub, desc=desc, channel=channel, start=start,
                          duration=minutes, credits=list(credits), year=int(date), country=country,
                          rating=rating, episode_num=episode)


def test_a_programme_gets_the_tokens_and_vector_of_a_catalog_item_that_aired_once(model):
    show_id = model.resolve(FULL[0])
    assert show_id is not None and model.catalog.shows[show_id].airings == 1
    tokens = programme_tokens(model.tokenizer, full_query(), model.config)
    assert tokens == model.item_tokens(show_id)
    surfaces = {s for _, s, _ in tokens}
    # the bag holds every part: title, description words, each kind of guide feature
    assert {"[bread]", "[sourdough]", "<channel=food1>", "<slot=6>", "<duration=50>",
            "<episodic=yes>", "<credit=anna cook>", "<year=2010s>", "<country=gb>",
            "<rating=12>"} <= surfaces
    assert "<credit=eve oven>" not in surfaces          # 4 credits a kind, as in training
    vector = programme_vector(model, full_query())
    assert np.allclose(vector, model.vectors[show_id], atol=1e-6)


def test_a_programme_says_what_its_guide_says(model):
    title_only = ProgrammeQuery(title=FULL[0])
    tokens = programme_tokens(model.tokenizer, title_only, model.config)
    # no sub-title, no episode number: the airing is no episode, as the catalog would count it
    assert [s for _, s, _ in tokens] == [s for _, s in model.tokenizer.tokens(FULL[0])] + ["<episodic=no>"]
    slot = ProgrammeQuery(title=FULL[0], channel="food1", start="202601101930", duration=45)
    assert {"<channel=food1>", "<slot=6>", "<day=weekend>", "<duration=50>"} <= {
        s for _, s, _ in programme_tokens(model.tokenizer, slot, model.config)}
    no_start = ProgrammeQuery(title=FULL[0], duration=45)    # a duration alone is a feature too
    assert "<duration=50>" in {s for _, s, _ in programme_tokens(model.tokenizer, no_start, model.config)}
    assert not np.allclose(programme_vector(model, title_only), programme_vector(model, full_query()),
                           atol=1e-3)


def test_related_programme_answers_known_titles_as_related_and_unseen_ones_by_their_vector(model):
    known = model.related_programme(full_query(), Options(k=5))
    assert known == model.related(FULL[0], Options(k=5))
    unseen = model.related_programme(full_query("Midnight Oven Stories"), Options(k=5))
    assert not unseen.query.known and unseen.query.title == "Midnight Oven Stories"
    assert len(unseen.related) == 5
    vector = programme_vector(model, full_query("Midnight Oven Stories"))
    best = max(range(len(model.catalog)), key=lambda i: float(model.vectors[i] @ vector))
    assert unseen.related[0].id == best
    # its whole programme places it among the cooking shows
    assert sum("cooking" in h.categories for h in unseen.related) >= 4
    with pytest.raises(TypeError):
        model.related_programme(full_query("Midnight Oven Stories"), Options(k=5, colour="red"))
    with pytest.raises(QueryError):
        model.related_programme(ProgrammeQuery(title="___"), Options(k=5))


@pytest.mark.parametrize(("data", "field"), [
    ({"title": ""}, "$.title"),
    ({"title": "  "}, "$.title"),
    ({}, "`title`"),
    ({"title": 7}, "$.title"),
    ({"title": "X", "colour": "red"}, "`colour`"),
    ({"title": "X", "start": "2026-01-10"}, "$.start"),
    ({"title": "X", "start": "202613101930"}, "$.start"),
    ({"title": "X", "duration": "45"}, "$.duration"),
    ({"title": "X", "duration": 0}, "$.duration"),
    ({"title": "X", "credits": "Anna Cook"}, "$.credits"),
    ({"title": "X", "credits": ["Anna", 3]}, "$.credits[1]"),
    ({"title": "X", "year": "2019"}, "$.year"),
    ({"title": "X", "year": True}, "$.year"),
])
def test_a_bad_programme_is_refused_naming_the_field(data, field):
    with pytest.raises(msgspec.ValidationError, match=field.replace("$", r"\$").replace("[", r"\[")
                       .replace("]", r"\]")):
        convert(data, ProgrammeQuery)


def test_a_full_programme_is_accepted():
    got = convert({"title": "X", "sub_title": "Y", "desc": "Z", "channel": "c", "start": "202601101930",
                   "duration": 45, "credits": ["A"], "year": 2019, "country": "GB", "rating": "12",
                   "episode_num": "1.2."}, ProgrammeQuery)
    assert got.duration == 45.0 and got.credits == ["A"] and got.year == 2019


def test_cli_answers_a_programmes_file_line_by_line(model, tmp_path, capsys):
    from epgembed.cli.main import main
    from epgembed.query.shapes import Error, Related
    unseen = msgspec.structs.asdict(full_query("Midnight Oven Stories"))
    lines = [json.dumps(unseen), "", '{"title": "X", "colour": "red"}', '{"title": "X",',
             '{"title": 3}', json.dumps({"title": FULL[0], "channel": "elsewhere"})]
    path = tmp_path / "programmes.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["related", str(model.path), "--programmes-file", str(path), "-k", "3", "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 5                                           # one line per programme line
    first, last = (msgspec.json.decode(out[i], type=Related) for i in (0, 4))
    assert first == model.related_programme(full_query("Midnight Oven Stories"), Options(k=3))
    assert last.query.known and last == model.related(FULL[0], Options(k=3))
    errors = [msgspec.json.decode(line, type=Error).error for line in out[1:4]]
    assert [e.status for e in errors] == [400, 400, 400]
    assert errors[0].message.startswith("line 3: ") and "`colour`" in errors[0].message
    assert errors[1].message.startswith("line 4: malformed JSON")
    assert errors[2].message.startswith("line 5: ") and "$.title" in errors[2].message
    assert main(["related", str(model.path), "--programmes-file", str(path), "-k", "3"]) == 0
    text = capsys.readouterr().out
    assert "Midnight Oven Stories  (not in catalog" in text and "line 3\n  error: line 3: " in text
    assert "Traceback" not in text


def test_cli_refuses_a_schedule_context_beside_a_programmes_file(model, tmp_path, capsys):
    from epgembed.cli.main import main
    path = tmp_path / "p.jsonl"
    path.write_text('{"title": "X"}\n', encoding="utf-8")
    assert main(["related", str(model.path), "--programmes-file", str(path), "--channel", "c"]) == 2
    assert "channel: only with titles, not with programmes" in capsys.readouterr().err
