"""Scoring of one query's answers (docs/EVALUATION.md, "Score"), on evaluation keys.

Pure functions of keys: `epgembed.eval.evaluate` maps the answers' display titles to its own
title key (`eval_key`) and knows which keys are relevant; this module imports nothing of
the project, so that, like the rest of the protocol, the figures do not move when the
project's normalization changes.

    score = score_keys("der bergdoktor: x", answer_keys, is_relevant, n_relevant)
    score.p_at_10, score.ap_at_10, score.p_at_10x, score.own_series, score.dup
    mean_scores([score, ...])  # {"p_at_10": ..., "map_at_10": ..., "p_at_10x": ..., ...}
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

SCORED = 10  # answers scored per query (P@10, MAP@10, P@10x, own_series, dup)
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
    own_series: float  # share of the 10 scored answers of the query's own series
    dup: float  # share of the 10 scored answers that repeat an earlier answer
    unmapped: float = 0.0  # share of the 10 scored answers that are no title the dump aired


# pooled figure name (the rows' JSON keys) -> QueryScore field averaged into it
POOLED_FIGURES = {"p_at_10": "p_at_10", "map_at_10": "ap_at_10", "p_at_10x": "p_at_10x",
                  "own_series": "own_series", "dup": "dup", "unmapped": "unmapped"}


def score_keys(query_key: str, answer_keys: Sequence[str], is_relevant: Callable[[str], bool],
               n_relevant: int, maps: Callable[[str], bool] | None = None) -> QueryScore:
    """Score one query's answers (evaluation keys, best first).

    P@10 / AP@10 / own_series / dup are over the first 10 answers that are not the
    query's same show; P@10x over the first 10 that are neither the same show, nor of
    its own series, nor a repeat. An answer is a repeat when its `squashed` key equals
    that of any earlier answer in the list (skipped ones included). `maps(key)`: whether
    the answer is a title of the dump (or a series prefix of some); unmapped counts the
    scored answers that are not.
    """
    seen: set[str] = set()
    scored: list[tuple[str, bool, bool]] = []  # (key, own series, repeat)
    distinct: list[str] = []
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
        if len(scored) >= SCORED and len(distinct) >= SCORED:
            break
    relevant = [is_relevant(key) for key, _, _ in scored]
    return QueryScore(
        p_at_10=precision_at_k(relevant),
        ap_at_10=average_precision_at_k(relevant, n_relevant),
        p_at_10x=precision_at_k([is_relevant(key) for key in distinct[:SCORED]]),
        own_series=sum(1 for _, own, _ in scored if own) / SCORED,
        dup=sum(1 for _, _, repeat in scored if repeat) / SCORED,
        unmapped=sum(1 for key, _, _ in scored if maps is not None and not maps(key)) / SCORED,
    )


def mean_scores(scores: Sequence[QueryScore]) -> dict[str, float]:
    """Every figure of `POOLED_FIGURES` averaged over the queries (0.0 when there are none)."""
    n = max(1, len(scores))
    return {name: sum(getattr(s, attr) for s in scores) / n
            for name, attr in POOLED_FIGURES.items()}
