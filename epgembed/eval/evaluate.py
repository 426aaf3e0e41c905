"""The "related titles" evaluation protocol of docs/EVALUATION.md.

This module is deliberately independent of the rest of the project: it has its own
title key (`eval_key`), its own category rules and its own XMLTV reading, so that
the figures it produces do not move when the project's normalization changes.

    split = split_dump("au.xml.gz", seed=0)         # keys, categories, test keys, queries
    split.write_training_dump(tmp / "train.xml")    # whole dump, test keys' categories removed
    row = evaluate_dump("au.xml.gz", TfidfSystem()) # {"p_at_10": ..., "map_at_10": ...,
                                                    #  "p_at_10x", "p_at_10d", "series_rep", ...}

Scoring (same show, own series, repeats, the figures) is in `epgembed.eval.score`; the
cold-start protocol in `epgembed.eval.coldstart`. A *system* is any object with a
``name``, ``fit(train_dump, workdir)`` and ``query(titles, k) -> list[list[str]]``
(display titles, best first); see `epgembed.eval.baselines` for the reference baselines.
"""
from __future__ import annotations

import random
import re
import tempfile
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from epgembed.eval.score import (QueryScore, mean_scores, one_per_series, same_show, score_keys,
                                 series_cuts)
from epgembed.eval.xmltv import KEEP, STRIP, iter_programmes, write_dump

ASKED = 20  # answers asked per query
CUT_ASKED = 100  # answers asked for the "cut" figures: the ranking cut to one per series
MAX_CATEGORY_SHARE = 0.30  # a category on more keys than this share is not informative

# Invisible characters that real feeds put inside titles; the protocol turns them into spaces.
_INVISIBLE = {ord(c): " " for c in "\u00a0\u2007\u202f\u200b\u200c\u200d\u2060\ufeff\u00ad"}
_WS = re.compile(r"\s+")
# Trailing episode markers of the protocol: S3 Ep. 42, S1E05, Episode 4, Folge 12, (3608), (1.3).
_MARKER = re.compile(
    r"(?:^|[\s:,\-|/]+)"
    r"(?:s\d{1,4}\s*(?:ep\.?|episode)\s*\d{1,5}|s\d{1,4}\s*e\d{1,5}"
    r"|episode\s*\d{1,5}|folge\s*\d{1,5}|\(\s*\d{1,6}\s*\)|\(\s*\d{1,4}\.\d{1,4}\s*\))"
    r"\s*$"
)
PLACEHOLDER_CATEGORIES = frozenset(
    {
        "", "-", "--", "?", "n/a", "na", "n.a.", "none", "null", "nil", "unknown", "undefined",
        "no information available", "no information", "not available", "no category",
        "uncategorized", "uncategorised", "unclassified", "tbd", "tba", "keine angabe",
        "keine angaben", "unbekannt", "non disponible", "inconnu", "desconocido",
        "sin información", "sin informacion", "other", "others", "misc", "miscellaneous",
        "various", "general", "sonstiges", "sonstige", "autre", "autres", "divers", "otros",
    }
)


class System(Protocol):
    """What the evaluation drives: train on a dump, then answer related-title queries.

    Optional: ``asked`` (answers to ask for instead of ASKED: the fastText reference is
    asked for 100), and the cold-start query modes ``query_context(queries, k)`` and
    ``query_programmes(programmes, k)`` (`epgembed.eval.coldstart`)."""

    name: str

    def fit(self, train_dump: Path, workdir: Path) -> None: ...

    def query(self, titles: list[str], k: int) -> list[list[str]]: ...


def _clean(text: str | None) -> str:
    """NFKC, invisible characters -> spaces, whitespace collapsed, case-folded."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text.translate(_INVISIBLE)).translate(_INVISIBLE)
    return _WS.sub(" ", text).strip().casefold()


def eval_key(title: str | None) -> str:
    """The evaluation's title key (protocol "Split" step 1).

    >>> eval_key("Hey\\u00a0Arnold!  S3 Ep. 42")
    'hey arnold!'

    Trailing markers are removed repeatedly; a title that is nothing but a marker
    ("Folge 12") is kept whole.
    """
    key = _clean(title)
    while True:
        m = _MARKER.search(key)
        if m is None or m.start() == 0:
            return key
        key = key[: m.start()].rstrip(" :,-|/")


def eval_category(category: str | None) -> str | None:
    """Case-folded category, or None for an empty or placeholder category."""
    c = _clean(category).strip(" .;,")
    return None if c in PLACEHOLDER_CATEGORIES else c


@dataclass
class Split:
    """One dump split per the protocol.

    key_categories: every key of the dump -> its informative categories (full dump).
    test_keys: the seeded test share of the items (keys with an informative category).
    queries: test key -> its query string (most frequent raw spelling).
    prefix_categories: `:`/` - ` cut that is no key -> union of its keys' categories.
    """

    path: Path
    seed: int
    key_categories: dict[str, frozenset[str]]
    test_keys: tuple[str, ...]
    queries: dict[str, str]
    prefix_categories: dict[str, frozenset[str]] = field(default_factory=dict)
    category_keys: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        """Number of keys with at least one informative category."""
        return sum(1 for cats in self.key_categories.values() if cats)

    def categories_of(self, key: str) -> frozenset[str]:
        """Informative categories of a key, or of the keys it is the series prefix of."""
        cats = self.key_categories.get(key)
        if cats is not None:
            return cats
        return self.prefix_categories.get(key, frozenset())

    def relevant_count(self, query_key: str) -> int:
        """Other keys sharing an informative category with the query, same-show keys excluded."""
        keys: set[str] = set()
        for cat in self.key_categories.get(query_key, ()):
            keys |= self.category_keys.get(cat, frozenset())
        return sum(1 for key in keys if not same_show(key, query_key))

    def write_training_dump(self, out_path: str | Path) -> Path:
        """Write the dump with the <category> elements of test keys' programmes removed."""
        return write_stripped_dump(self.path, out_path, frozenset(self.test_keys))


def informative_categories(key_raw_categories: dict[str, set[str]]) -> dict[str, frozenset[str]]:
    """Keep, per key, the categories on at most 30% of the keys that are not placeholders."""
    counts = Counter(c for cats in key_raw_categories.values() for c in cats)
    total = max(1, len(key_raw_categories))
    keep = {c for c, n in counts.items() if n / total <= MAX_CATEGORY_SHARE + 1e-9}
    return {key: frozenset(cats & keep) for key, cats in key_raw_categories.items()}


def most_frequent_spelling(spellings: Counter[str]) -> str:
    """Most frequent raw spelling; ties go to the smallest string."""
    return min(spellings.items(), key=lambda item: (-item[1], item[0]))[0]


def choose_test_keys(items: Iterable[str], seed: int, fraction: float) -> tuple[str, ...]:
    """A seeded, sorted sample of round(fraction * n) items (at least one if any)."""
    pool = sorted(items)
    n = min(len(pool), max(1, round(fraction * len(pool)))) if pool else 0
    return tuple(sorted(random.Random(seed).sample(pool, n)))


def _prefix_categories(key_categories: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    union: dict[str, set[str]] = defaultdict(set)
    for key, cats in key_categories.items():
        for cut in series_cuts(key):
            if cut not in key_categories:
                union[cut] |= cats
    return {cut: frozenset(cats) for cut, cats in union.items()}


def _category_keys(key_categories: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    index: dict[str, set[str]] = defaultdict(set)
    for key, cats in key_categories.items():
        for cat in cats:
            index[cat].add(key)
    return {cat: frozenset(keys) for cat, keys in index.items()}


def split_dump(path: str | Path, seed: int = 0, test_fraction: float = 0.2) -> Split:
    """Read a dump and split it per the protocol (steps 1-3 and 5)."""
    return split_pairs(iter_programmes(path), path, seed, test_fraction)


def split_pairs(pairs: Iterable[tuple[str, Sequence[str]]], path: str | Path, seed: int = 0,
                test_fraction: float = 0.2) -> Split:
    """`split_dump` from (raw title, raw categories) pairs already read."""
    raw_cats: dict[str, set[str]] = defaultdict(set)
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for title, cats in pairs:
        key = eval_key(title)
        if not key:
            continue
        spellings[key][title] += 1
        raw_cats[key].update(c for c in map(eval_category, cats) if c is not None)
    key_categories = informative_categories(raw_cats)
    test_keys = choose_test_keys((k for k, c in key_categories.items() if c), seed, test_fraction)
    return Split(
        path=Path(path),
        seed=seed,
        key_categories=key_categories,
        test_keys=test_keys,
        queries={key: most_frequent_spelling(spellings[key]) for key in test_keys},
        prefix_categories=_prefix_categories(key_categories),
        category_keys=_category_keys(key_categories),
    )


def write_stripped_dump(src: str | Path, out_path: str | Path, strip_keys: frozenset[str]) -> Path:
    """Stream `src` to `out_path` (gzip if it ends with .gz), dropping the <category>
    elements of programmes whose title key is in `strip_keys`. Channels are kept."""
    return write_dump(src, out_path, lambda title: STRIP if eval_key(title) in strip_keys else KEEP)


def score_query(split: Split, query_key: str, answers: Sequence[str]) -> QueryScore:
    """The protocol's figures (P@10, AP@10, P@10x, own_series, dup) of one query's answers
    (display titles, best first); see `epgembed.eval.score.score_keys`."""
    query_cats = split.key_categories[query_key]
    return score_keys(query_key, [eval_key(a) for a in answers],
                      lambda key: bool(split.categories_of(key) & query_cats),
                      split.relevant_count(query_key),
                      lambda key: key in split.key_categories or key in split.prefix_categories)


def cut_score(split: Split, query_key: str, answers: Sequence[str], k: int = ASKED) -> QueryScore:
    """The figures of a ranking cut to one answer per series: each eval-series kept once,
    in order, then the first k scored as usual."""
    kept = one_per_series([eval_key(a) for a in answers])
    return score_query(split, query_key, [answers[i] for i in kept[:k]])


def ask(system: System, titles: list[str], k: int) -> list[list[str]]:
    """The system's answers to `titles` (its own ``asked`` answers each, if it has one)."""
    k = getattr(system, "asked", k)
    answers = system.query(titles, k) if titles else []
    if len(answers) != len(titles):
        raise ValueError(f"{system.name}: {len(answers)} answer lists for {len(titles)} queries")
    return [list(ans)[:k] for ans in answers]


def evaluate_split(split: Split, system: System, train_dump: Path, workdir: Path, k: int = ASKED,
                   *, cut: bool = False, per_query: dict[str, QueryScore] | None = None) -> dict:
    """Fit `system` on an already written training dump and score it on the split's queries.
    `cut`: also the figures of its ranking cut to one per series ("cut_" + figure; asked
    for CUT_ASKED answers in a second, untimed pass). `per_query`: filled with each test
    key's score (the cold-start table compares against them)."""
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    system.fit(train_dump, workdir)
    train_seconds = time.perf_counter() - t0
    keys = list(split.test_keys)
    titles = [split.queries[key] for key in keys]
    t0 = time.perf_counter()
    answers = ask(system, titles, k)
    query_seconds = time.perf_counter() - t0
    scores = [score_query(split, key, ans) for key, ans in zip(keys, answers)]
    if per_query is not None:
        per_query.update(zip(keys, scores))
    row = {"dump": dump_name(split.path), "system": system.name, "seed": split.seed,
           "n_items": split.n_items, "n_test": len(keys), **mean_scores(scores)}
    if cut:
        wide = system.query(titles, max(CUT_ASKED, getattr(system, "asked", k))) if titles else []
        cuts = [cut_score(split, key, ans, k) for key, ans in zip(keys, wide)]
        row.update({f"cut_{name}": value for name, value in mean_scores(cuts).items()})
    return {**row, "train_seconds": train_seconds, "query_seconds": query_seconds,
            "query_ms_per_title": 1000.0 * query_seconds / max(1, len(scores))}


def dump_name(path: str | Path) -> str:
    """File name without .gz / .xml suffixes: "au_freeview.xml.gz" -> "au_freeview"."""
    name = Path(path).name
    for suffix in (".gz", ".xml"):
        name = name.removesuffix(suffix)
    return name


@contextmanager
def prepared_splits(paths: Iterable[str | Path], seed: int,
                    workdir: str | Path | None = None) -> Iterator[Iterator[tuple[Split, Path, Path]]]:
    """(split, its folder, its training dump) of each dump, one at a time, in `workdir` or
    in a temporary folder removed on exit."""
    with tempfile.TemporaryDirectory(prefix="epgembed-eval-") as tmp:
        base = Path(workdir) if workdir is not None else Path(tmp)

        def each() -> Iterator[tuple[Split, Path, Path]]:
            for path in paths:
                split = split_dump(path, seed=seed)
                dump_dir = base / dump_name(path)
                dump_dir.mkdir(parents=True, exist_ok=True)
                yield split, dump_dir, split.write_training_dump(dump_dir / "train.xml")

        yield each()


def evaluate_dumps(paths: Iterable[str | Path], systems: Sequence[System], *, seed: int = 0,
                   k: int = ASKED, workdir: str | Path | None = None, cut: bool = False) -> list[dict]:
    """Run the protocol for every (dump, system); each dump is split and stripped once."""
    rows: list[dict] = []
    with prepared_splits(paths, seed, workdir) as splits:
        for split, dump_dir, train_dump in splits:
            for i, system in enumerate(systems):
                rows.append(evaluate_split(split, system, train_dump,
                                           dump_dir / f"{i:02d}-{system.name}", k, cut=cut))
    return rows


def evaluate_dump(path: str | Path, system: System, *, seed: int = 0, k: int = ASKED,
                  workdir: str | Path | None = None) -> dict:
    """Run the whole protocol for one dump and one system; see `evaluate_split` for the row."""
    return evaluate_dumps([path], [system], seed=seed, k=k, workdir=workdir)[0]


_TABLE = (("P@10", "p_at_10"), ("P@10x", "p_at_10x"), ("P@10d", "p_at_10d"),
          ("series_rep", "series_rep"), ("MAP@10", "map_at_10"), ("own_series", "own_series"),
          ("dup", "dup"), ("unmapped", "unmapped"))


def format_table(rows: Sequence[dict]) -> str:
    """Markdown table: one row per (dump, system) with every figure and the timings (and the
    P@10d of the ranking cut to one per series, when the rows have it)."""
    table = _TABLE + ((("cut P@10d", "cut_p_at_10d"),) if rows and "cut_p_at_10d" in rows[0] else ())
    head = ["dump", "system"] + [label for label, _ in table] + ["train s", "query ms/title"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["dump"], r["system"]] + [f"{r[key]:.3f}" for _, key in table]
        cells += [f"{r['train_seconds']:.1f}", f"{r['query_ms_per_title']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
