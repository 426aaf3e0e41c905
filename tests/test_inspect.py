"""Outlier inspection: the leave-one-token-out math, inspect, the outlier scan, the CLI and the report."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from epgembed.query.load import load_model
from epgembed.config import InspectConfig
from epgembed.inspect.explain import compare_title, explain_pair, inspect_title
from epgembed.inspect.loo import collapse, leave_one_out
from epgembed.query.vectors import title_vectors
from epgembed.inspect.outliers import (category_matrix, find_outliers, list_disagreement, most_suspicious,
                                     PairArrays, scan_pairs, share_any)
from epgembed.query.errors import QueryError
from epgembed.inspect.report import bar_widths, esc, group_pairs, render_report
from handmade import PLANTED, RARE, build_handmade_model

pytestmark = pytest.mark.integration

R2 = 1 / math.sqrt(2)


@pytest.fixture(scope="module")
def handmade(tmp_path_factory) -> Path:
    return build_handmade_model(tmp_path_factory.mktemp("handmade") / "m")


@pytest.fixture(scope="module")
def model(handmade):
    return load_model(handmade)


# ---------------------------------------------------------------- the math, by hand
def test_leave_one_out_hand_worked():
    rows = np.array([[[1.0, 0.0], [0.0, 1.0]]])           # title = e1 + e2
    loo = leave_one_out(rows, np.array([[True, True]]), np.array([[[1.0, 0.0]]]))
    assert loo.score[0, 0] == pytest.approx(R2)             # cos((1,1), (1,0))
    assert loo.without[0, :, 0] == pytest.approx([0.0, 1.0])  # without e1: (0,1); without e2: (1,0)
    assert loo.drop[0, :, 0] == pytest.approx([R2, R2 - 1.0])
    assert loo.share[0, :, 0] == pytest.approx([R2, 0.0])   # additive parts sum to the score
    assert loo.share.sum() == pytest.approx(loo.score[0, 0])


def test_single_token_and_padding():
    rows = np.array([[[3.0, 4.0], [9.0, 9.0]]])           # second position is padding
    loo = leave_one_out(rows, np.array([[True, False]]), np.array([[[0.6, 0.8], [1.0, 0.0]]]))
    assert loo.score[0] == pytest.approx([1.0, 0.6])
    assert loo.without[0, 0] == pytest.approx([0.0, 0.0])   # nothing left: scores 0
    assert loo.without[0, 1] == pytest.approx(loo.score[0])  # removing padding changes nothing
    assert loo.share[0, 1] == pytest.approx([0.0, 0.0])


def test_collapse_hand_worked():
    drops = np.array([[0.6, 0.7], [0.6, 0.1], [0.9, 0.0], [0.2, 0.0]])
    rare = np.array([[True, False], [True, False], [True, True], [True, True]])
    score = np.array([0.8, 0.8, 0.5, -0.3])
    # non-rare drops are ignored; capped at 1; nothing for a negative score
    assert collapse(score, drops, rare) == pytest.approx([0.75, 0.75, 1.0, 0.0])


def test_leave_one_out_with_a_center_hand_worked():
    # v(s) = unit(unit(s) - c): s = (1, 1), c = (0.2, 0): unit(s) - c = (0.5071, 0.7071), |.| = 0.8702
    rows, mask, other = np.array([[[1.0, 0.0], [0.0, 1.0]]]), np.array([[True, True]]), np.array([[[1.0, 0.0]]])
    loo = leave_one_out(rows, mask, other, center=np.array([0.2, 0.0]))
    assert loo.score[0, 0] == pytest.approx(0.5071 / 0.8702, abs=1e-4)
    assert loo.without[0, :, 0] == pytest.approx([-0.2 / math.hypot(0.2, 1.0), 1.0], abs=1e-4)
    assert loo.share[0, :, 0] == pytest.approx([1 / (math.sqrt(2) * 0.8702), 0.0], abs=1e-4)
    assert loo.center[0, 0] == pytest.approx(-0.2 / 0.8702, abs=1e-4)
    assert loo.share.sum() + loo.center[0, 0] == pytest.approx(loo.score[0, 0])


def test_explanations_score_with_the_model_title_vectors(model):
    """explain_pair's score is the cosine of the two title vectors as model.title_vectors
    makes them (the catalog's stored vectors for catalog titles)."""
    e = explain_pair(model, PLANTED[0], PLANTED[1])
    x, y = (model.resolve(t) for t in PLANTED)
    assert e["score"] == pytest.approx(float(model.vectors[x] @ model.vectors[y]), abs=1e-6)
    ids, weights = model.query_tokens("Zorblax Club")
    bag = title_vectors(model.embeddings, ids, weights, center=model.center)
    answered, feedback = model.feedback(bag)         # an unseen title moves toward its nearest
    assert feedback and not np.allclose(answered, bag)
    e = explain_pair(model, "Zorblax Club", PLANTED[1])
    assert e["score"] == pytest.approx(float(answered @ model.vectors[y]), abs=1e-6)
    assert e["feedback"]["titles"] == feedback
    parts = sum(t["share"] for t in e["tokens"]["title"]) + e["center_share"]["title"] + e["feedback"]["share"]
    assert parts == pytest.approx(e["score"], abs=1e-5)     # tokens + center + feedback = score
    m = model.vectors[feedback].mean(axis=0)
    w = model.config.index.feedback_weight
    for t in e["tokens"]["title"][:3]:                       # without a token, the same feedback titles
        rest = [(i, wt) for j, (i, wt) in enumerate(zip(ids, weights)) if j != t["position"]]
        v = title_vectors(model.embeddings, [i for i, _ in rest], [wt for _, wt in rest], center=model.center)
        moved = (v + w * m) / np.linalg.norm(v + w * m)
        assert t["without"] == pytest.approx(float(moved @ model.vectors[y]), abs=1e-5)


def test_scan_reads_the_neighbour_table_as_exact_search_would(model, tmp_path):
    """With the model's neighbour table or without it (exact search), the same pairs."""
    with_table, _, _ = scan_pairs(model, 5, InspectConfig())
    searched = load_model(model.path)
    searched.neighbours = None
    without, _, _ = scan_pairs(searched, 5, InspectConfig())
    assert np.array_equal(with_table.neighbor, without.neighbor)
    assert with_table.score == pytest.approx(without.score)
    assert (with_table.neighbor != with_table.title).all()     # a title is not its own neighbour
    searched.neighbours = (model.neighbours[0][:, :3], model.neighbours[1][:, :3])   # too short: searched
    short, _, _ = scan_pairs(searched, 5, InspectConfig())
    assert np.array_equal(short.neighbor, without.neighbor)


def test_category_sharing_and_list_disagreement():
    cats = category_matrix([["a", "b"], ["b"], ["c"], []])
    assert cats.tolist() == [[0, 1], [1, -1], [2, -1], [-1, -1]]
    shared = share_any(cats[[0, 0, 1, 3]], cats[[1, 2, 2, 3]])
    assert shared.tolist() == [True, False, False, False]
    has = (cats >= 0).any(1)
    nbrs = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
    sh = share_any(cats[np.repeat(np.arange(4), 3)], cats[nbrs.ravel()]).reshape(4, 3)
    n_lab, share, disagrees = list_disagreement(has, nbrs, sh, InspectConfig(min_labelled_neighbors=2))
    assert n_lab.tolist() == [2, 2, 2, 3]
    assert share.tolist() == pytest.approx([0.5, 0.5, 1.0, 0.0])   # show 3 has no categories
    assert disagrees.tolist() == [True, True, True, False]


def test_most_suspicious_keeps_one_direction_per_pair():
    p = PairArrays(title=np.array([0, 1, 0, 2]), neighbor=np.array([1, 0, 2, 0]), rank=np.ones(4, int),
                   score=np.array([0.9, 0.9, 0.5, 0.5]), collapse=np.array([1.0, 0.8, 0.0, 1.0]),
                   carried=np.array([1.0, 0.8, 0.0, 1.0]),
                   decidable=np.ones(4, bool), shared=np.zeros(4, bool), list_share=np.zeros(4))
    assert most_suspicious(p, np.ones(4, bool), 10).tolist() == [0, 3]
    # 0.9 * (0.3 * 1 + 0.3 * 1 + 0.3 * 1 + 0.1 * 0) and 0.5 * 0.3 (no category only)
    assert p.suspicion()[[0, 2]] == pytest.approx([0.81, 0.15])


def test_bar_widths():
    assert bar_widths(0.5, 1.0) == (0.0, 50.0)
    assert bar_widths(-0.25, 0.5) == (50.0, 0.0)
    assert bar_widths(3.0, 1.0) == (0.0, 100.0)


# ---------------------------------------------------------------- the planted rare token
def test_inspect_flags_the_planted_match(model):
    r = inspect_title(model, PLANTED[0], k=5)
    top = r["neighbors"][0]
    assert top["neighbor"]["text"] == PLANTED[1] and top["score"] > 0.8
    assert set(top["flags"]) == {"no_shared_category", "rare_token_match"} and top["collapse"] > 0.9
    assert top["carrier"]["token"] == f"[{RARE}]" and top["carrier"]["rare"]
    for side in ("title", "neighbor"):
        drops = {t["token"]: t["drop"] for t in top["tokens"][side]}
        others = [d for t, d in drops.items() if t != f"[{RARE}]"]
        assert drops[f"[{RARE}]"] > 0.8 and drops[f"[{RARE}]"] > 5 * max(map(abs, others))
    # the other neighbours are kids shows, sharing a category: not flagged for that
    assert all("no_shared_category" not in e["flags"] for e in r["neighbors"][1:])
    assert r["tokens"][0]["count"] >= 0 and r["disagreement"]["labelled_neighbors"] == 5


@pytest.mark.parametrize("centered", [False, True])
def test_explain_equals_the_models_own_vectors(handmade, tmp_path, centered):
    m = load_model(build_handmade_model(tmp_path / "c", center=True)) if centered else load_model(handmade)
    assert (m.center is not None) == centered
    e = explain_pair(m, PLANTED[0], PLANTED[1])

    def vec(tokens, skip=None):        # the model's own query-side math (RelatedModel.vector_of)
        kept = [t for t in tokens if t["position"] != skip]
        return np.asarray(m.vector_of([t["id"] for t in kept], [t["weight"] for t in kept]), np.float64)

    x, y = e["tokens"]["title"], e["tokens"]["neighbor"]
    assert e["score"] == pytest.approx(float(vec(x) @ vec(y)), abs=1e-6)
    assert e["score"] == pytest.approx(float(m.vectors[e["title"]["id"]] @ m.vectors[e["neighbor"]["id"]]), abs=1e-5)
    for side, other in ((x, y), (y, x)):
        for t in side:
            assert t["without"] == pytest.approx(float(vec(side, t["position"]) @ vec(other)), abs=1e-6)
            assert t["drop"] == pytest.approx(e["score"] - t["without"], abs=2e-6)   # each rounded to 1e-6
            assert t["count"] == int(m.token_counts[t["id"]])
    assert sum(t["share"] for t in x) + e["center_share"]["title"] == pytest.approx(e["score"], abs=1e-5)
    assert explain_pair(m, e["title"]["id"], e["neighbor"]["id"]) == e       # ids or titles


def test_explain_unseen_text_and_errors(model):
    e = explain_pair(model, "Zorblax Dragon Show", "Puppy Club")
    assert not e["title"]["known"] and e["title"]["id"] is None and e["neighbor"]["known"]
    with pytest.raises(QueryError):
        explain_pair(model, "   ", "Puppy Club")
    with pytest.raises(QueryError):
        explain_pair(model, "Puppy Club", 10_000)
    with pytest.raises(QueryError):
        explain_pair(model, "Puppy Club", "qqq xxyz")         # no known token


def test_outliers_finds_the_planted_pair_first(model):
    scan = find_outliers(model, top=10, k=5)
    first = scan["outliers"][0]
    assert {first["title"]["text"], first["neighbor"]["text"]} == set(PLANTED)
    assert first["carrier"]["token"] == f"[{RARE}]" and first["suspicion"] > 0.7
    assert first == {**explain_pair(model, first["title"]["id"], first["neighbor"]["id"]),
                     **{k: first[k] for k in ("rank", "position", "suspicion", "list_share")}}
    pairs = [{o["title"]["text"], o["neighbor"]["text"]} for o in scan["outliers"]]
    assert pairs.count(set(PLANTED)) == 1                     # one direction only
    s = scan["summary"]
    assert s["shows"] == len(model) and s["pairs"] == len(model) * 5 and s["rare_token_match"] >= 2
    assert s["check"]["flagged"]["share_no_informative_category"] is not None


@pytest.mark.parametrize("centered", [False, True])
def test_scan_agrees_with_explain_on_every_pair(model, tmp_path, centered):
    if centered:
        model = load_model(build_handmade_model(tmp_path / "c", center=True))
    pairs, _, _ = scan_pairs(model, 5, InspectConfig(), block=4)
    for p in range(len(pairs.score)):
        e = explain_pair(model, int(pairs.title[p]), int(pairs.neighbor[p]))
        assert (e["score"], e["collapse"], e["carried"]) == pytest.approx(
            (pairs.score[p], pairs.collapse[p], pairs.carried[p]), abs=1e-5)
        assert ("no_shared_category" in e["flags"]) == bool(pairs.no_category[p])


def test_compare_two_models(model, tmp_path):
    other = load_model(build_handmade_model(tmp_path / "other", seed=3))
    c = compare_title(model, other, PLANTED[0], k=4)
    assert c["overlap"] >= 1 and len(c["neighbors"]) == 4
    assert {t["token"] for t in c["token_norms"]} == {"[zorblax]", "[puppy]"}


# ---------------------------------------------------------------- CLI and HTML report
def _cli(*args):
    exe = Path(sys.executable).parent / "epgembed"
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_cli_inspect_json_and_text(handmade, model):
    r = _cli("inspect", handmade, "--title", PLANTED[0], "-k", 5, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["neighbors"] == inspect_title(model, PLANTED[0], 5)["neighbors"]
    r = _cli("inspect", handmade, "--title", PLANTED[0], "-k", 3)
    assert r.returncode == 0 and "rare_token_match" in r.stdout and "[zorblax]*" in r.stdout
    r = _cli("inspect", handmade, "--title", PLANTED[0], "-k", 3, "--compare", handmade)
    assert r.returncode == 0 and "overlap of the top 3: 3" in r.stdout
    r = _cli("inspect", handmade, "--title", "   ")
    assert r.returncode == 2 and "error" in r.stderr and "Traceback" not in r.stderr


class StrictHTML(HTMLParser):
    """Checks that every non-void element is closed in order; collects ids and links."""
    VOID = {"meta", "br", "hr", "img", "input", "link", "col", "source", "wbr"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.ids, self.links, self.doctype = [], [], set(), [], False

    def handle_decl(self, decl):
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        self.links += [v for k, v in attrs if k in ("href", "src", "action") and v]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def check_html(text: str) -> StrictHTML:
    p = StrictHTML()
    p.feed(text)
    p.close()
    assert p.doctype and not p.errors and not p.stack, (p.errors, p.stack)
    assert not re.search(r"(?i)https?:|ftp:|//[a-z0-9]", text)      # no URL at all
    assert all(link.startswith("#") and link[1:] in p.ids for link in p.links)
    return p


def test_cli_outliers_html_report(handmade, tmp_path):
    html_path = tmp_path / "out" / "report.html"
    r = _cli("outliers", handmade, "--top", 5, "-k", 5, "--html", html_path)
    assert r.returncode == 0, r.stderr
    assert "Zorblax" in r.stdout and str(html_path) in r.stdout
    text = html_path.read_text(encoding="utf-8")
    p = check_html(text)
    assert {"pair-1", "group-1", "groups"} <= p.ids and "<table" in text and "zorblax" in text and "<script>" in text
    assert text.count('<details class="group"') >= 1 and "<details open" not in text   # collapsed
    r = _cli("outliers", handmade, "--top", 3, "-k", 5, "--json")
    scan = json.loads(r.stdout)
    assert len(scan["outliers"]) == 3 and set(scan["summary"]) >= {"flagged_pairs", "check"}


def test_report_escapes_hostile_titles(model):
    scan = find_outliers(model, top=3, k=5)
    scan["outliers"][0]["title"]["text"] = '<script>alert(1)</script> "x" visit https://evil.example'
    scan["outliers"][0]["tokens"]["title"][0]["token"] = "</div><img src=//evil.example/x>"
    text = render_report(scan)
    check_html(text)
    assert "<script>alert" not in text and "&lt;script&gt;" in text
    assert esc("a://b<") == "a&#58;&#47;&#47;b&lt;"


def test_report_groups_the_pairs_by_title(model):
    scan = find_outliers(model, top=50, k=8)
    items = scan["outliers"]
    titles = {e["title"]["text"] for e in items}
    assert len(items) > len(titles) > 1                       # some titles have several flagged pairs
    text = render_report(scan)
    check_html(text)
    head, *chunks = text.split('<details class="group"')
    assert len(chunks) == len(titles)                          # one entry per query title
    assert head.split('id="groups"')[1].count("<tr>") == len(titles) + 1   # + the header row
    seen = []
    for chunk in chunks:
        chunk = chunk.split("</summary>", 1)[1].split("<h2>")[0]  # the entry's body
        numbers = [int(n) for n in re.findall(r'<details class="pair" id="pair-(\d+)"', chunk)]
        mine = {items[n - 1]["title"]["text"] for n in numbers}
        assert len(mine) == 1 and len(numbers) == sum(e["title"]["text"] in mine for e in items)
        assert all(f'href="#pair-{n}"' in chunk for n in numbers)   # the neighbour table links them
        seen += numbers
    assert sorted(seen) == list(range(1, len(items) + 1))      # every pair once
    groups = group_pairs(items)
    worst = [max(e["suspicion"] for _, e in g) for g in groups]
    assert worst == sorted(worst, reverse=True) and groups[0][0][0] == 1
    first = chunks[0].split("</summary>")[0]
    assert PLANTED[0] in first and "no shared category" in first and f"[{RARE}] (rare" in first


class VisibleText(HTMLParser):
    """The text a reader sees: character data outside script and style, and tooltips."""

    def __init__(self):
        super().__init__()
        self.parts, self.hidden = [], 0

    def handle_starttag(self, tag, attrs):
        self.hidden += tag in ("script", "style")
        self.parts += [v for k, v in attrs if k == "title" and v]

    def handle_endtag(self, tag):
        self.hidden -= tag in ("script", "style")

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)


@pytest.mark.parametrize("inv_freq,words", [(True, "on"), (False, "off"), (None, "not recorded")])
def test_report_writes_words_not_python_values(model, inv_freq, words):
    scan = find_outliers(model, top=50, k=8)
    scan["model"].update(inv_freq=inv_freq, version=None)      # e.g. an old manifest
    scan["summary"]["check"]["rare_token_match"]["share_no_informative_category"] = None
    scan["outliers"][-1]["suspicion"] = float("nan")
    del scan["outliers"][-2]["list_share"]
    text = render_report(scan)
    p = VisibleText()
    p.feed(text)
    visible = " ".join(p.parts)
    assert f"inverse-frequency scaling {words} " in visible and "suspicious neighbour" in visible
    assert not re.findall(r"\b(?:True|False|None|nan|NaN)\b", visible)
    assert not re.search(r'data-v="(?:True|False|None|nan)"', text)


@pytest.mark.unit
def test_the_outlier_scan_lists_each_other_series_once():
    from epgembed.inspect.outliers import one_per_series
    series = np.array([0, 0, 1, 1, 2, 3, 3])        # titles 0,1 | 2,3 | 4 | 5,6
    wide = np.array([[1, 2, 3, 4, 5, 6],             # title 0: its own 1 last, 3 after 2, 6 after 5
                     [0, 3, 2, 6, 4, 5]])
    got = one_per_series(wide, series, 3)
    assert got.tolist() == [[2, 4, 5], [3, 6, 4]]
    assert one_per_series(wide[:1], series, 5).tolist() == [[2, 4, 5, 3, 6]]   # repeats only to fill
