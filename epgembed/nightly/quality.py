"""What the nightly run measures: held-out quality, neighbour stability, catalog changes,
and the warm-start table.

Held-out quality follows docs/EVALUATION.md (epgembed.eval.evaluate: its own title key,
informative categories, scoring) with one deliberate difference in *which* keys are held
out: a key is a test key when a seeded hash of it falls in the lowest `fraction` of the
range, instead of a seeded sample of tonight's keys. The held-out keys are then the same
every night, their categories are stripped from every night's training input, and so no
version ever saw their labels: the new model and the current one are compared on equal
terms on tonight's split. (With a per-night sample, the current version would have been
trained on the labels of many of tonight's test keys from the overlapping earlier dumps.)
"""
from __future__ import annotations

import dataclasses
import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from epgembed.artifact.catalog import Catalog
from epgembed.build.ingest.epg import Programme
from epgembed.eval.evaluate import ASKED, Split, eval_key, most_frequent_spelling, score_query, split_pairs
from epgembed.eval.score import QueryScore, mean_scores
from epgembed.query.vectors import nearest_others
from epgembed.query.related import RelatedModel
from epgembed.text.tokenize import Tokenizer


# ---------------------------------------------------------------- held-out split
def in_holdout(key: str, seed: int, fraction: float) -> bool:
    """Stable, seeded membership of an evaluation key in the held-out share."""
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * 2.0 ** 64


def holdout_split(programmes: Sequence[Programme], tonight: Sequence[Programme], seed: int,
                  fraction: float, label: str = "nightly") -> Split:
    """The EVALUATION.md split over everything the model serves (history + tonight, so an
    answer that only the history knows is judged by its categories instead of counting as
    "maps to nothing"), with tonight's held-out keys as the test keys, each queried by its
    most frequent spelling tonight."""
    full = split_pairs(((p.title, p.categories) for p in programmes), label, seed, 1.0)
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for p in tonight:
        spellings[eval_key(p.title)][p.title] += 1
    test = tuple(k for k in full.test_keys if k in spellings and in_holdout(k, seed, fraction))
    return dataclasses.replace(full, test_keys=test,
                               queries={k: most_frequent_spelling(spellings[k]) for k in test})


def strip_holdout(programmes: Iterable[Programme], seed: int, fraction: float) -> list[Programme]:
    """Programmes with the categories of held-out titles removed (protocol step 4)."""
    held: dict[str, bool] = {}  # per distinct title: eval_key is the costly part
    out = []
    for p in programmes:
        if p.categories:
            if p.title not in held:
                held[p.title] = in_holdout(eval_key(p.title), seed, fraction)
            if held[p.title]:
                p = dataclasses.replace(p, categories=())
        out.append(p)
    return out


# ---------------------------------------------------------------- scoring
def _pooled(rows: list[QueryScore]) -> dict:
    means = mean_scores(rows)
    return {**{name: round(value, 4) if rows else None for name, value in means.items()},
            "n_test": len(rows)}


def score_answers(splits: Sequence[Split], answer_lists: Sequence[list[list[str]]]) -> dict:
    """P@10, MAP@10, P@10x, own_series and dup pooled over every split's queries (answers
    in test_keys order)."""
    rows = []
    for split, answers in zip(splits, answer_lists):
        rows += [score_query(split, key, ans[:ASKED]) for key, ans in zip(split.test_keys, answers)]
    return _pooled(rows)


def queries_of(split: Split) -> list[str]:
    return [split.queries[k] for k in split.test_keys]


def evaluate_model(model: RelatedModel, splits: Sequence[Split]) -> dict:
    return score_answers(splits, [model.related_titles(queries_of(s), ASKED) for s in splits])


def random_answers(titles: list[str], splits: Sequence[Split], seed: int) -> dict:
    """The random baseline on the same split: the floor a trained model must clear."""
    rng = random.Random(seed)
    pool = sorted(set(titles))
    n = min(len(pool), ASKED + 1)
    answers = [[[t for t in rng.sample(pool, n) if t != q][:ASKED] for q in queries_of(s)]
               for s in splits]
    return score_answers(splits, answers)


# ---------------------------------------------------------------- stability
def _mean_jaccard(a: list[set], b: list[set]) -> float | None:
    vals = [len(x & y) / len(x | y) for x, y in zip(a, b) if x or y]
    return round(float(np.mean(vals)), 4) if vals else None


def neighbour_stability(old_keys: list[str], old_vecs: np.ndarray, new_keys: list[str],
                        new_vecs: np.ndarray, k: int = 10, *, old_table: np.ndarray | None = None,
                        new_table: np.ndarray | None = None) -> dict:
    """Mean Jaccard overlap of top-k neighbours of the shows both versions know.

    `common`: neighbours searched among the common shows only, i.e. how much the model
    reshuffled; `served`: neighbours as each version serves them (arrivals and departures
    of shows count as changes). Both are read from each version's neighbour table
    (ids [S, K], model.neighbours[0]) where given, by exact search where a row is too short.
    """
    old_id = {key: i for i, key in enumerate(old_keys)}
    both = [key for key in new_keys if key in old_id]
    result = {"k": k, "shows_in_both": len(both), "common": None, "served": None}
    if len(both) < 2:
        return result
    new_id = {key: i for i, key in enumerate(new_keys)}
    oi = np.array([old_id[x] for x in both])
    ni = np.array([new_id[x] for x in both])
    old_vecs, new_vecs = np.asarray(old_vecs), np.asarray(new_vecs)
    for name, among in (("common", (oi, ni)), ("served", (None, None))):
        old_top = nearest_others(old_vecs, k, table=old_table, rows=oi, among=among[0])
        new_top = nearest_others(new_vecs, k, table=new_table, rows=ni, among=among[1])
        result[name] = _mean_jaccard([{old_keys[j] for j in r} for r in old_top],
                                     [{new_keys[j] for j in r} for r in new_top])
    return result


# ---------------------------------------------------------------- catalog changes
def catalog_changes(old: Catalog | None, new: Catalog, sample: int = 20) -> dict:
    """Shows added, dropped and with changed categories, new vs old (by show key)."""
    new_by = {s.key: s for s in new.shows}
    if old is None:
        return {"baseline": None, "added": len(new_by), "dropped": 0, "categories_changed": 0,
                "examples": {}}
    old_by = {s.key: s for s in old.shows}
    added = sorted(new_by.keys() - old_by.keys())
    dropped = sorted(old_by.keys() - new_by.keys())
    changed = sorted(k for k in new_by.keys() & old_by.keys()
                     if set(new_by[k].categories) != set(old_by[k].categories))
    return {"added": len(added), "dropped": len(dropped), "categories_changed": len(changed),
            "examples": {
                "added": [new_by[k].title for k in added[:sample]],
                "dropped": [old_by[k].title for k in dropped[:sample]],
                "categories_changed": [
                    {"title": new_by[k].title, "old": sorted(old_by[k].categories),
                     "new": sorted(new_by[k].categories)} for k in changed[:sample]]}}


# ---------------------------------------------------------------- warm start
def token_names(tok: Tokenizer) -> list[str]:
    return [tok.token_name(i) for i in range(tok.vocab_size)]


def warm_start_table(new_tok: Tokenizer, old_tok: Tokenizer, old_emb: np.ndarray,
                     init_std: float, seed: int) -> tuple[np.ndarray, int]:
    """A [V, D] init table: old rows for tokens the old model knew (matched by token
    string, since tonight's tokenizer is trained afresh), seeded small noise for new ones.
    Returns (table, number of tokens carried over)."""
    dim = old_emb.shape[1]
    old_row = {name: i for i, name in enumerate(token_names(old_tok)) if i}
    rng = np.random.default_rng(seed)
    table = rng.normal(0.0, init_std, size=(new_tok.vocab_size, dim)).astype(np.float32)
    table[0] = 0.0
    pairs = [(i, old_row[n]) for i, n in enumerate(token_names(new_tok)) if i and n in old_row]
    if pairs:
        new_ids, old_ids = map(np.array, zip(*pairs))
        table[new_ids] = np.asarray(old_emb, dtype=np.float32)[old_ids]
    return table, len(pairs)
