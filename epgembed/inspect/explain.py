"""Why is Y among the neighbours of X? Leave-one-token-out explanations (numpy only).

    explain_pair(model, "Tatort", "Polizeiruf 110")      # titles (known or unseen) or catalog ids
    inspect_title(model, "Tatort", k=20)                  # X's neighbours, each explained
    compare_title(model, other_model, "Tatort", k=20)     # e.g. trained with / without inv-freq

The math of a pair's scores without each token is in loo.py (`leave_one_out`), for the CLI,
the HTML report, the outlier scan and the service alike; this module makes the two sides of
a pair (their tokens, words and parts) and the explanation's records.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from epgembed.config import InspectConfig
from epgembed.inspect.loo import EPS, LeaveOneOut, collapse, leave_one_out, title_stats, token_rows
from epgembed.query.vectors import title_vectors
from epgembed.query.errors import QueryError
from epgembed.query.related import RelatedModel, check_title
from epgembed.query.requests import Options
from epgembed.text.features import KINDS, kind_of
from epgembed.text.tokenize import Tokenizer, token_text, words_of


def model_center(model: RelatedModel) -> np.ndarray | None:
    center = getattr(model, "center", None)
    return None if center is None else np.asarray(center, dtype=np.float64)


def broad_categories(model: RelatedModel) -> set[str]:
    """Categories on too many shows to say anything (the model's own max_category_share)."""
    share = model.config.catalog.max_category_share
    return model.catalog.broad_categories(float(share))


# ------------------------------------------------------------------------ one title
@dataclass
class Side:
    """One side of a pair: a catalog show (id) or unseen text, and its tokens."""
    text: str
    id: int | None
    ids: list[int]
    surfaces: list[str]
    weights: list[float]         # 1 for title tokens; < 1 for description context words
    categories: list[str]
    informative: list[str]
    words: list[str]             # the words of its key (what its text tokens spell)
    parts: list[tuple[str, int | None, str | None]]   # per token: token_parts
    feedback: list[int]          # unseen text: the catalog titles its vector moved toward

    def to_json(self) -> dict:
        return {"text": self.text, "id": self.id, "known": self.id is not None,
                "categories": self.categories, "informative_categories": self.informative,
                "words": self.words}


def piece_words(tok: Tokenizer, spans: list[tuple[int, int]], piece_ids: list[int]) -> list[int | None]:
    """The key word (index into `spans`, its words' [start, end)) each sentencepiece piece of
    the key is part of. A piece spans the text it adds to what its predecessors decode to (a
    "▁" is the space before a word; a byte piece decodes to its character). Punctuation goes
    with the word before it in its chunk ("tatort:", "9-1-1"), a lone "▁" with the word after."""
    if not piece_ids:
        return []
    ends = [len(tok.sp.DecodeIds([p - 1 for p in piece_ids[:j]])) for j in range(len(piece_ids) + 1)]
    full = tok.sp.DecodeIds([p - 1 for p in piece_ids])
    out: list[int | None] = []
    for j, i in enumerate(piece_ids):
        at, text = ends[j], full[ends[j]: ends[j + 1]]
        later = next((k for k, (_, e) in enumerate(spans) if e > at), None)
        if not tok.token_name(i).startswith("▁") and not any(c.isalnum() for c in text):
            later = next((k for k in range(len(spans) - 1, -1, -1) if spans[k][0] < at), later)
        out.append(later if later is not None else (len(spans) - 1 if spans else None))
    return out


def token_parts(tok: Tokenizer, key: str, ids: list[int]) -> tuple[list[str], list[tuple]]:
    """The words of a title's key and, per token of its bag `ids`, (kind, word, feature).

    The bag is the key's tokens (Tokenizer.encode: pieces, then whole words), then for a
    catalog title its description words and guide features (Tokenizer.item_tokens), for a
    query its words' character n-grams (Tokenizer.query_tokens). kind: "piece" (word: the
    key word it is part of; pieces of one word share it), "word" (a whole-word token; word:
    which one), "ngram" (word: the first word that has it), "context" (a description word)
    or "feature" (feature: its kind, features.KINDS). `word` indexes the returned words.
    """
    words, spans, pos = words_of(key), [], 0
    for w in words:                                     # words_of gives substrings, in order
        pos = key.find(w, pos)
        spans.append((pos, pos + len(w)))
        pos += len(w)
    n_title = len(tok.encode(key)) if key else 0
    first_ngram = 1 + tok.n_pieces + len(tok.words)
    first_feature = first_ngram + len(tok.ngrams)
    of_piece = iter(piece_words(tok, spans, [i for i in ids[:n_title] if 0 < i <= tok.n_pieces]))
    out: list[tuple] = []
    next_word = 0
    for j, i in enumerate(ids):
        if i >= first_feature:
            out.append(("feature", None, kind_of(tok.features[i - first_feature])))
        elif i >= first_ngram:
            gram = tok.ngrams[i - first_ngram].strip("<>")
            out.append(("ngram", next((k for k, w in enumerate(words) if gram in w), None), None))
        elif j >= n_title:
            out.append(("context", None, None))
        elif i <= tok.n_pieces:
            out.append(("piece", next(of_piece), None))
        else:                                           # whole words come in the key's order
            w = tok.words[i - 1 - tok.n_pieces]
            k = next((k for k in range(next_word, len(words)) if words[k] == w), None)
            next_word = next_word if k is None else k + 1
            out.append(("word", k, None))
    return words, out


def show_tokens(model: RelatedModel, show) -> list[tuple[int, str, float]]:
    """(id, surface, weight) a catalog show's stored vector was summed from: the tokens of its
    key, plus weighted description words when the model keeps description context."""
    item_tokens = getattr(model, "item_tokens", None)
    if item_tokens is not None:
        return [(int(i), s, float(w)) for i, s, w in item_tokens(show.id)]
    return [(i, s, 1.0) for i, s in model.tokenizer.tokens(show.key)]


def side_of(model: RelatedModel, title_or_id: str | int, broad: set[str]) -> Side:
    """Resolve a catalog id or a title (a known title means its show, as in `related`)."""
    if isinstance(title_or_id, (int, np.integer)):
        show_id: int | None = model.check_id(int(title_or_id))
    else:
        check_title(str(title_or_id))       # the same refusal as related(): "!!!" is no title
        show_id = model.resolve(str(title_or_id))
    if show_id is None:
        text, cats = str(title_or_id), []
        ids, weights = model.query_tokens(text)
        key, toks = token_text(text), [(i, model.tokenizer.token_name(i), w) for i, w in zip(ids, weights)]
    else:
        show = model.catalog.shows[show_id]
        text, key, cats, toks = show.title, show.key, show.category_list(), show_tokens(model, show)
    if not toks:
        raise QueryError(f"{text!r} has no tokens after normalization")
    ids = [i for i, _, _ in toks]
    words, parts = token_parts(model.tokenizer, key, ids)
    feedback = [] if show_id is not None else model.feedback(model.vector_of(ids, [w for _, _, w in toks]))[1]
    return Side(text, show_id, ids, [s for _, s, _ in toks], [w for _, _, w in toks], cats,
                [c for c in cats if c not in broad], words, parts, feedback)


def padded(seqs: list[list], dtype=np.int64) -> np.ndarray:
    out = np.zeros((len(seqs), max([1] + [len(s) for s in seqs])), dtype=dtype)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


def token_records(model: RelatedModel, side: Side, without: np.ndarray, share: np.ndarray,
                score: float, cfg: InspectConfig) -> list[dict]:
    out = []
    for j, (tid, surface, weight) in enumerate(zip(side.ids, side.surfaces, side.weights)):
        count = int(model.token_counts[tid])
        kind, word, feature = side.parts[j]
        out.append({"position": j, "id": int(tid), "token": surface, "weight": weight, "count": count,
                    "rare": count <= cfg.rare_max_count,
                    "without": round(float(without[j]), 6),
                    "drop": round(score - float(without[j]), 6),
                    "share": round(float(share[j]), 6),
                    "kind": kind, "word": word, "feature": feature})
    return out


PARTS = ("text", "context", *KINDS)   # "text": the title's own pieces and words


def carried_by(rx: list[dict], ry: list[dict]) -> list[dict]:
    """The shares of the pair's tokens summed by part (text, context, each feature kind), per
    side: each side's parts plus its center_share sum to the score. Parts neither side has
    are left out; in PARTS order."""
    sums: dict[str, dict[str, float]] = {}
    for side, ts in (("title", rx), ("neighbor", ry)):
        for t in ts:
            part = t["feature"] if t["kind"] == "feature" else ("context" if t["kind"] == "context" else "text")
            sums.setdefault(part, {"title": 0.0, "neighbor": 0.0})[side] += t["share"]
    order = sorted(sums, key=lambda p: PARTS.index(p) if p in PARTS else len(PARTS))
    return [{"part": p, "title": round(sums[p]["title"], 6), "neighbor": round(sums[p]["neighbor"], 6)}
            for p in order]


def explain_sides(model: RelatedModel, x: Side, ys: list[Side], cfg: InspectConfig) -> list[dict]:
    """Explain the pairs (x, y) for every y: two batched `leave_one_out` calls."""
    if not ys:
        return []
    tx, ty = padded([x.ids]), padded([y.ids for y in ys])
    wx, wy = padded([x.weights], np.float64), padded([y.weights for y in ys], np.float64)
    c = model_center(model)
    rx, ry = token_rows(model.embeddings, tx, wx), token_rows(model.embeddings, ty, wy)
    vx, vy = (title_vectors(model.embeddings, t, w, c) for t, w in ((tx, wx), (ty, wy)))  # [1,D], [K,D]
    fwd, fb, vx = with_feedback(model, x, rx, tx != 0, vx, vy, c)               # x's tokens
    back = leave_one_out(ry, ty != 0, np.repeat(vx[:, None, :], len(ys), 0), c)
    out = []
    for k, y in enumerate(ys):
        score = float(fwd.score[0, k])
        tx_rec = token_records(model, x, fwd.without[0, :, k], fwd.share[0, :, k], score, cfg)
        ty_rec = token_records(model, y, back.without[k, :, 0], back.share[k, :, 0], score, cfg)
        e = pair_json(x, y, score, tx_rec, ty_rec, cfg)
        e["center_share"] = {"title": round(float(fwd.center[0, k]), 6),
                             "neighbor": round(float(back.center[k, 0]), 6)}
        e["feedback"] = {"titles": x.feedback, "share": round(float(fb[k]), 6)}
        out.append(e)
    return out


def with_feedback(model: RelatedModel, x: Side, rx: np.ndarray, mask: np.ndarray, vx: np.ndarray,
                  vy: np.ndarray, c: np.ndarray | None) -> tuple[LeaveOneOut, np.ndarray, np.ndarray]:
    """x's leave-one-out against vy [K, D], the feedback's share of each score [K], and x's
    vector [1, D] as answered. For unseen text x is answered by q = unit(v + w m), its bag
    vector v moved toward the mean m of its feedback titles (RelatedModel.feedback); with
    the feedback titles held fixed, q . t = (v . t + w m . t) / |v + w m|: the tokens' and
    the center's shares scale by 1 / |v + w m|, the feedback carries w m . t / |v + w m|,
    and a token's `without` is that of v without it, moved the same way."""
    if not x.feedback:
        return leave_one_out(rx, mask, vy[None, :, :], c), np.zeros(len(vy)), vx
    w = float(model.config.index.feedback_weight)
    m = np.asarray(model.vectors[x.feedback], dtype=np.float64).mean(axis=0)
    loo = leave_one_out(rx, mask, np.concatenate([vy, m[None, :]])[None, :, :], c)
    m_t, m_m = vy @ m, float(m @ m)                                            # [K], scalar
    v_m, wo_m = loo.score[0, -1], loo.without[0, :, -1]                        # v . m, v_l . m
    alive = (title_stats(rx, mask, c).rest[0] > EPS).astype(np.float64)       # |v_l| is 1 or 0
    norm = np.sqrt(1.0 + 2.0 * w * v_m + w * w * m_m)
    norm_l = np.sqrt(np.maximum(alive + 2.0 * w * wo_m + w * w * m_m, EPS))[:, None]
    score = (loo.score[:, :-1] + w * m_t) / norm
    without = np.where(mask[0][:, None], (loo.without[0, :, :-1] + w * m_t) / norm_l, score[0])[None]
    moved = vx + w * m
    moved /= np.linalg.norm(moved, axis=-1, keepdims=True)
    return (LeaveOneOut(score, without, loo.share[:, :, :-1] / norm, loo.center[:, :-1] / norm),
            w * m_t / norm, moved)


def pair_json(x: Side, y: Side, score: float, rx: list[dict], ry: list[dict],
              cfg: InspectConfig) -> dict:
    shared = [c for c in x.categories if c in set(y.categories)]
    informative_shared = [c for c in x.informative if c in set(y.informative)]
    drops = np.array([t["drop"] for t in rx + ry], dtype=np.float64)
    rare = np.array([t["rare"] for t in rx + ry], dtype=bool)
    rare_share = float(collapse(np.float64(score), drops, rare))
    carried = float(collapse(np.float64(score), drops, np.ones_like(rare)))
    flags = []
    if x.informative and y.informative and not informative_shared:
        flags.append("no_shared_category")
    if rare_share >= cfg.collapse_share:
        flags.append("rare_token_match")
    top = max(({"side": side, **t} for side, ts in (("title", rx), ("neighbor", ry)) for t in ts),
              key=lambda t: t["drop"])
    return {"title": x.to_json(), "neighbor": y.to_json(), "score": round(score, 6),
            "shared_categories": shared, "shared_informative_categories": informative_shared,
            "collapse": round(rare_share, 6), "carried": round(carried, 6),
            "flags": flags, "outlier": bool(flags),
            "carrier": {k: top[k] for k in ("side", "token", "id", "count", "rare", "drop")},
            "tokens": {"title": rx, "neighbor": ry}, "carried_by": carried_by(rx, ry)}


def explain_pair(model: RelatedModel, title_or_id: str | int, neighbor: str | int,
                 cfg: InspectConfig | None = None) -> dict:
    """Token contributions for one pair (see the module docstring for the numbers)."""
    broad = broad_categories(model)
    x, y = side_of(model, title_or_id, broad), side_of(model, neighbor, broad)
    return explain_sides(model, x, [y], cfg or InspectConfig())[0]


def disagreement(x: Side, explained: list[dict], cfg: InspectConfig) -> dict:
    """How much of x's neighbour list shares no informative category with x."""
    labelled = [e for e in explained if e["neighbor"]["informative_categories"]]
    off = [e for e in labelled if not e["shared_informative_categories"]]
    share = len(off) / len(labelled) if labelled else 0.0
    decidable = bool(x.informative) and len(labelled) >= cfg.min_labelled_neighbors
    return {"labelled_neighbors": len(labelled), "off_category": len(off),
            "share": round(share, 6), "disagrees": decidable and share >= cfg.disagree_share}


def inspect_title(model: RelatedModel, title: str | int, k: int = 20,
                  cfg: InspectConfig | None = None) -> dict:
    """X's neighbours (as `related` ranks them), each with its explanation and flags."""
    cfg = cfg or InspectConfig()
    broad = broad_categories(model)
    x = side_of(model, title, broad)
    options = Options(k=k)
    hits = (model.related_to_id(x.id, options) if x.id is not None else model.related(x.text, options)).related
    explained = explain_sides(model, x, [side_of(model, h.id, broad) for h in hits], cfg)
    for rank, (h, e) in enumerate(zip(hits, explained), 1):
        e["rank"], e["index_score"] = rank, h.score
    tokens = [{"position": j, "id": int(t), "token": s, "weight": w, "count": int(model.token_counts[t]),
               "rare": int(model.token_counts[t]) <= cfg.rare_max_count}
              for j, (t, s, w) in enumerate(zip(x.ids, x.surfaces, x.weights))]
    return {"model": model_json(model), "query": str(title), "title": x.to_json(), "k": k,
            "tokens": tokens, "neighbors": explained,
            "outliers": sum(e["outlier"] for e in explained),
            "disagreement": disagreement(x, explained, cfg), "config": cfg.to_dict()}


def model_json(model: RelatedModel) -> dict:
    return {"path": str(model.path), "version": model.manifest.version,
            "n_shows": len(model), "inv_freq": model.config.train.inv_freq}


# ------------------------------------------------------------------------ two models
def compare_title(model: RelatedModel, other: RelatedModel, title: str, k: int = 20,
                  cfg: InspectConfig | None = None) -> dict:
    """The same title in two models (e.g. with and without inverse-frequency scaling)."""
    cfg = cfg or InspectConfig()
    a, b = inspect_title(model, title, k, cfg), inspect_title(other, title, k, cfg)
    rank_b = {e["neighbor"]["text"]: e["rank"] for e in b["neighbors"]}
    rank_a = {e["neighbor"]["text"]: e["rank"] for e in a["neighbors"]}
    rows = [{"title": e["neighbor"]["text"], "rank": e["rank"], "score": e["score"],
             "outlier": e["outlier"], "other_rank": rank_b.get(e["neighbor"]["text"])}
            for e in a["neighbors"]]
    only_other = [{"title": e["neighbor"]["text"], "other_rank": e["rank"], "other_score": e["score"],
                   "other_outlier": e["outlier"]}
                  for e in b["neighbors"] if e["neighbor"]["text"] not in rank_a]
    norms = {}
    for name, m in (("model", model), ("other", other)):
        for t in m.tokenizer.tokens(title):
            norms.setdefault(t[1], {})[name] = round(float(np.linalg.norm(m.embeddings[t[0]])), 6)
    return {"model": a["model"], "other": b["model"], "query": title, "k": k,
            "overlap": len(set(rank_a) & set(rank_b)),
            "outliers": {"model": a["outliers"], "other": b["outliers"]},
            "mean_collapse": {"model": _mean([e["collapse"] for e in a["neighbors"]]),
                              "other": _mean([e["collapse"] for e in b["neighbors"]])},
            "neighbors": rows, "only_in_other": only_other,
            "token_norms": [{"token": t, **v} for t, v in norms.items()],
            "inspect": a, "other_inspect": b}


def _mean(xs: list[float]) -> float:
    return round(float(np.mean(xs)), 6) if xs else 0.0
