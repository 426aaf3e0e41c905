"""The model: one table of token vectors, and the two pieces of math every stage shares.

    v = title_vectors(table, ids, weights, center)      # token ids [..., L] -> unit vectors [..., D]
    vectors, center = catalog_vectors(table, ids, weights, centred=True)
    ids, cos = top_k(vectors, k)                         # exact nearest rows, best first
    ids = nearest_others(vectors, k, table=neighbours)   # the same from a stored neighbour table

A title's vector is the unit length of the weighted sum of its token rows (title tokens
weigh 1, description words and guide features less; PAD_ID is no token). A centred model
then subtracts the catalog's mean vector and normalizes again: the direction every title
shares is removed, so generic titles stop being everybody's neighbour. The same function
gives the catalog's stored vectors, a query's vector, training validation and inspect;
`top_k` is the one exact nearest-neighbour search (training validation, the neighbour
table, outliers, nightly stability). The training engines (fused.py in torch ops,
kernels.py compiled) fuse this forward pass with its gradient and are tested against it.

Imports only numpy: the query side never loads torch.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from epgembed.text.tokenize import PAD_ID

EPS = 1e-12                 # a row shorter than this is divided by EPS (a zero row stays zero)
GATHER_FLOATS = 1 << 20     # a block of titles for title_vectors: [titles, L, D] at most
SCORE_FLOATS = 1 << 24      # scores held at a time by top_k (per thread)


# ------------------------------------------------------------------------ title vectors
def _normalize_(x: np.ndarray) -> np.ndarray:
    x /= np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), EPS)
    return x


def _center_(vectors: np.ndarray, center: np.ndarray) -> np.ndarray:
    vectors -= center
    return _normalize_(vectors)


def _token_sums(table: np.ndarray, ids: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """[N, D] float32 weighted sums of the rows ids [N, L] of table (PAD_ID adds nothing),
    a block of titles at a time, gathering only their tokens (no padding)."""
    out = np.zeros((len(ids), table.shape[1]), dtype=np.float32)
    rows = max(1, GATHER_FLOATS // max(1, ids.shape[1] * table.shape[1]))
    for lo in range(0, len(ids), rows):
        block = ids[lo: lo + rows]
        used = block != PAD_ID
        counts = used.sum(axis=1)
        titles = np.flatnonzero(counts)
        if len(titles) == 0:
            continue
        gathered = np.asarray(table[block[used]], dtype=np.float32)     # title after title
        if weights is not None:
            gathered *= np.asarray(weights[lo: lo + rows][used], dtype=np.float32)[:, None]
        out[lo + titles] = np.add.reduceat(gathered, (np.cumsum(counts) - counts)[titles], axis=0)
    return out


def title_vectors(table: np.ndarray, ids, weights=None, center: np.ndarray | None = None) -> np.ndarray:
    """float32 [..., D] vectors of titles given by token ids [..., L] (PAD_ID where a title
    has fewer tokens) and optional weights [..., L]: unit(sum_l w_l table[ids_l]), then, for
    a centred model, unit(that - center). A single title is ids [L] -> [D]."""
    ids = np.asarray(ids)
    lead, width = ids.shape[:-1], ids.shape[-1]
    ids = ids.reshape(int(np.prod(lead)), width)
    if ids.dtype.kind not in "iu":                          # e.g. [] for a title without tokens
        ids = ids.astype(np.int64)
    w = None if weights is None else np.asarray(weights).reshape(ids.shape)
    out = _normalize_(_token_sums(table, ids, w))
    if center is not None:
        _center_(out, np.asarray(center, dtype=np.float32))
    return out.reshape(*lead, table.shape[1])


def catalog_vectors(table: np.ndarray, ids: np.ndarray, weights: np.ndarray | None = None,
                    centred: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """(vectors [S, D], center [D] or None) of a catalog's titles: `title_vectors`, and when
    `centred` the catalog's mean vector, subtracted from every row before normalizing again
    (queries get the same through title_vectors(..., center))."""
    vectors = title_vectors(table, ids, weights)
    if not centred:
        return vectors, None
    center = vectors.mean(axis=0, dtype=np.float64).astype(np.float32)
    return _center_(vectors, center), center


# ------------------------------------------------------------------------ exact top-k
def _best_of(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and scores of the k highest scores of every row, best first, ties to
    the lower column (also where a tie straddles the k-th place)."""
    n = scores.shape[1]
    if k < n:
        part = np.argpartition(scores, n - k, axis=1)[:, n - k:]
        top = np.take_along_axis(scores, part, axis=1)
        kth = top.min(axis=1)
        for r in np.flatnonzero((scores >= kth[:, None]).sum(axis=1) > k):
            cand = np.flatnonzero(scores[r] >= kth[r])
            part[r] = cand[np.lexsort((cand, -scores[r, cand]))[:k]]
            top[r] = scores[r, part[r]]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape)
        top = scores
    order = np.lexsort((part, -top), axis=1)
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(top, order, axis=1)


def _rows(v: np.ndarray, among: np.ndarray) -> np.ndarray:
    """v[among]: a view when `among` is a run of consecutive rows (no copy of a large table)."""
    if (len(among) and 0 <= among[0] and among[-1] < len(v) and among[-1] - among[0] == len(among) - 1
            and np.all(np.diff(among) == 1)):
        return v[int(among[0]): int(among[-1]) + 1]
    return v[among]


def top_k(vectors: np.ndarray, k: int, *, rows=None, among=None, skip_self: bool = False,
          threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest rows by dot product (cosine, for unit rows): for every query row `rows`
    of `vectors` (default: each row), the k rows of `among` (indices into vectors; default:
    every row) that score highest, best first, ties to the earlier row of `among`.
    `skip_self`: a row is not its own neighbour. Returns ids [R, k'] int32 (into vectors)
    and scores [R, k'] float32, k' = min(k, candidates). Scores are computed a block of
    query rows at a time (SCORE_FLOATS floats each), by `threads` threads."""
    v = np.asarray(vectors, dtype=np.float32)
    queries = np.arange(len(v)) if rows is None else np.asarray(rows, dtype=np.int64)
    among = None if among is None else np.asarray(among, dtype=np.int64)
    base = v if among is None else _rows(v, among)
    k = max(0, min(k, len(base) - (1 if skip_self else 0)))
    ids = np.empty((len(queries), k), dtype=np.int32)
    scores = np.empty((len(queries), k), dtype=np.float32)
    if k == 0 or len(queries) == 0:
        return ids, scores
    own = None
    if skip_self:                                   # each query's position in base, -1: absent
        own = queries if among is None else np.full(len(v), -1, np.int64)
        if among is not None:
            own[among] = np.arange(len(base))
            own = own[queries]
    block = max(1, SCORE_FLOATS // len(base))

    def one(lo: int) -> None:
        s = v[queries[lo: lo + block]] @ base.T
        if own is not None:
            mine = own[lo: lo + block]
            s[np.flatnonzero(mine >= 0), mine[mine >= 0]] = -np.inf
        cols, best = _best_of(s, k)
        ids[lo: lo + block] = cols if among is None else among[cols]
        scores[lo: lo + block] = best

    starts = range(0, len(queries), block)
    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(threads) as pool:    # BLAS and the selection release the GIL
            list(pool.map(one, starts))
    else:
        for lo in starts:
            one(lo)
    return ids, scores


def nearest_others(vectors: np.ndarray, k: int, *, table=None, rows=None, among=None) -> np.ndarray:
    """ids [R, k'] (into vectors) of the k nearest other rows of `among` (default: all) for
    every row `rows` (default: `among`, else every row), best first; k' = min(k, candidates).
    Read from a neighbour table (ids [S, K]: every row's K nearest rows, best first, itself
    among them) where a row's list holds k of them; the other rows by exact `top_k`."""
    n = len(vectors)
    queries = np.asarray(rows if rows is not None else among if among is not None else np.arange(n),
                         dtype=np.int64)
    members = None if among is None else np.asarray(among, dtype=np.int64)
    k = max(0, min(k, (n if members is None else len(members)) - 1))
    out = np.empty((len(queries), k), dtype=np.int32)
    todo = np.arange(len(queries))
    if table is not None and k and len(queries):
        lists = np.asarray(table[queries])
        ok = lists != queries[:, None]
        if members is not None:
            member = np.zeros(n, dtype=bool)
            member[members] = True
            ok &= member[lists]
        rank = np.cumsum(ok, axis=1)
        full = rank[:, -1] >= k
        out[full] = lists[full][(ok & (rank <= k))[full]].reshape(-1, k)
        todo = np.flatnonzero(~full)
    if len(todo):
        out[todo] = top_k(vectors, k, rows=queries[todo], among=members, skip_self=True)[0]
    return out
