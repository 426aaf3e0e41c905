"""Scoring of one query's answers (docs/EVALUATION.md, "Score"), on evaluation keys.

Pure functions of keys: `epgembed.eval.evaluate` maps the answers' display titles to its own
title key (`eval_key`) and knows which keys are relevant; this module imports nothing of
the project, so that, like the rest of the protocol, the figures do not move when the
project's normalization changes.

    score = score_keys("der bergdoktor: x", answer_keys, is_relevant, n_relevant)
    score.p_at_10, score.ap_at_10, score.p_at_10x, score.p_at_10d, score.series_rep, ...
    mean_scores([score, ...])  # {"p_at_10": ..., "map_at_10": ..., "p_at_10x": ..., ...}
    one_per_series(answer_keys)  # each series once, in order (the "cut" of a ranking)
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

SCORED = 10  # answers scored per query (P@10, MAP@10, P@10x, P@10d, own_series, dup, series_rep)
_SERIES_SEPARATORS = (":", " - ")


def series_cuts(key: str) -> set[str]:
    """The key cut at its first ``:`` and at its first `` - `` (empty cuts dropped)."""
    cuts = set()
    for sep in _SERIES_SEPARATORS:
        head, found, _ = key.partition(sep)
        head = head.strip()
        if found and head and head != key:
            cuts.add(head)
    return cuts


def same_show(answer_key: str, query_key: str) -> bool:
    """True if the answer is the query's own show: same key, or the query key cut at `:`/` - `."""
    return answer_key == query_key or answer_key in series_cuts(query_key)


def series_head(key: str) -> str:
    """The key's part before its first ``:`` or `` - `` (ends trimmed), or the whole key
    when it has neither (or nothing stands before the separator).

    >>> series_head("star trek - deep space nine: emissary")
    'star trek'
    """
    cuts = [i for i in (key.find(sep) for sep in _SERIES_SEPARATORS) if i >= 0]
    head = key[: min(cuts)].strip() if cuts else ""
    return head or key


def own_series(answer_key: str, query_key: str) -> bool:
    """True if the answer belongs to the query's own series: both keys have the same
    `series_head`, or the answer's key is the query's key followed by ``:`` or `` - ``."""
    return series_head(answer_key) == series_head(query_key) or any(
        answer_key.startswith(query_key + sep) for sep in _SERIES_SEPARATORS
    )


def squashed(key: str) -> str:
    """The key with every character that is not a letter or digit removed (repeat test)."""
    return "".join(ch for ch in key if ch.isalnum())


def precision_at_k(relevant: Sequence[bool], k: int = SCORED) -> float:
    """Relevant answers among the first k, divided by k (missing answers count as misses)."""
    return sum(1 for r in relevant[:k] if r) / k


def average_precision_at_k(relevant: Sequence[bool], n_relevant: int, k: int = SCORED) -> float:
    """Sum of precision at each relevant rank among the first k, / min(k, n_relevant).

    When more answers are relevant than relevant keys exist (duplicate spellings of one
    key, series-prefix answers), the divisor is raised to the number of hits so AP <= 1.
    """
    hits, total = 0, 0.0
    for rank, rel in enumerate(relevant[:k], start=1):
        if rel:
            hits += 1
            total += hits / rank
    denominator = min(k, max(n_relevant, hits))
    return total / denominator if denominator else 0.0


@dataclass(frozen=True)
class QueryScore:
    """The protocol's figures for one query (each in [0, 1])."""

    p_at_10: float
    ap_at_10: float
    p_at_10x: float  # P@10 with own-series answers and repeats skipped like the same show
    p_at_10d: float  # P@10x with answers of a series already listed skipped too
    own_series: float  # share of the 10 scored answers of the query's own series
    dup: float  # share of the 10 scored answers that repeat an earlier answer
    series_rep: float  # share of P@10x's 10 answers whose series is already among them
    unmapped: float = 0.0  # share of the 10 scored answers that are no title the dump aired


# pooled figure name (the rows' JSON keys) -> QueryScore field averaged into it
POOLED_FIGURES = {"p_at_10": "p_at_10", "map_at_10": "ap_at_10", "p_at_10x": "p_at_10x",
                  "p_at_10d": "p_at_10d", "own_series": "own_series", "dup": "dup",
                  "series_rep": "series_rep", "unmapped": "unmapped"}


def score_keys(query_key: str, answer_keys: Sequence[str], is_relevant: Callable[[str], bool],
               n_relevant: int, maps: Callable[[str], bool] | None = None) -> QueryScore:
    """Score one query's answers (evaluation keys, best first).

    P@10 / AP@10 / own_series / dup are over the first 10 answers that are not the
    query's same show; P@10x and series_rep over the first 10 that are neither the same
    show, nor of its own series, nor a repeat; P@10d over the first 10 of those whose
    `series_head` is not yet listed (one answer per series). An answer is a repeat when
    its `squashed` key equals that of any earlier answer in the list (skipped ones
    included). `maps(key)`: whether the answer is a title of the dump (or a series prefix
    of some); unmapped counts the scored answers that are not.
    """
    seen: set[str] = set()
    scored: list[tuple[str, bool, bool]] = []  # (key, own series, repeat)
    distinct: list[str] = []
    heads: set[str] = set()  # series listed among the distinct answers
    one_each: list[str] = []  # distinct answers of a series not listed before
    rep = 0  # series repeats among the first 10 distinct answers
    for key in answer_keys:
        flat = squashed(key)
        repeat = flat in seen
        seen.add(flat)
        if same_show(key, query_key):
            continue
        own = own_series(key, query_key)
        if len(scored) < SCORED:
            scored.append((key, own, repeat))
        if not (own or repeat):
            distinct.append(key)
            head = series_head(key)
            if head in heads:
                rep += len(distinct) <= SCORED
            else:
                heads.add(head)
                one_each.append(key)
        if len(scored) >= SCORED and len(distinct) >= SCORED and len(one_each) >= SCORED:
            break
    relevant = [is_relevant(key) for key, _, _ in scored]
    return QueryScore(
        p_at_10=precision_at_k(relevant),
        ap_at_10=average_precision_at_k(relevant, n_relevant),
        p_at_10x=precision_at_k([is_relevant(key) for key in distinct[:SCORED]]),
        own_series=sum(1 for _, own, _ in scored if own) / SCORED,
        dup=sum(1 for _, _, repeat in scored if repeat) / SCORED,
        unmapped=sum(1 for key, _, _ in scored if maps is not None and not maps(key)) / SCORED,
        p_at_10d=precision_at_k([is_relevant(key) for key in one_each[:SCORED]]),
        series_rep=rep / SCORED,
    )


def one_per_series(answer_keys: Sequence[str]) -> list[int]:
    """Positions of the answers that are the first of their `series_head`, in order: a
    ranking cut to one answer per series (the baseline P@10d is compared against)."""
    heads: set[str] = set()
    keep = []
    for i, key in enumerate(answer_keys):
        head = series_head(key)
        if head not in heads:
            heads.add(head)
            keep.append(i)
    return keep


def mean_scores(scores: Sequence[QueryScore]) -> dict[str, float]:
    """Every figure of `POOLED_FIGURES` averaged over the queries (0.0 when there are none)."""
    n = max(1, len(scores))
    return {name: sum(getattr(s, attr) for s in scores) / n
            for name, attr in POOLED_FIGURES.items()}
