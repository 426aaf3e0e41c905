"""The service's catalog title search index against a brute-force scan."""
import random

import pytest

from service.search import TitleIndex, normalize_query

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def keys():
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefgh") for _ in range(rng.randint(2, 6))) for _ in range(300)]
    keys = sorted({" ".join(rng.choice(words) for _ in range(rng.randint(1, 4))) for _ in range(5000)})
    return keys + ["csi: miami", "émile & co", "news 24"]


def brute(keys, q):
    prefix = {i for i, k in enumerate(keys) if k.startswith(q)}
    word = {i for i, k in enumerate(keys) if i not in prefix and any(
        k.startswith(q, j) for j in range(1, len(k)) if not k[j - 1].isalnum() and k[j].isalnum())}
    inner = {i for i, k in enumerate(keys) if q in k} - prefix - word
    return prefix, word, inner


@pytest.mark.parametrize("q", ["a", "ab", "abc", "fe", "hgf", "b a", "miami", "mi", "émi", "24", "zz", "a b c d e"])
def test_search_matches_brute_force(keys, q):
    idx = TitleIndex(keys)
    prefix, word, inner = brute(keys, q)
    got = idx.search(q, limit=len(keys))
    kinds = {m.id: m.match for m in got}
    assert len(kinds) == len(got)                                    # one entry per show
    assert {i for i, m in kinds.items() if m == "prefix"} == prefix
    assert {i for i, m in kinds.items() if m == "word"} == word
    assert {i for i, m in kinds.items() if m == "substring"} == inner
    order = [m.match for m in got]                                   # prefix, then word, then substring
    assert order == sorted(order, key=["prefix", "word", "substring"].index)
    assert [keys[m.id] for m in got if m.match == "prefix"] == sorted(keys[i] for i in prefix)


def test_limit_and_normalization(keys):
    idx = TitleIndex(keys)
    assert len(idx.search("a", 7)) == 7
    assert [m.id for m in idx.search("  CSI:\u00a0Miami ", 5)] == [keys.index("csi: miami")]
    assert normalize_query("ÉMILE") == "emile" and idx.search("", 5) == [] and TitleIndex([]).search("a", 3) == []


@pytest.mark.parametrize("q", ["zurich", "zürich", "ZÜRICH", "Zurich"])
def test_accents_and_case_fold_both_ways(q):
    """Issue 16: `q=zurich` found nothing while `q=zürich` found the title."""
    idx = TitleIndex(["entdecke die welt - zürich", "zurich classic", "zug"])
    assert {m.id for m in idx.search(q, 5)} == {0, 1}
