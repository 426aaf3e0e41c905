"""The cold-start protocol of EVALUATION.md (epgembed/eval/coldstart.py): train_cold, the new
series, the three query modes, and the rows on a small guide."""
from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from guide import TINY_CONFIG
from test_evaluate import TOPICS, topic_dump, write_dump

from epgembed.eval.baselines import EpgembedSystem, TfidfSystem
from epgembed.eval.coldstart import (WARM, cold_start_rows, context_query, evaluate_with_cold_start,
                                     format_cold_table, new_series, programme_query, query_airings,
                                     write_cold_dump)
from epgembed.eval.evaluate import eval_key, split_dump
from epgembed.eval.xmltv import iter_guide, iter_programmes
from epgembed.query.requests import ProgrammeQuery
from epgembed.query.shapes import convert

pytestmark = pytest.mark.integration


def with_test_keys(split, keys):
    return dataclasses.replace(split, test_keys=tuple(sorted(keys)),
                               queries={k: k.title() for k in keys})


def test_train_cold_drops_every_programme_of_a_test_title(tmp_path: Path) -> None:
    progs = [(t, [topic]) for topic, titles in TOPICS.items() for t in titles]
    progs += [("FOOTBALL WEEKLY S1E02", ["sport"]), ("Football Weekly (12)", ["sport"])]  # other spellings
    split = split_dump(write_dump(tmp_path / "d.xml", progs + progs), seed=1)
    split = with_test_keys(split, set(split.test_keys) | {"football weekly"})
    cold = write_cold_dump(split, tmp_path / "cold.xml")
    kept = [t for t, _ in iter_programmes(cold)]
    assert not [t for t in kept if eval_key(t) in split.test_keys]
    assert len(kept) == len(progs + progs) - 2 * sum(
        1 for t, _ in progs if eval_key(t) in split.test_keys)
    assert {eval_key(t) for t in kept} == set(split.key_categories) - set(split.test_keys)
    # a training file that still holds a test title is refused, naming it
    with pytest.raises(ValueError, match="still in train_cold"):
        new_series(split, split.write_training_dump(tmp_path / "train.xml"))


def test_new_series_have_no_title_left_in_train_cold(tmp_path: Path) -> None:
    progs = [("Dynasty: A", ["drama"]), ("Dynasty: B", ["drama"]), ("Solo Show", ["drama"]),
             ("Tatort", ["crime"]), ("Tatort: Im Schmerz", ["crime"]), ("News Hour", ["news"]),
             ("Cold Case - Pilot", ["crime"]), ("Cold Case - Finale", ["crime"])]
    split = with_test_keys(split_dump(write_dump(tmp_path / "d.xml", progs)),
                           {"dynasty: a", "solo show", "tatort: im schmerz", "tatort",
                            "cold case - pilot", "cold case - finale"})
    cold = write_cold_dump(split, tmp_path / "cold.xml")
    # Dynasty: B is left; nothing of Tatort or Cold Case is
    assert new_series(split, cold) == {"solo show", "tatort", "tatort: im schmerz",
                                       "cold case - pilot", "cold case - finale"}


def airing(title: str, channel: str, start: str, stop: str, extra: str = "") -> str:
    return (f'<programme start="{start}" stop="{stop}" channel="{channel}"><title>{escape(title)}</title>'
            f"{extra}<category>Drama</category></programme>")


GUIDE = "".join([
    airing("Der Bergdoktor", "zdf", "20240103201500 +0100", "20240103210000 +0100"),
    airing("Der Bergdoktor", "ard", "20240104201500 +0100", "20240104210000 +0100",
           "<sub-title>Zweiter</sub-title><desc>Ein Arzt in Tirol.</desc>"
           "<credits><director>Axel Barth</director><actor>Hans Sigl</actor></credits>"
           "<date>2008-01-03</date><country>DE</country><episode-num system='onscreen'>12</episode-num>"
           "<rating system='FSK'><value>6</value></rating>"),
    airing("DER BERGDOKTOR", "ard", "20240111201500 +0100", "20240111210000 +0100"),
    airing("Der Bergdoktor", "ard", "20240118211500 +0100", "20240118220000 +0100"),
    airing("Tatort", "ard", "20240107201500 +0100", "20240107213000 +0000"),
])


def test_each_test_title_is_asked_with_its_most_frequent_airing(tmp_path: Path) -> None:
    path = tmp_path / "g.xml"
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<tv>{GUIDE}</tv>\n', encoding="utf-8")
    split = with_test_keys(split_dump(path), {"der bergdoktor", "tatort"})
    airings = query_airings(split)
    # ard at 20:15 for 45 minutes twice (the first of them), zdf once, ard at 21:15 once
    bergdoktor = airings["der bergdoktor"]
    assert (bergdoktor.channel, bergdoktor.start) == ("ard", "20240104201500 +0100")
    assert context_query("Der Bergdoktor", bergdoktor) == {
        "title": "Der Bergdoktor", "channel": "ard", "start": "202401042015", "duration": 45.0}
    full = programme_query("Der Bergdoktor", bergdoktor)
    assert full == {"title": "Der Bergdoktor", "channel": "ard", "start": "202401042015",
                    "duration": 45.0, "sub_title": "Zweiter", "desc": "Ein Arzt in Tirol.",
                    "credits": ["Axel Barth", "Hans Sigl"], "year": 2008, "country": "DE",
                    "rating": "6", "episode_num": "12"}
    assert convert(full, ProgrammeQuery).credits == ["Axel Barth", "Hans Sigl"]   # a valid request
    # the offsets count: 20:15 +0100 to 21:30 +0000 is 135 minutes
    assert context_query("Tatort", airings["tatort"])["duration"] == 135.0
    assert programme_query("X", None) == context_query("X", None) == {"title": "X"}
    assert [a.title for a in iter_guide(path)][:2] == ["Der Bergdoktor"] * 2


def channel_guide(path: Path) -> Path:
    """Five topics of 8 titles, each topic on its own channel; the titles are made-up words,
    so only the channel tells a title's topic."""
    rng = random.Random(3)
    syllables = ["ka", "lo", "mi", "zu", "re", "ta", "po", "ne", "su", "vi", "da", "go"]
    progs = []
    for topic in TOPICS:
        for _ in range(8):
            title = " ".join("".join(rng.choices(syllables, k=3)).capitalize() for _ in range(2))
            progs += [(title, [topic], f"{topic}-tv")] * 2
    return write_dump(path, progs)


def test_cold_start_rows_on_a_guide_where_only_the_channel_tells(tmp_path: Path) -> None:
    dump = channel_guide(tmp_path / "channels.xml")
    systems = [EpgembedSystem(TINY_CONFIG, threads=1)]
    rows, cold = evaluate_with_cold_start([dump], systems, [EpgembedSystem(TINY_CONFIG, threads=1),
                                                            TfidfSystem()],
                                          seed=0, workdir=tmp_path / "work", cut=True)
    assert [r["system"] for r in rows] == ["epgembed"] and "cut_p_at_10d" in rows[0]
    by = {(r["system"], r["mode"]): r for r in cold}
    assert sorted(by) == [("epgembed", "context"), ("epgembed", "programme"), ("epgembed", "text"),
                          ("epgembed", WARM), ("tfidf-char", "text")]       # tf-idf: text only
    for r in cold:
        assert r["n_test"] == 8 and r["n_new"] == 8          # no title shares a series here
        assert r["all"] == r["new"]
    assert by[("epgembed", WARM)]["all"]["p_at_10d"] == pytest.approx(rows[0]["p_at_10d"])
    text, context = by[("epgembed", "text")]["all"], by[("epgembed", "context")]["all"]
    assert context["p_at_10d"] >= text["p_at_10d"] + 0.25    # the channel places a title never seen
    assert by[("epgembed", "programme")]["all"]["p_at_10d"] >= text["p_at_10d"] + 0.25
    table = format_cold_table(cold)
    assert "| channels | epgembed | context | 8 |" in table and "new P@10d" in table


def test_a_text_only_system_answers_mode_1(tmp_path: Path) -> None:
    split = split_dump(topic_dump(tmp_path / "topics.xml"), seed=0)
    rows = cold_start_rows(split, tmp_path, [TfidfSystem()])
    assert [(r["system"], r["mode"]) for r in rows] == [("tfidf-char", "text")]
    assert rows[0]["all"]["p_at_10"] >= 0.5                  # its topic's words, never its title


def test_evaluate_command_with_cold_start_and_cut(tmp_path: Path, capsys) -> None:
    import json

    from epgembed.cli.main import main
    dump = channel_guide(tmp_path / "channels.xml")
    out = tmp_path / "figures.json"
    args = ["evaluate", str(dump), "--systems", "epgembed,tfidf,random", "--cold-start", "--cut",
            "--dim", "32", "--epochs", "10", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "| P@10d | series_rep |" in text and "cut P@10d" in text
    assert "cold start (titles never seen" in text and "| channels | epgembed | programme | 8 |" in text
    figures = json.loads(out.read_text())
    assert [r["system"] for r in figures["results"]] == ["epgembed", "tfidf-char", "random"]
    modes = [(r["system"], r["mode"]) for r in figures["cold_start"]]     # random: no cold start
    assert modes == [("epgembed", "text"), ("epgembed", "context"), ("epgembed", "programme"),
                     ("epgembed", WARM), ("tfidf-char", "text"), ("tfidf-char", WARM)]
    assert main(["evaluate", str(dump), "--systems", "epgembed,nope"]) == 2
    assert "unknown system(s): nope" in capsys.readouterr().err
