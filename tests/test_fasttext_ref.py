"""The fastText reference of EVALUATION.md (epgembed/eval/fasttext_ref.py): its training
lines (make test), and the reference itself on a tiny dump (marked slow: `make test-slow` and
`make bench-quality` install the `fasttext` extra and run it; nothing is skipped)."""
from __future__ import annotations

from pathlib import Path

import pytest
from test_evaluate import TOPICS, topic_dump, write_dump

from epgembed.eval.evaluate import evaluate_dumps
from epgembed.eval.fasttext_ref import ASKED, FastTextSystem, label, tokens, training_lines

pytestmark = pytest.mark.integration


def test_tokens_and_labels_as_evaluation_md_gives_them() -> None:
    assert tokens("ＦＵＬＬ Width: Straße-Folge 12!") == ["full", "width", "strasse", "folge", "12"]
    assert tokens("!!!") == []
    assert label(" Science  Fiction ") == "__label__science_fiction"
    assert label("Krimi") == "__label__krimi" and label("  ") is None


def test_one_line_per_distinct_title_and_category() -> None:
    programmes = [("Football Tonight", ("Sport", "Live Sport")), ("FOOTBALL tonight", ("sport",)),
                  ("Cooking Club", ()), ("!!!", ("Sport",)), ("News Hour", ("News",))]
    assert training_lines(programmes) == ["__label__sport football tonight",
                                          "__label__live_sport football tonight",
                                          "__label__news news hour"]


@pytest.mark.slow
def test_the_reference_on_a_tiny_dump(tmp_path: Path) -> None:
    dump = topic_dump(tmp_path / "topics.xml")
    system = FastTextSystem()
    system.fit(dump, tmp_path)
    answers, unseen = system.query(["Football Weekly", "Football Championship"], ASKED)
    assert "Football Weekly" not in answers and len(answers) == 39      # every other title
    assert all(a.startswith("Football") for a in answers[:7])            # its topic's words first
    assert all(a.startswith("Football") for a in unseen[:8])             # a title never seen too
    again = FastTextSystem()
    again.fit(dump, tmp_path)
    assert again.query(["Football Weekly"], ASKED) == [answers]          # one thread: reproducible
    [row] = evaluate_dumps([dump], [FastTextSystem()], seed=0, workdir=tmp_path / "work")
    assert row["system"] == "fasttext" and row["n_test"] == 8
    assert row["p_at_10"] >= 0.6 and row["p_at_10d"] == row["p_at_10x"]


@pytest.mark.slow
def test_the_reference_needs_labelled_titles(tmp_path: Path) -> None:
    dump = write_dump(tmp_path / "bare.xml", [(t, []) for t in TOPICS["news"]])
    with pytest.raises(ValueError, match="no programme with a title and a category"):
        FastTextSystem().fit(dump, tmp_path)
