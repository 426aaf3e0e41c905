"""Tests of the evaluation protocol (epgembed/eval/evaluate.py) and the baselines."""
from __future__ import annotations

import gzip
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from lxml import etree

from epgembed.eval.baselines import ChannelSystem, RandomSystem, TfidfSystem
from epgembed.eval.evaluate import (
    Split,
    eval_category,
    eval_key,
    evaluate_dump,
    evaluate_dumps,
    format_table,
    informative_categories,
    score_query,
    split_dump,
)
from epgembed.eval.score import (
    average_precision_at_k,
    one_per_series,
    own_series,
    precision_at_k,
    same_show,
    series_cuts,
    series_head,
    squashed,
)

pytestmark = pytest.mark.integration

TOPICS = {
    "sport": ["Football Tonight", "Football Weekly", "Football Extra", "Football Focus",
              "Football Live", "Football Review", "Football Legends", "Football Daily"],
    "food": ["Cooking with Ann", "Cooking Club", "Cooking at Home", "Cooking Classics",
             "Cooking Made Easy", "Cooking for Two", "Cooking Live", "Cooking Abroad"],
    "news": ["News at Six", "News Hour", "News Tonight", "News Review",
             "News Extra", "News Weekend", "News Morning", "News Update"],
    "crime": ["Crime Scene", "Crime Files", "Crime Watchers", "Crime Stories",
              "Crime Patrol", "Crime Lab", "Crime Hunters", "Crime Secrets"],
    "nature": ["Nature Watch", "Nature Trails", "Nature Uncovered", "Nature Diaries",
               "Nature Rescue", "Nature Quest", "Nature Wonders", "Nature Frontiers"],
}


def write_dump(path: Path, programmes: list[tuple]) -> Path:
    """Write a small XMLTV dump (gzip if the name ends with .gz) from (title, categories)
    or (title, categories, channel) tuples; the channel defaults to "c1"."""
    channels = list(dict.fromkeys(p[2] if len(p) > 2 else "c1" for p in programmes)) or ["c1"]
    parts = ['<?xml version="1.0" encoding="UTF-8"?>', '<tv generator-info-name="test">']
    parts += [f'  <channel id="{c}"><display-name>{c}</display-name></channel>' for c in channels]
    for i, (title, cats, *channel) in enumerate(programmes):
        parts.append(f'  <programme start="20240101{i % 24:02d}0000 +0000" '
                     f'channel="{channel[0] if channel else "c1"}">')
        parts.append(f"    <title>{escape(title)}</title>")
        parts.extend(f"    <category>{escape(c)}</category>" for c in cats)
        parts.append("  </programme>")
    parts.append("</tv>")
    data = "\n".join(parts).encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def topic_dump(path: Path) -> Path:
    """40 titles in 5 topics (each category on 20% of the keys), each shown twice."""
    progs = [(t, [topic]) for topic, titles in TOPICS.items() for t in titles]
    return write_dump(path, progs + progs)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("Hey\u00a0Arnold!  S3 Ep. 42", "hey arnold!"),
        ("Becker S1E05", "becker"),
        ("Becker S01 E05", "becker"),
        ("All Saints S5 Episode 26", "all saints"),
        ("Pistas: Episode 4", "pistas"),
        ("Der Bergdoktor - Folge 12", "der bergdoktor"),
        ("Rote Rosen (3608)", "rote rosen"),
        ("Die Pfalz (1.3)", "die pfalz"),
        ("Sturm der Liebe (2978) S1E05", "sturm der liebe"),
        ("Top Gear: Staffel 6, Folge 7", "top gear: staffel 6"),
        ("Folge 12", "folge 12"),
        ("Episode 4 of Us", "episode 4 of us"),
        ("Apollo 13", "apollo 13"),
        ("\ufeffZero\u200bWidth\u00adSoft", "zero width soft"),
        ("ＦＵＬＬ　Width", "full width"),
        ("  Star Trek:   Discovery ", "star trek: discovery"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),
        ("", ""),
        (None, ""),
    ],
)
def test_eval_key(raw: str | None, key: str) -> None:
    assert eval_key(raw) == key


def test_eval_category_placeholders() -> None:
    assert eval_category(" News ") == "news"
    for placeholder in ("No information available", "n/a", "Unknown", "", "Other"):
        assert eval_category(placeholder) is None


def test_same_show() -> None:
    assert same_show("star trek", "star trek: discovery")
    assert same_show("star trek: discovery", "star trek: discovery")
    assert same_show("sissi", "sissi - die junge kaiserin")
    assert not same_show("star trek: voyager", "star trek: discovery")
    assert not same_show("star trek: discovery", "star trek")  # only the query's key is cut
    assert series_cuts("a - b: c") == {"a", "a - b"}
    assert series_cuts("plain") == set()


def test_precision_at_k() -> None:
    rel = [True, False, True, False, False, False, False, False, False, False]
    assert precision_at_k(rel) == pytest.approx(0.2)
    assert precision_at_k([True, True, True]) == pytest.approx(0.3)  # missing answers miss
    assert precision_at_k([]) == 0.0


def test_average_precision_at_k() -> None:
    rel = [True, False, True, False, False, False, False, False, False, False]
    # (1/1 + 2/3) / min(10, 5)
    assert average_precision_at_k(rel, n_relevant=5) == pytest.approx((1 + 2 / 3) / 5)
    # (1/2 + 2/4) / min(10, 2): both relevant keys found, not at the top
    assert average_precision_at_k([False, True, False, True], n_relevant=2) == pytest.approx(0.5)
    # perfect ranking with 30 relevant keys: divisor capped at 10
    assert average_precision_at_k([True] * 10, n_relevant=30) == pytest.approx(1.0)
    assert average_precision_at_k([False] * 10, n_relevant=0) == 0.0
    # more hits than relevant keys (duplicate spellings): never above 1
    assert average_precision_at_k([True, True, True], n_relevant=1) == pytest.approx(1.0)


def test_informative_categories_rule() -> None:
    keys = {f"k{i}": {"series", f"genre{i % 5}"} for i in range(10)}
    keys["k0"] |= {"rare"}
    keys["k1"] = {"genre0", "genre3"}  # "series" on 9/10 keys
    out = informative_categories(keys)
    assert out["k0"] == frozenset({"genre0", "rare"})  # genre0 on 3/10 = 30%: kept
    assert all("series" not in cats for cats in out.values())


def test_split_drops_placeholder_and_common(tmp_path: Path) -> None:
    progs = [(t, [topic, "Series", "No information available"])
             for topic, titles in TOPICS.items() for t in titles]
    progs.append(("Mystery Show", ["No information available"]))
    split = split_dump(write_dump(tmp_path / "d.xml", progs))
    assert split.key_categories["football weekly"] == frozenset({"sport"})
    assert split.key_categories["mystery show"] == frozenset()
    assert split.n_items == 40
    assert "mystery show" not in split.test_keys


def test_split_deterministic_and_sized(tmp_path: Path) -> None:
    dump = topic_dump(tmp_path / "d.xml.gz")
    a, b = split_dump(dump, seed=3), split_dump(dump, seed=3)
    assert a.test_keys == b.test_keys
    assert len(a.test_keys) == 8  # 20% of 40 items
    assert split_dump(dump, seed=4).test_keys != a.test_keys
    for key in a.test_keys:
        assert eval_key(a.queries[key]) == key


def test_query_is_most_frequent_spelling(tmp_path: Path) -> None:
    progs = [(t, [topic]) for topic, titles in TOPICS.items() for t in titles]
    progs += [("FOOTBALL WEEKLY", ["sport"])] * 2 + [("Football Weekly S1E02", ["sport"])]
    split = split_dump(write_dump(tmp_path / "d.xml", progs), test_fraction=1.0)
    assert split.queries["football weekly"] == "FOOTBALL WEEKLY"
    assert split.queries["news hour"] == "News Hour"


@pytest.mark.parametrize("out_name", ["train.xml", "train.xml.gz"])
def test_training_dump_strips_test_categories(tmp_path: Path, out_name: str) -> None:
    dump = topic_dump(tmp_path / "d.xml")
    split = split_dump(dump, seed=0)
    out = split.write_training_dump(tmp_path / out_name)
    data = out.read_bytes()
    root = etree.fromstring(gzip.decompress(data) if out_name.endswith(".gz") else data)
    assert root.tag == "tv" and root.get("generator-info-name") == "test"
    assert len(root.findall("channel")) == 1
    programmes = root.findall("programme")
    assert len(programmes) == 80
    for prog in programmes:
        cats = [c.text for c in prog.findall("category")]
        if eval_key(prog.findtext("title")) in split.test_keys:
            assert cats == []
        else:
            assert len(cats) == 1
    # the stripped dump still shows the test titles, and a re-split keeps the keys
    assert {eval_key(p.findtext("title")) for p in programmes} == set(split.key_categories)


def test_prefix_union_relevance(tmp_path: Path) -> None:
    progs = [
        ("Murder Squad", ["crime"]),
        ("Cold Case: Pilot", ["crime"]),
        ("Cold Case: Finale", ["crime", "drama"]),
        ("Garden Time", ["lifestyle"]),
        ("Cook Off", ["food"]),
    ] + [(f"Filler {name}", [name]) for name in ("quiz", "music", "travel", "art", "kids")]
    split = split_dump(write_dump(tmp_path / "d.xml", progs))
    assert split.categories_of("cold case") == frozenset({"crime", "drama"})
    assert split.categories_of("nothing known") == frozenset()
    assert split.relevant_count("murder squad") == 2
    answers = ["Murder Squad", "Cold Case", "Nothing Known", "Garden Time", "Cold Case: Pilot"]
    score = score_query(split, "murder squad", answers)
    assert score.p_at_10 == pytest.approx(0.2)  # "Murder Squad" skipped; 2 of 4 scored relevant
    assert score.ap_at_10 == pytest.approx((1 / 1 + 2 / 4) / 2)


def test_score_skips_same_show(tmp_path: Path) -> None:
    split = Split(
        path=tmp_path / "none.xml",
        seed=0,
        key_categories={"star trek: discovery": frozenset({"sf"}), "star trek": frozenset({"sf"}),
                        "babylon 5": frozenset({"sf"}), "cooking": frozenset({"food"})},
        test_keys=("star trek: discovery",),
        queries={"star trek: discovery": "Star Trek: Discovery"},
        category_keys={"sf": frozenset({"star trek: discovery", "star trek", "babylon 5"}),
                       "food": frozenset({"cooking"})},
    )
    assert split.relevant_count("star trek: discovery") == 1
    score = score_query(split, "star trek: discovery", ["Star Trek", "Cooking", "Babylon 5"])
    assert score.p_at_10 == pytest.approx(0.1)
    assert score.ap_at_10 == pytest.approx(0.5)


def test_tfidf_beats_random_end_to_end(tmp_path: Path) -> None:
    dump = topic_dump(tmp_path / "topics.xml")
    rows = evaluate_dumps([dump], [RandomSystem(seed=0), TfidfSystem()], seed=0,
                          workdir=tmp_path / "work")
    by_system = {r["system"]: r for r in rows}
    rand, tfidf = by_system["random"], by_system["tfidf-char"]
    assert tfidf["n_test"] == rand["n_test"] == 8
    assert tfidf["p_at_10"] >= 0.6
    assert tfidf["p_at_10"] > rand["p_at_10"] + 0.3
    assert tfidf["map_at_10"] > rand["map_at_10"]
    for row in rows:
        assert row["train_seconds"] >= 0 and row["query_ms_per_title"] >= 0
    table = format_table(rows)
    assert "| topics |" in table and "random" in table and "tfidf-char" in table


def test_tfidf_answers_exclude_query(tmp_path: Path) -> None:
    system = TfidfSystem()
    system.fit(topic_dump(tmp_path / "d.xml"), tmp_path)
    [answers] = system.query(["Football Weekly"], 5)
    assert "Football Weekly" not in answers
    assert len(answers) == 5 and all(a.startswith("Football") for a in answers[:5])


def test_evaluate_dump_row(tmp_path: Path) -> None:
    row = evaluate_dump(topic_dump(tmp_path / "d.xml.gz"), RandomSystem(seed=1))
    assert row["dump"] == "d" and row["system"] == "random"
    assert row["n_items"] == 40 and row["n_test"] == 8
    assert 0.0 <= row["p_at_10"] <= 1.0 and 0.0 <= row["map_at_10"] <= 1.0


def hand_split(tmp_path: Path, query_key: str, relevant: list[str], other: list[str]) -> Split:
    """A split whose only test key is `query_key`; `relevant` keys share its category."""
    cats = {key: frozenset({"drama"}) for key in [query_key, *relevant]}
    cats.update({key: frozenset({"news"}) for key in other})
    index: dict[str, set[str]] = {}
    for key, key_cats in cats.items():
        for cat in key_cats:
            index.setdefault(cat, set()).add(key)
    return Split(path=tmp_path / "hand.xml", seed=0, key_categories=cats, test_keys=(query_key,),
                 queries={query_key: query_key},
                 category_keys={cat: frozenset(keys) for cat, keys in index.items()})


def test_series_head_and_own_series() -> None:
    assert series_head("der bergdoktor: schatten der vergangenheit") == "der bergdoktor"
    assert series_head("star trek - deep space nine: emissary") == "star trek"  # first separator
    assert series_head("x-men") == "x-men"  # a hyphen without spaces is no separator
    assert series_head("tatort") == "tatort"
    assert own_series("der bergdoktor - winter", "der bergdoktor: x")
    assert own_series("der bergdoktor: y", "der bergdoktor")  # the query's key followed by ":"
    assert own_series("star trek: voyager", "star trek: discovery")  # franchise siblings too
    assert not own_series("der alte", "der bergdoktor: x")
    assert not own_series("star trekking", "star trek: discovery")
    assert not own_series("der bergdoktor", "der bergdoktorin: x")
    assert squashed("star trek - deep space nine") == squashed("star trek: deep-space nine")
    assert squashed("tat-ort") == "tatort" and squashed("tatort 2") != "tatort"


# (display title, relevant to the query) in answer order; comments give the rank among the
# 10 scored answers (#) and among the answers P@10x scores (x)
EDITOR_ANSWERS = [
    ("Der Bergdoktor: X", True),  # the query itself: same show, skipped
    ("Der Bergdoktor", True),  # the query cut at ":": same show, skipped
    ("Der Bergdoktor: Schatten", True),  # #1 own series
    ("Der Bergdoktor - Winter", True),  # #2 own series
    ("Star Trek: Deep Space Nine", True),  # #3, x1
    ("Star Trek - Deep Space Nine", True),  # #4 repeat of #3
    ("Tagesschau", False),  # #5, x2
    ("Tatort", True),  # #6, x3
    ("Tat-Ort", True),  # #7 repeat of #6
    ("Heute", False),  # #8, x4
    ("Babylon 5", True),  # #9, x5
    ("Der Bergdoktor:Extra", True),  # #10 own series
    ("Polizeiruf 110", True),  # x6
    ("TATORT", True),  # repeat (same key as #6)
    ("Derrick", True),  # x7
    ("Heute Journal", False),  # x8
    ("Wetter", False),  # x9
    ("Der Alte", True),  # x10
    ("Soko", True),  # x11: beyond the 10 that P@10x scores
]


def editor_split(tmp_path: Path) -> Split:
    """The hand split of EDITOR_ANSWERS, queried by "der bergdoktor: x"."""
    keys = [(eval_key(title), rel) for title, rel in EDITOR_ANSWERS]
    return hand_split(tmp_path, "der bergdoktor: x", [k for k, rel in keys[1:] if rel],
                      [k for k, rel in keys if not rel])


def test_editor_view_figures(tmp_path: Path) -> None:
    score = score_query(editor_split(tmp_path), "der bergdoktor: x", [t for t, _ in EDITOR_ANSWERS])
    assert score.own_series == pytest.approx(0.3)  # #1, #2, #10
    assert score.dup == pytest.approx(0.2)  # #4, #7
    assert score.p_at_10 == pytest.approx(0.8)  # unchanged rule: #5 and #8 miss
    assert score.p_at_10x == pytest.approx(0.6)  # x1, x3, x5, x6, x7, x10


def test_editor_view_short_and_skipped_repeats(tmp_path: Path) -> None:
    relevant = ["der bergdoktor", "der-bergdoktor", "tatort"]
    split = hand_split(tmp_path, "der bergdoktor: x", relevant, [])
    # "Der-Bergdoktor" repeats the skipped same-show answer "Der Bergdoktor"; 2 answers of 10
    score = score_query(split, "der bergdoktor: x", ["Der Bergdoktor", "Der-Bergdoktor", "Tatort"])
    figures = (score.p_at_10, score.dup, score.own_series, score.p_at_10x)
    assert figures == pytest.approx((0.2, 0.1, 0.0, 0.1))
    empty = score_query(split, "der bergdoktor: x", [])
    assert (empty.p_at_10, empty.p_at_10x, empty.own_series, empty.dup) == (0.0, 0.0, 0.0, 0.0)


def test_pooled_figures_in_rows(tmp_path: Path) -> None:
    from epgembed.nightly.quality import score_answers

    split, series = editor_split(tmp_path), series_split(tmp_path)
    pooled = score_answers([split, split, series],
                           [[[t for t, _ in EDITOR_ANSWERS]], [["Tatort"]], [[t for t, _ in SERIES_ANSWERS]]])
    assert pooled == {"p_at_10": 0.6, "map_at_10": pooled["map_at_10"], "p_at_10x": 0.5,
                      "p_at_10d": 0.4667, "own_series": 0.1333, "dup": 0.1, "series_rep": 0.1333,
                      "unmapped": 0.0, "n_test": 3}


CHANNEL_DUMP = [  # (title, categories, channel): "all" airs every title (idf 0)
    ("Football Tonight", [], "sport"), ("Football Tonight", [], "news"),
    ("Goal Rush", [], "sport"), ("Goal Rush", [], "news"),  # the query's very channels
    ("Alpha Sport", [], "sport"), ("Alpha Sport", [], "sport2"),  # shares the common "sport"
    ("Zebra News", [], "news"), ("Zebra News", [], "kids"),  # shares the rarer "news"
    ("Match Day", [], "sport"), ("Match Day", [], "news"),  # identical to Goal Rush
    ("Sport Extra", [], "sport"), ("Sport Extra", [], "sport2"), ("Cartoons", [], "kids"),
] + [(t, [], "all") for t in ("Football Tonight", "Goal Rush", "Alpha Sport", "Zebra News",
                               "Match Day", "Sport Extra", "Cartoons", "Everything")]


def test_channel_system_ranking(tmp_path: Path) -> None:
    system = ChannelSystem()
    system.fit(write_dump(tmp_path / "c.xml", CHANNEL_DUMP), tmp_path)
    answers, unknown, alone = system.query(["FOOTBALL TONIGHT", "Not In Dump", "Everything"], 10)
    # idf: sport on 5 of 8 titles, news on 4: Zebra News (news) beats Alpha Sport (sport);
    # equal cosines go to the earlier title in sorted order; no channel in common, no answer
    assert answers == ["Goal Rush", "Match Day", "Zebra News", "Alpha Sport", "Sport Extra"]
    assert unknown == [] and alone == []
    assert system.query(["Cartoons"], 1) == [["Zebra News"]]


def test_channel_system_end_to_end(tmp_path: Path) -> None:
    """One channel per topic: every query finds the 7 other titles of its topic, only them."""
    progs = [(t, [topic], topic) for topic, titles in TOPICS.items() for t in titles]
    dump = write_dump(tmp_path / "channels.xml", progs + progs)
    rows = evaluate_dumps([dump], [ChannelSystem()], seed=0, workdir=tmp_path / "work")
    [row] = rows
    assert row["system"] == "channel" and row["n_test"] == 8
    assert (row["p_at_10"], row["map_at_10"], row["p_at_10x"]) == pytest.approx((0.7, 1.0, 0.7))
    assert (row["own_series"], row["dup"]) == (0.0, 0.0)
    table = format_table(rows)
    assert "| P@10 | P@10x | P@10d | series_rep | MAP@10 | own_series | dup |" in table
    assert "| channels | channel | 0.700 | 0.700 | 0.700 | 0.000 | 1.000 | 0.000 | 0.000 |" in table


def test_unmapped_counts_answers_that_are_no_title_of_the_dump(tmp_path: Path) -> None:
    """Issue 16: an answer title the dump never aired (a cut title) maps to nothing."""
    split = hand_split(tmp_path, "saturday night live", ["comedy hour"], ["news at six"])
    score = score_query(split, "saturday night live", ["Saturday Night", "Comedy Hour", "News at Six"])
    assert score.unmapped == 0.1 and score.p_at_10 == 0.1
    assert score_query(split, "saturday night live", ["Comedy Hour"]).unmapped == 0.0


# one answer per series (EVALUATION.md "P@10d"): (display title, relevant), in answer order;
# d = rank among the answers P@10x scores, r = a series already listed there
SERIES_ANSWERS = [
    ("Dynasty: A", True),  # d1
    ("Dynasty: B", True),  # d2 r
    ("New Tricks", True),  # d3
    ("Dynasty - C", True),  # d4 r
    ("Remington Steele: Other", True),  # own series, skipped
    ("Mistresses", False),  # d5
    ("Dynasty: A", True),  # repeat, skipped
    ("Le Sorelle McLeod", True),  # d6
    ("Dynasty", True),  # d7 r (the series' name alone is its series too)
    ("Tatort", True),  # d8
    ("Tatort: X", True),  # d9 r
    ("Heute", False),  # d10
    ("Derrick", True), ("Wetter", False), ("Der Alte", True), ("Soko", True),
    ("Polizeiruf", True),  # the 11th series: beyond the 10 P@10d scores
]


def series_split(tmp_path: Path) -> Split:
    keys = [(eval_key(title), rel) for title, rel in SERIES_ANSWERS]
    return hand_split(tmp_path, "remington steele: progetto omega", [k for k, rel in keys if rel],
                      [k for k, rel in keys if not rel])


def test_one_answer_per_series_figures(tmp_path: Path) -> None:
    split = series_split(tmp_path)
    score = score_query(split, "remington steele: progetto omega", [t for t, _ in SERIES_ANSWERS])
    assert score.p_at_10x == pytest.approx(0.8)  # d5 and d10 miss
    assert score.series_rep == pytest.approx(0.4)  # d2, d4, d7, d9
    # Dynasty: A, New Tricks, Mistresses, Le Sorelle, Tatort, Heute, Derrick, Wetter, Der Alte, Soko
    assert score.p_at_10d == pytest.approx(0.7)
    assert (score.own_series, score.dup) == (pytest.approx(0.1), pytest.approx(0.1))
    short = score_query(split, "remington steele: progetto omega", ["Dynasty: A", "Dynasty: B"])
    assert (short.p_at_10x, short.p_at_10d, short.series_rep) == pytest.approx((0.2, 0.1, 0.1))


def test_a_ranking_cut_to_one_per_series(tmp_path: Path) -> None:
    keys = [eval_key(t) for t, _ in SERIES_ANSWERS]
    kept = one_per_series(keys)
    assert [keys[i] for i in kept[:4]] == ["dynasty: a", "new tricks", "remington steele: other",
                                           "mistresses"]
    assert len(kept) == 12  # 17 answers, five of an earlier series
    cut = score_query(series_split(tmp_path), "remington steele: progetto omega",
                      [SERIES_ANSWERS[i][0] for i in kept])
    assert (cut.p_at_10x, cut.p_at_10d, cut.series_rep) == pytest.approx((0.7, 0.7, 0.0))
