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
from epgembed.eval.score import average_precision_at_k, precision_at_k, same_show, series_cuts

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
