"""The editor's view of the protocol's score (epgembed/eval/score.py, EVALUATION.md "Score"):
own series, repeats, P@10x, one answer per series (P@10d, series_rep), the ranking cut to
one per series, unmapped answers, and the figures pooled over queries."""
from __future__ import annotations

from pathlib import Path

import pytest

from epgembed.eval.evaluate import Split, eval_key, score_query
from epgembed.eval.score import one_per_series, own_series, series_head, squashed

pytestmark = pytest.mark.unit


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
