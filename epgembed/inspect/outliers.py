"""Scan the whole catalog for suspicious rankings, batched (matmuls over blocks of shows).

    scan = find_outliers(model, top=100, k=20)     # JSON-ready dict; report.render_report(scan)

For every show: its k nearest other shows, read from the model's neighbour table (exact
search, model.top_k, where the model has none or its rows are too short), then for every
(title, neighbour) pair:
  - no_shared_category: both have informative categories (not on more than the model's
    max_category_share of shows) and share none;
  - rare_token_match: removing one rare token of either side takes at least
    `collapse_share` of the score (inspect.title_stats once per show, inspect.pair_scores
    over whole blocks of pairs; the neighbours' token dot products come from one matmul
    over the distinct tokens of a block);
  - per title, the share of its labelled neighbours that share no informative category
    (its list "disagrees" above `disagree_share`).
Flagged pairs (either pair flag) are ranked by
    suspicion = max(score, 0) * (0.3 collapse + 0.3 carried + 0.3 no_shared_category + 0.1 list share)
where `carried` is the share of the score the single most important token (rare or not)
carries: a match hanging on one token is what the method calls an outlier, while two
spellings of the same title (every token agrees) are not. The `top` most suspicious pairs (one direction per unordered pair) are explained with
inspect.explain_sides, the same code the CLI and the service use.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from epgembed.config import InspectConfig
from epgembed.inspect.explain import broad_categories, explain_sides, model_center, model_json, padded, show_tokens, side_of
from epgembed.inspect.loo import LeaveOneOut, TitleStats, collapse, pair_scores, title_stats, token_rows
from epgembed.query.vectors import nearest_others
from epgembed.progress import Progress, Stage
from epgembed.query.errors import QueryError
from epgembed.query.related import RelatedModel

WEIGHTS = {"collapse": 0.3, "carried": 0.3, "no_shared_category": 0.3, "list_disagreement": 0.1}


@dataclass
class PairArrays:
    """Flat per-pair arrays, P = S * k, title-major (pair p = title p // k, rank p % k)."""
    title: np.ndarray        # [P] int64
    neighbor: np.ndarray     # [P] int64
    rank: np.ndarray         # [P] 1..k
    score: np.ndarray        # [P] float64
    collapse: np.ndarray     # [P] float64 in [0, 1]: share of the score one rare token carries
    carried: np.ndarray      # [P] float64 in [0, 1]: share of the score any one token carries
    decidable: np.ndarray    # [P] bool: both sides have informative categories
    shared: np.ndarray       # [P] bool: they share one
    list_share: np.ndarray   # [P] the title's off-category share (0 when undecidable)

    @property
    def no_category(self) -> np.ndarray:
        return self.decidable & ~self.shared

    def rare_match(self, cfg: InspectConfig) -> np.ndarray:
        return self.collapse >= cfg.collapse_share

    def suspicion(self) -> np.ndarray:
        w = WEIGHTS
        return np.maximum(self.score, 0.0) * (w["collapse"] * self.collapse + w["carried"] * self.carried
                                              + w["no_shared_category"] * self.no_category
                                              + w["list_disagreement"] * self.list_share)


def category_matrix(categories: list[list[str]]) -> np.ndarray:
    """[S, M] int32 category ids per show, -1 padded (M >= 1)."""
    vocab: dict[str, int] = {}
    width = max([1] + [len(c) for c in categories])
    out = np.full((len(categories), width), -1, dtype=np.int32)
    for i, cats in enumerate(categories):
        out[i, : len(cats)] = [vocab.setdefault(c, len(vocab)) for c in cats]
    return out


def share_any(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[P] bool: rows of a [P, M] and b [P, M] (-1 padded) have an id in common."""
    eq = (a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)
    return eq.any(axis=(1, 2))


def list_disagreement(has: np.ndarray, nbrs: np.ndarray, shared: np.ndarray,
                      cfg: InspectConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per title: labelled neighbours [S], off-category share [S], disagrees [S] bool."""
    labelled_nb = has[nbrs]                                  # [S, k]
    n_lab = labelled_nb.sum(axis=1)
    off = (labelled_nb & ~shared).sum(axis=1)
    share = np.where(n_lab > 0, off / np.maximum(n_lab, 1), 0.0)
    decidable = has & (n_lab >= cfg.min_labelled_neighbors)
    share = np.where(decidable, share, 0.0)
    return n_lab, share, decidable & (share >= cfg.disagree_share)


@dataclass
class Tokens:
    """Every catalog show's tokens: padded ids [S, L] and weights [S, L]."""
    ids: np.ndarray
    weights: np.ndarray


def catalog_tokens(model: RelatedModel, stage: Stage | None = None) -> Tokens:
    shows = model.catalog.shows
    if stage is not None:
        shows = stage.bar(shows, total=len(model.catalog), unit="show")
    toks = [show_tokens(model, s) for s in shows]
    return Tokens(padded([[i for i, _, _ in t] for t in toks]),
                  padded([[w for _, _, w in t] for t in toks], np.float64))


def catalog_stats(emb: np.ndarray, tok: Tokens, center: np.ndarray | None, block: int = 512) -> TitleStats:
    """title_stats of every catalog show, [S] / [S, L] (computed in blocks of shows)."""
    parts = []
    for start in range(0, len(tok.ids), block):
        shows = np.arange(start, min(start + block, len(tok.ids)))
        rows = token_rows(emb, tok.ids[shows], tok.weights[shows])
        parts.append(title_stats(rows, tok.ids[shows] != 0, center))
    return TitleStats(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("norm", "rest", "s_c", "r_c")),
                      parts[0].c_c if parts else 0.0)


def neighbor_dots(emb: np.ndarray, tok: Tokens, vectors: np.ndarray, x: np.ndarray,
                  nbrs: np.ndarray, width: int) -> np.ndarray:
    """[b, k, W] r_l . v_x for every token l of every neighbour of x: one matmul over the
    distinct tokens of the block's neighbours, not one [b, k, W, D] gather."""
    ids = tok.ids[nbrs][:, :, :width]                                          # [b, k, W]
    present = np.zeros(len(emb), dtype=bool)
    present[ids] = True
    uniq = np.flatnonzero(present)                                             # distinct tokens
    slot = np.cumsum(present) - 1                                              # token id -> row of uniq
    dots = (np.asarray(emb[uniq], dtype=np.float32) @ np.asarray(vectors[x], dtype=np.float32).T
            ).astype(np.float64)                                               # [u, b]
    b = len(x)
    flat = slot[ids] * b + np.arange(b)[:, None, None]
    return dots.ravel()[flat] * np.where(ids != 0, tok.weights[nbrs][:, :, :width], 0.0)


def block_signals(loo: LeaveOneOut, ids: np.ndarray, rare_tok: np.ndarray) -> tuple[np.ndarray, ...]:
    """(score, rare collapse, carried) per pair from a LeaveOneOut [B, L, K] and ids [B, L]."""
    drops = loo.drop.transpose(0, 2, 1)                                        # [B, K, L]
    return (loo.score, collapse(loo.score, drops, rare_tok[ids][:, None, :]),
            collapse(loo.score, drops, (ids != 0)[:, None, :]))


def block_pairs(emb: np.ndarray, tok: Tokens, stats: TitleStats, rare_tok: np.ndarray,
                vectors: np.ndarray, center: np.ndarray | None, x: np.ndarray,
                nbrs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores, rare collapse and carried share [b, k] of titles x [b] and their neighbours,
    leaving out each token of x, then each token of the neighbour."""
    b, k = nbrs.shape
    c = np.zeros(vectors.shape[1]) if center is None else center
    wx = max(1, int((tok.ids[x] != 0).sum(axis=1).max(initial=0)))
    ids_x = tok.ids[x][:, :wx]
    rows = token_rows(emb, ids_x, tok.weights[x][:, :wx])
    others = np.asarray(vectors[nbrs], dtype=np.float64)                       # [b, k, D]
    fwd = pair_scores(stats.take(x, wx), np.matmul(rows, others.transpose(0, 2, 1)), others @ c)
    score, coll, carried = block_signals(fwd, ids_x, rare_tok)
    wy = max(1, int((tok.ids[nbrs] != 0).sum(axis=-1).max(initial=0)))
    r_t = neighbor_dots(emb, tok, vectors, x, nbrs, wy).reshape(b * k, wy, 1)
    c_t = np.repeat(np.asarray(vectors[x], dtype=np.float64) @ c, k)[:, None]  # [b*k, 1]
    back = pair_scores(stats.take(nbrs.ravel(), wy), r_t, c_t)
    _, coll_y, carried_y = block_signals(back, tok.ids[nbrs.ravel()][:, :wy], rare_tok)
    return (score, np.maximum(coll, coll_y.reshape(b, k)), np.maximum(carried, carried_y.reshape(b, k)))


def scan_pairs(model: RelatedModel, k: int, cfg: InspectConfig, block: int = 128,
               progress: Progress | None = None) -> tuple[PairArrays, dict, dict]:
    """All (title, neighbour) pairs of the catalog with their signals; plus per-title data.
    Stages on `progress`: tokens, neighbours, leave-one-out."""
    progress = progress or Progress()
    t0 = time.perf_counter()
    with progress.stage("tokens") as st:
        tok = catalog_tokens(model, st)
        broad = broad_categories(model)
        cats = category_matrix([[c for c in s.category_list() if c not in broad] for s in model.catalog.shows])
        has = (cats >= 0).any(axis=1)
        rare_tok = np.asarray(model.token_counts) <= cfg.rare_max_count
        rare_tok[0] = False
        st.note(f"{len(tok.ids):,} shows")
    t1 = time.perf_counter()
    with progress.stage("neighbours") as st:
        vectors = np.asarray(model.vectors, dtype=np.float32)
        table = getattr(model, "neighbours", None)
        table = None if table is None else table[0]
        wide = nearest_others(vectors, min(len(vectors) - 1, max(4 * k, 100)), table=table).astype(np.int64)
        nbrs = one_per_series(wide, np.asarray(model.catalog.groups.of), k)
        st.note(f"{nbrs.shape[1]} per show")
    t2 = time.perf_counter()
    with progress.stage("leave-one-out") as st:
        score, coll, carried = leave_one_out(model, tok, rare_tok, vectors, nbrs, block, st)
        st.note(f"{score.size:,} pairs")
    s, kk = nbrs.shape
    title, coll, carried = np.repeat(np.arange(s), kk), coll.ravel(), carried.ravel()
    t3 = time.perf_counter()
    shared = share_any(cats[title], cats[nbrs.ravel()]).reshape(s, kk)
    n_lab, list_share, disagrees = list_disagreement(has, nbrs, shared, cfg)
    pairs = PairArrays(title, nbrs.ravel(), np.tile(np.arange(1, kk + 1), s), score.ravel(),
                       coll, carried, (has[title] & has[nbrs.ravel()]), shared.ravel(),
                       list_share[title])
    titles = {"labelled_neighbors": n_lab, "share": list_share, "disagrees": disagrees,
              "labelled": has, "nbrs": nbrs}
    timings = {"tokenize_s": t1 - t0, "neighbors_s": t2 - t1, "leave_one_out_s": t3 - t2,
               "categories_s": time.perf_counter() - t3}
    return pairs, titles, timings


def one_per_series(wide: np.ndarray, series: np.ndarray, k: int) -> np.ndarray:
    """[S, k] of each row's neighbour list `wide` [S, W] (best first) as answers show it: other
    series only, each once (its first, best title). A row with fewer such titles among its
    W is filled with the next titles of other series, repeats allowed, best first."""
    s, w = wide.shape
    k = min(k, w)
    groups = series[wide]
    own = groups == series[np.arange(s)][:, None]
    order = np.argsort(groups, axis=1, kind="stable")          # equal groups: by rank
    sorted_groups = np.take_along_axis(groups, order, axis=1)
    repeat_sorted = np.zeros_like(own)
    repeat_sorted[:, 1:] = sorted_groups[:, 1:] == sorted_groups[:, :-1]
    repeat = np.zeros_like(own)
    np.put_along_axis(repeat, order, repeat_sorted, axis=1)
    # rank the columns: first rows' series once, then their repeats, own series last
    key = np.where(own, 2 * w, 0) + np.where(repeat, w, 0) + np.arange(w)[None, :]
    pick = np.argsort(key, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(wide, pick, axis=1)


def leave_one_out(model: RelatedModel, tok: Tokens, rare_tok: np.ndarray, vectors: np.ndarray,
                  nbrs: np.ndarray, block: int, stage: Stage) -> tuple[np.ndarray, ...]:
    """Score, rare collapse and carried share [S, k] of every pair, in blocks of titles."""
    emb, center = np.asarray(model.embeddings), model_center(model)
    s = len(nbrs)
    stats = catalog_stats(emb, tok, center)
    score, coll, carried = (np.zeros(nbrs.shape) for _ in range(3))
    for start in stage.bar(range(0, s, block), total=-(-s // block), unit="block"):
        x = np.arange(start, min(start + block, s))
        score[x], coll[x], carried[x] = block_pairs(emb, tok, stats, rare_tok, vectors, center, x, nbrs[x])
    return score, coll, carried


def most_suspicious(pairs: PairArrays, flagged: np.ndarray, top: int) -> np.ndarray:
    """Indices of the `top` most suspicious flagged pairs, one direction per unordered pair."""
    idx = np.flatnonzero(flagged)
    sus = pairs.suspicion()[idx]
    idx = idx[np.lexsort((idx, -sus))]                     # most suspicious first, stable
    lo = np.minimum(pairs.title[idx], pairs.neighbor[idx])
    hi = np.maximum(pairs.title[idx], pairs.neighbor[idx])
    _, first = np.unique(lo * (int(hi.max(initial=0)) + 1) + hi, return_index=True)
    return idx[np.sort(first)][:top]


def summarize(pairs: PairArrays, titles: dict, cfg: InspectConfig) -> dict:
    """Counts, and how often each signal points at pairs that share no informative category."""
    no_cat, rare = pairs.no_category, pairs.rare_match(cfg)
    flagged = no_cat | rare

    def share_no_cat(sel: np.ndarray) -> dict:
        dec = sel & pairs.decidable
        n = int(dec.sum())
        return {"pairs": int(sel.sum()), "decidable": n,
                "share_no_informative_category": round(float(no_cat[dec].mean()), 4) if n else None}

    return {"shows": int(len(titles["labelled"])), "labelled_shows": int(titles["labelled"].sum()),
            "pairs": int(len(pairs.score)), "flagged_pairs": int(flagged.sum()),
            "no_shared_category": int(no_cat.sum()), "rare_token_match": int(rare.sum()),
            "both_flags": int((no_cat & rare).sum()),
            "titles_disagreeing": int(titles["disagrees"].sum()),
            "check": {"flagged": share_no_cat(flagged), "rare_token_match": share_no_cat(rare),
                      "all_pairs": share_no_cat(np.ones_like(flagged))}}


def find_outliers(model: RelatedModel, top: int = 100, k: int = 20,
                  cfg: InspectConfig | None = None, progress: Progress | None = None) -> dict:
    """Scan, rank by suspicion, explain the `top` pairs. JSON-ready. Stages on `progress`:
    those of scan_pairs, then explain."""
    cfg = cfg or InspectConfig()
    progress = progress or Progress()
    t0 = time.perf_counter()
    pairs, titles, timings = scan_pairs(model, k, cfg, progress=progress)
    flagged = pairs.no_category | pairs.rare_match(cfg)
    chosen = most_suspicious(pairs, flagged, top)
    t1 = time.perf_counter()
    with progress.stage("explain") as st:
        items = explain_pairs(model, pairs, chosen, cfg, st)
        st.note(f"{len(items):,} of {int(flagged.sum()):,} flagged pairs")
    timings["explain_s"] = time.perf_counter() - t1
    timings["total_s"] = time.perf_counter() - t0
    return {"model": model_json(model), "k": int(titles["nbrs"].shape[1]), "config": cfg.to_dict(),
            "weights": WEIGHTS, "summary": summarize(pairs, titles, cfg),
            "timings": {a: round(b, 3) for a, b in timings.items()},
            "outliers": items, "titles": disagreeing_titles(model, titles, top)}


def explain_pairs(model: RelatedModel, pairs: PairArrays, chosen: np.ndarray, cfg: InspectConfig,
                  stage: Stage) -> list[dict]:
    """inspect.explain_sides of each chosen pair, with its rank, position and suspicion."""
    broad = broad_categories(model)
    suspicion = pairs.suspicion()
    items = []
    for p in stage.bar(chosen, total=len(chosen), unit="pair"):
        try:
            x, y = side_of(model, int(pairs.title[p]), broad), side_of(model, int(pairs.neighbor[p]), broad)
        except QueryError:       # a show without tokens has nothing to explain
            continue
        e = explain_sides(model, x, [y], cfg)[0]
        e.update(rank=int(pairs.rank[p]), position=len(items) + 1, suspicion=round(float(suspicion[p]), 6),
                 list_share=round(float(pairs.list_share[p]), 6))
        items.append(e)
    return items


def disagreeing_titles(model: RelatedModel, titles: dict, top: int) -> list[dict]:
    """Titles whose neighbour list mostly disagrees with their categories, worst first."""
    idx = np.flatnonzero(titles["disagrees"])
    idx = idx[np.lexsort((idx, -titles["labelled_neighbors"][idx], -titles["share"][idx]))][:top]
    shows = model.catalog.shows
    return [{"id": int(i), "title": shows[i].title, "categories": shows[i].category_list(),
             "share": round(float(titles["share"][i]), 6),
             "labelled_neighbors": int(titles["labelled_neighbors"][i]),
             "neighbors": [shows[j].title for j in titles["nbrs"][i][:5]]} for i in idx]
