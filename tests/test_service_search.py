"""The service's catalog title search index against a brute-force scan."""
import random
import re

import pytest

import epgembed.query.search as search_mod
from epgembed.query.search import TitleIndex, normalize_query, typo_budget

pytestmark = pytest.mark.unit
KINDS = ["prefix", "word", "substring", "typo"]


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


def osa(a, b):
    """Optimal string alignment distance, the textbook table."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def near(key, q):
    """Fewest edits from q to the key or to a span of it from a word start to a word end
    (3 when more than 2: a span 3 characters longer or shorter is never nearer)."""
    starts = [0] + [m.start() for m in re.finditer(r"(?<=\W)\w", key)]
    ends = [len(key)] + [m.end() for m in re.finditer(r"\w(?=\W)", key)]
    return min([osa(q, key[s:e]) for s in starts for e in ends if s <= e and abs(e - s - len(q)) <= 2] + [3])


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
    order = [m.match for m in got]                                   # prefix, word, substring, then typo
    assert order == sorted(order, key=KINDS.index)
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


# ---------------------------------------------------------------- typos (issue 17)
SHOWS = sorted(["carte blanche", "cartel", "blanche", "survivor: australia", "survivor", "generations",
                "star trek: the next generation", "tatort", "football tonight", "csi: miami", "news 24",
                "the bachelor", "conversation", "zurich classic"])


def found(q, limit=10, keys=SHOWS):
    return [(keys[m.id], m.match) for m in TitleIndex(keys).search(q, limit)]


@pytest.mark.parametrize("q, want", [
    ("cart blanche", [("carte blanche", "typo")]),                   # a letter left out
    ("Cart Blanche", [("carte blanche", "typo")]),                   # folded like any query
    ("the bachelorr", [("the bachelor", "typo")]),                   # a letter too many
    ("csi: miani", [("csi: miami", "typo")]),                        # a wrong letter
    ("tatrot", [("tatort", "typo")]),                                # two letters swapped: 1 edit, not 2
    ("fotball tonihgt", [("football tonight", "typo")]),             # 2 edits from 9 characters
    ("survivr", [("survivor", "typo"), ("survivor: australia", "typo")]),   # a word of the key
    ("generatons", [("generations", "typo"), ("star trek: the next generation", "typo")]),
])
def test_typos_find_the_title(q, want):
    assert found(q) == want


def test_exact_and_prefix_answers_come_first_and_unchanged():
    keys = sorted(["survival", "surviver", "survivor", "survivor: australia", "survivors", "the survivor",
                   "the survivors club", "servivor", "lastsurvivor"])
    assert found("survivor", keys=keys) == [
        ("survivor", "prefix"), ("survivor: australia", "prefix"), ("survivors", "prefix"),
        ("the survivor", "word"), ("the survivors club", "word"), ("lastsurvivor", "substring"),
        ("servivor", "typo"), ("surviver", "typo")]                  # 1 edit each; "survival" is 2
    assert found("survivor", 3, keys) == [("survivor", "prefix"), ("survivor: australia", "prefix"),
                                          ("survivors", "prefix")]   # typos never push an answer out
    assert found("carte blanch") == [("carte blanche", "prefix")]
    assert found("blanche") == [("blanche", "prefix"), ("carte blanche", "word")]


def test_typo_ranking_fewest_edits_then_closest_length_then_key():
    keys = sorted(["a survivor", "survivor", "survivor: australia", "arte blanche", "carte blanche"])
    assert found("survivr", keys=keys) == [("survivor", "typo"), ("a survivor", "typo"),
                                           ("survivor: australia", "typo")]
    assert found("cartt blanche", keys=keys) == [("carte blanche", "typo"), ("arte blanche", "typo")]  # 1, 2 edits


def test_edit_budget_grows_with_the_query():
    assert [typo_budget(n) for n in (1, 3, 4, 8, 9, 30)] == [0, 0, 1, 1, 2, 2]
    assert found("srvivr") == []                                     # 6 characters, 2 edits: too many
    assert found("tatorrtt") == []                                   # 8 characters, 2 edits
    assert found("cart blanch") == [("carte blanche", "typo")]       # 11 characters, 2 edits


@pytest.mark.parametrize("q", ["ab", "tat", "nws", "csj", "b4"])
def test_no_typo_match_for_short_queries(q):
    """A box typing its first letters gets no noise: nothing within one edit under 4 characters."""
    keys = ["ab", "abc", "tatort", "news 24", "csi: miami", "b"]
    assert [m for m in TitleIndex(keys).search(q, 10) if m.match == "typo"] == []
    assert [(keys[m.id], m.match) for m in TitleIndex(keys).search("newz", 10)] == [("news 24", "typo")]  # from 4


@pytest.mark.parametrize("q", ["xyzzyqwv", "completely unrelated words", "versatin", "tonigh football"])
def test_nothing_near_finds_nothing(q):
    # "versatin" is one edit from "versation", but that is not a span from a word start
    assert found(q) == []


def test_typo_matches_are_the_near_keys(keys, monkeypatch):
    """Every typo match is within the budget of the key or a word-aligned span of it, fewest
    edits first; from 9 characters (where the trigram filter is exact) none is missing."""
    monkeypatch.setattr(search_mod, "TYPO_VERIFY", 10**6)
    rng = random.Random(1)
    small = rng.sample(keys, 400)
    idx = TitleIndex(small)
    for key in rng.sample(small, 40):
        i = rng.randrange(len(key))
        q = key[:i] + rng.choice("abcdefgh ") + key[i + 1:]
        got = idx.search(q, len(small))
        typo = [m.id for m in got if m.match == "typo"]
        k = typo_budget(len(q))
        dist = [near(small[j], q) for j in typo]
        assert all(d <= k for d in dist) and dist == sorted(dist), q
        if len(q) >= 9:
            others = {m.id for m in got if m.match != "typo"}
            assert set(typo) == {j for j, s in enumerate(small) if j not in others and near(s, q) <= k}, q


def test_a_title_as_the_service_shows_it_finds_its_show_first():
    """Issue 26: the key loses the episode part ("ugly americans"), the title shown keeps it;
    pasted back (exactly, or with one typo) it finds that show first, each show once."""
    from epgembed.artifact.catalog import Catalog
    from epgembed.artifact.show import Show
    from epgembed.text.normalize import title_key
    titles = ["Ugly Americans S2 Ep. 3", "Ugly Americans Live", "Hell's Kitchen Series 11 Episode 13",
              "Million Dollar Deal Part 1", "Is Earth Striking Back? (2017)", "Zürich Tonight", "Evening News"]
    catalog = Catalog([Show(i, title_key(t), t, {}, 1, ["ch"]) for i, t in enumerate(titles)])
    idx = TitleIndex.from_catalog(catalog)
    for i, t in enumerate(titles):
        got = idx.search(t, 10)
        assert got[0].id == i, (t, got)
        assert len({m.id for m in got}) == len(got)
    assert idx.search("Hell's Kitchen Series 11 Episde 13", 5)[0].id == 2        # one typo
    assert [m.id for m in idx.search("ugly americans", 10)][:2] == [0, 1]       # the key still finds both
    assert len(idx) > len(titles)                                   # entries: keys, and the titles that differ
