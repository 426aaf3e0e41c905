"""The cold-start protocol of EVALUATION.md ("Cold start: titles the model has never seen").

The standard split, and a second training file, train_cold: the dump without any programme
whose title has a test key (the model never sees those titles, their channels or their
descriptions). Each test title is then queried three ways, as a client would ask:

    text        the title as typed (`System.query`)
    context     with the channel, start and duration of its most frequent airing in the
                full dump (`System.query_context`)
    programme   with everything the guide says about that airing but its categories
                (`System.query_programmes`)

A system answers the modes it has methods for (a text-only system: text). Every mode is
scored over all test titles and over the *new series*: those whose series (score.series_head)
has no title left in train_cold. A "warm" row gives the same titles' figures from the
standard protocol (the system trained with them), which the context modes are held against.

    rows, cold = evaluate_with_cold_start(paths, systems, cold_systems, seed=7)
    print(format_cold_table(cold))
"""
from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from epgembed.eval.evaluate import (ASKED, Split, System, dump_name, eval_key, evaluate_split,
                                    prepared_splits, score_query)
from epgembed.eval.score import QueryScore, mean_scores, series_head
from epgembed.eval.xmltv import DROP, KEEP, Airing, iter_guide, iter_programmes, write_dump

MODES = ("text", "context", "programme")
WARM = "warm"  # the mode name of the standard protocol's figures for the same titles
_STAMP = re.compile(r"\s*(\d{12})(\d{2})?\s*([+-]\d{4})?")


def write_cold_dump(split: Split, out_path: str | Path) -> Path:
    """train_cold: the split's dump without any programme whose title has a test key."""
    test = frozenset(split.test_keys)
    return write_dump(split.path, out_path, lambda title: DROP if eval_key(title) in test else KEEP)


def new_series(split: Split, cold_dump: Path) -> frozenset[str]:
    """The test keys whose series has no title left in `cold_dump` (which must hold no
    programme of a test title: ValueError names one that it does)."""
    test = frozenset(split.test_keys)
    left: set[str] = set()
    for title, _ in iter_programmes(cold_dump):
        key = eval_key(title)
        if key in test:
            raise ValueError(f"{cold_dump}: test title {title!r} is still in train_cold")
        left.add(series_head(key))
    return frozenset(key for key in test if series_head(key) not in left)


def _utc(stamp: str) -> datetime | None:
    """An XMLTV time ("20220723201500 +0200") in UTC (as written when it has no offset)."""
    m = _STAMP.match(stamp or "")
    if m is None:
        return None
    try:
        t = datetime.strptime(m[1] + (m[2] or "00"), "%Y%m%d%H%M%S")
    except ValueError:
        return None
    if m[3]:
        sign = 1 if m[3][0] == "+" else -1
        t -= sign * timedelta(hours=int(m[3][1:3]), minutes=int(m[3][3:5]))
    return t


def minutes_of(airing: Airing) -> float | None:
    """The airing's duration in minutes (stop - start), None when unknown or not positive."""
    start, stop = _utc(airing.start), _utc(airing.stop)
    if start is None or stop is None or stop <= start:
        return None
    return (stop - start).total_seconds() / 60


def _start(airing: Airing) -> str | None:
    """The start as a query carries it, YYYYmmddHHMM on the guide's own clock, or None."""
    m = _STAMP.match(airing.start)
    if m is None:
        return None
    try:
        datetime.strptime(m[1], "%Y%m%d%H%M")
    except ValueError:
        return None
    return m[1]


def query_airings(split: Split) -> dict[str, Airing]:
    """Each test key's most frequent airing in the full dump: the first airing of the
    (channel, time of day, duration) its airings have most often (ties: the one seen first)."""
    test = frozenset(split.test_keys)
    counts: dict[str, Counter] = {}
    first: dict[tuple, Airing] = {}
    for airing in iter_guide(split.path):
        key = eval_key(airing.title)
        if key not in test:
            continue
        slot = (key, airing.channel, (_start(airing) or "")[8:], minutes_of(airing))
        counts.setdefault(key, Counter())[slot] += 1
        first.setdefault(slot, airing)
    return {key: first[c.most_common(1)[0][0]] for key, c in counts.items()}


def _drop_empty(fields: dict) -> dict:
    return {name: value for name, value in fields.items() if value not in (None, "", [])}


def context_query(title: str, airing: Airing | None) -> dict:
    """Mode 2: the title with the channel, start (YYYYmmddHHMM) and duration (minutes)."""
    if airing is None:
        return {"title": title}
    return _drop_empty({"title": title, "channel": airing.channel, "start": _start(airing),
                        "duration": minutes_of(airing)})


def programme_query(title: str, airing: Airing | None) -> dict:
    """Mode 3: the title with everything the guide says about the airing but its categories
    (the fields of epgembed.query.shapes.ProgrammeQuery)."""
    if airing is None:
        return {"title": title}
    year = airing.date[:4]
    return {**context_query(title, airing), **_drop_empty({
        "sub_title": airing.sub_title, "desc": airing.desc, "credits": list(airing.credits),
        "year": int(year) if year.isascii() and year.isdigit() and len(year) == 4 else None,
        "country": airing.country, "rating": airing.rating, "episode_num": airing.episode_num})}


def _row(split: Split, system: str, mode: str, scores: dict[str, QueryScore],
         new: frozenset[str], **timings: float) -> dict:
    """One (system, mode) row: every figure over all test keys and over the new series."""
    news = [s for key, s in scores.items() if key in new]
    return {"dump": dump_name(split.path), "system": system, "mode": mode, "seed": split.seed,
            "n_test": len(scores), "n_new": len(news), "all": mean_scores(list(scores.values())),
            "new": mean_scores(news), **timings}


def _modes(system: System, split: Split, airings: dict[str, Airing]) -> Iterable[tuple[str, object]]:
    """(mode, the call that answers every test key in it) for each mode the system has."""
    keys = list(split.test_keys)
    titles = [split.queries[key] for key in keys]
    yield "text", lambda k: system.query(titles, k)
    if hasattr(system, "query_context"):
        queries = [context_query(t, airings.get(key)) for key, t in zip(keys, titles)]
        yield "context", lambda k: system.query_context(queries, k)
    if hasattr(system, "query_programmes"):
        programmes = [programme_query(t, airings.get(key)) for key, t in zip(keys, titles)]
        yield "programme", lambda k: system.query_programmes(programmes, k)


def cold_start_rows(split: Split, dump_dir: Path, systems: Sequence[System],
                    warm: dict[str, dict[str, QueryScore]] | None = None, k: int = ASKED) -> list[dict]:
    """Fit each system on train_cold and score every mode it answers; plus a "warm" row
    for each system whose standard-protocol scores `warm` holds (system name -> key -> score)."""
    cold_dump = write_cold_dump(split, dump_dir / "train_cold.xml")
    new = new_series(split, cold_dump)
    airings = query_airings(split)
    keys = list(split.test_keys)
    rows = []
    for i, system in enumerate(systems):
        workdir = dump_dir / f"cold-{i:02d}-{system.name}"
        workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        system.fit(cold_dump, workdir)
        train_seconds = time.perf_counter() - t0
        for mode, answer in _modes(system, split, airings):
            asked = getattr(system, "asked", k)
            t0 = time.perf_counter()
            answers = answer(asked) if keys else []
            query_seconds = time.perf_counter() - t0
            if len(answers) != len(keys):
                raise ValueError(f"{system.name} ({mode}): {len(answers)} answer lists for {len(keys)} queries")
            scores = {key: score_query(split, key, list(ans)[:asked]) for key, ans in zip(keys, answers)}
            rows.append(_row(split, system.name, mode, scores, new, train_seconds=train_seconds,
                             query_ms_per_title=1000.0 * query_seconds / max(1, len(keys))))
        if warm and system.name in warm:
            rows.append(_row(split, system.name, WARM, warm[system.name], new))
    return rows


def evaluate_with_cold_start(paths: Iterable[str | Path], systems: Sequence[System],
                             cold_systems: Sequence[System], *, seed: int = 0, k: int = ASKED,
                             workdir: str | Path | None = None, cut: bool = False) -> tuple[list[dict], list[dict]]:
    """The standard protocol's rows (evaluate.evaluate_dumps) and the cold-start rows of
    every dump, each dump split once; a cold system also in `systems` (by name) gets its
    warm row from the standard run."""
    rows: list[dict] = []
    cold: list[dict] = []
    with prepared_splits(paths, seed, workdir) as splits:
        for split, dump_dir, train_dump in splits:
            warm: dict[str, dict[str, QueryScore]] = {}
            for i, system in enumerate(systems):
                rows.append(evaluate_split(split, system, train_dump, dump_dir / f"{i:02d}-{system.name}",
                                           k, cut=cut, per_query=warm.setdefault(system.name, {})))
            cold += cold_start_rows(split, dump_dir, cold_systems, warm, k)
    return rows, cold


_COLD_FIGURES = (("P@10x", "p_at_10x"), ("P@10d", "p_at_10d"), ("series_rep", "series_rep"))


def format_cold_table(rows: Sequence[dict]) -> str:
    """Markdown: one line per (dump, system, mode), the figures over all test titles and
    over the new series."""
    head = ["dump", "system", "mode", "n"] + [label for label, _ in _COLD_FIGURES]
    head += ["new n"] + [f"new {label}" for label, _ in _COLD_FIGURES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["dump"], r["system"], r["mode"], str(r["n_test"])]
        cells += [f"{r['all'][key]:.3f}" for _, key in _COLD_FIGURES] + [str(r["n_new"])]
        cells += [f"{r['new'][key]:.3f}" if r["n_new"] else "-" for _, key in _COLD_FIGURES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
