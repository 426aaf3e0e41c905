"""The query side: a loaded model answering "titles related to X" (numpy + Annoy only).

    model = epgembed.query.load.load_model("MODEL_DIR")
    model.related("Tatort", Options(k=10))   # known or never-seen title
    model.related_to_id(42, Options(k=10))   # catalog id: the exact neighbour table, else the index

The options of a query (query/requests.py Options) and the schedule context of a title
never seen (Context) are the request types the HTTP service and the CLI read too.

By default an answer list holds distinct shows of other series: the query's own episodes
("Der Bergdoktor: ..." for "Der Bergdoktor"), the query's own show under another spelling
and repeats are left out; `same_series=True` keeps them ("more episodes").
"""
from __future__ import annotations

import numpy as np

from epgembed.artifact.folder import ModelFolder
from epgembed.text.features import context_features
from epgembed.query.annoy import query_item, query_vector
from epgembed.query.vectors import title_vectors
from epgembed.query.programme import programme_vector
from epgembed.query.contract import NO_LETTER
from epgembed.query.errors import NotFound, QueryError
from epgembed.query.requests import Context, Options, ProgrammeQuery
from epgembed.query.shapes import Hit, ModelRef, Query, Related
from epgembed.text.normalize import series_head, squash, title_forms


class RelatedModel:
    def __init__(self, folder: ModelFolder, index, search=None):
        """A model folder's parts (artifact/folder.py read_folder), its Annoy `index`, and
        its `search` for vectors that are no catalog row (query/probe.py; None: Annoy)."""
        self.path = folder.path
        self.manifest = folder.manifest
        self.tokenizer = folder.tokenizer
        self.catalog = folder.catalog
        self.embeddings = folder.tokens.embeddings
        self.token_counts = folder.tokens.counts
        self.vectors = folder.vectors.vectors
        center = folder.vectors.center
        self.center = center if np.any(center) else None
        self.index = index
        self.config = folder.manifest.model_config()   # as built
        self.search_k = self.config.index.search_k
        self.n_trees = folder.manifest.n_trees
        # (ids [S, K], cosines [S, K]): exact, for catalog titles
        self.neighbours = (folder.neighbours.ids, folder.neighbours.scores) if folder.neighbours else None
        self.search = search           # index/probe.py: exact or cluster probe; None: Annoy
        self.first_refreshed = folder.manifest.first_refreshed()   # ids from here: new since training

    @property
    def version(self) -> str:
        return self.manifest.version

    def __len__(self) -> int:
        return len(self.catalog)

    # ------------------------------------------------------------------ embedding
    def embed(self, title: str, context: Context | None = None) -> np.ndarray:
        """A never-seen title's bag vector: its text as a query (tokens and character
        n-grams), plus the guide features of an optional schedule `context` (channel,
        start "YYYYmmddHHMM", minutes). `feedback` then gives the vector it is answered by."""
        ids, weights = self.query_tokens(title, context)
        return self.vector_of(ids, weights)

    def query_tokens(self, title: str, context: Context | None = None) -> tuple[list[int], list[float]]:
        """(ids, weights) of the bag `embed` sums."""
        check_title(title)
        ids, weights = self.tokenizer.query_tokens(title)
        if not ids:
            raise QueryError("title has no tokens after normalization")
        features = context_features(context.channel, context.start, context.minutes) if context else None
        extra = self.tokenizer.feature_tokens(dict.fromkeys(features, 1.0) if features else None)
        boost = self.config.index.schedule_weight
        return ids + [i for i, _ in extra], weights + [w * boost for _, w in extra]

    def feedback(self, vector: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """The vector a bag that is no catalog title is answered by, and the catalog titles
        that moved it: unit(v + w * mean of its IndexConfig.feedback nearest titles' vectors)
        (pseudo-relevance feedback); v itself, [] when feedback is off."""
        n, weight = min(self.config.index.feedback, len(self)), self.config.index.feedback_weight
        if n <= 0 or weight <= 0:
            return vector, []
        ids, _ = self._search(vector, None, n)
        ids = [int(i) for i in ids]
        mean = np.asarray(self.vectors[ids], dtype=np.float32).mean(axis=0)
        moved = np.asarray(vector, dtype=np.float32) + np.float32(weight) * mean
        return moved / max(float(np.linalg.norm(moved)), 1e-12), ids

    def item_tokens(self, show_id: int) -> list[tuple[int, str, float]]:
        """(token id, surface, weight) that make up catalog title `show_id`'s stored vector:
        its title tokens (weight 1), description words and guide features (lower weights)."""
        show = self.catalog.shows[show_id]
        return self.tokenizer.item_tokens(show.key, show.context, show.features)

    def vector_of(self, ids: list[int], weights: list[float] | None = None) -> np.ndarray:
        """The vector a bag of (weighted) tokens gets (model.title_vectors, centred like the
        catalog); vector_of(item tokens) == vectors[i]."""
        return title_vectors(self.embeddings, ids, weights, self.center)

    def resolve(self, title: str) -> int | None:
        return self.catalog.lookup(title)

    # ------------------------------------------------------------------ queries
    def related(self, title: str, options: Options = Options(), *, context: Context | None = None) -> Related:
        """Titles related to `title` (a catalog title: its stored vector; else its text and
        the optional schedule `context`), one answer per series."""
        check_title(title)
        show_id = self.resolve(title)
        if show_id is not None:
            return self._related(title, show_id, None, options)
        return self._related(title, None, self.embed(title, context), options)

    def related_programme(self, programme: ProgrammeQuery, options: Options = Options()) -> Related:
        """Titles related to a whole programme: a catalog title as `related` answers it, else
        the vector a catalog item with this one airing gets (query/programme.py)."""
        check_title(programme.title)
        if self.resolve(programme.title) is not None:
            return self.related(programme.title, options)
        vector = programme_vector(self, programme)
        if vector is None:
            raise QueryError("the programme has no tokens after normalization")
        return self._related(programme.title, None, vector, options)

    def related_to_id(self, show_id: int, options: Options = Options()) -> Related:
        return self._related(self.catalog.shows[self.check_id(show_id)].title, show_id, None, options)

    def check_id(self, show_id: int) -> int:
        """`show_id`, or NotFound when the catalog has no such id."""
        if not 0 <= show_id < len(self.catalog):
            raise NotFound(f"unknown id {show_id} (the catalog has ids 0..{len(self.catalog) - 1})")
        return show_id

    def related_titles(self, titles: list[str], k: int) -> list[list[str]]:
        """Display titles only, best first (what the evaluation protocol consumes)."""
        out, options = [], Options(k=k)
        for t in titles:
            try:
                out.append([h.title for h in self.related(t, options).related])
            except QueryError:
                out.append([])
        return out

    def _search_k(self, fetch: int) -> int:
        """The configured search budget, never below Annoy's own default for `fetch` results."""
        return -1 if self.search_k < 0 else max(self.search_k, self.n_trees * fetch)

    def _search(self, vector, show_id: int | None, fetch: int) -> tuple[list[int], np.ndarray]:
        """The `fetch` nearest titles of an unseen title's vector, or of catalog title
        `show_id` past its table row: the model's exact or cluster-probe search (exact
        cosines; index/probe.py), else Annoy."""
        if self.search is not None:
            return self.search(self.vectors[show_id] if vector is None else vector, fetch)
        if vector is None:
            return query_item(self.index, show_id, fetch, self._search_k(fetch))
        return query_vector(self.index, vector, fetch, self._search_k(fetch))

    def _related(self, title: str, show_id: int | None, vector, o: Options) -> Related:
        query = Query(title, show_id is not None, show_id)
        key = self.catalog.keys[show_id] if show_id is not None else title_forms(title).key
        rows = _Rows(self, show_id, key, o)
        if vector is not None:
            vector = self.feedback(vector)[0]
        if o.expand is not None:
            hits = rows.expand(self.vectors[show_id] if vector is None else vector)
            return Related(query, ModelRef(self.version), hits[o.offset: o.offset + o.k])
        n, want = len(self.catalog), o.k + o.offset
        limit = min(n, MAX_SCAN_ROWS)
        table = self.neighbours[0].shape[1] if vector is None and self.neighbours is not None else 0
        fetch = min(limit, max(want * 4, 50, table))     # a catalog title: its whole table row first
        while True:
            if vector is None and self.neighbours is not None and fetch <= self.neighbours[0].shape[1]:
                ids, scores = self.neighbours[0][show_id, :fetch].tolist(), self.neighbours[1][show_id, :fetch]
            else:
                ids, scores = self._search(vector, show_id, fetch)
            hits, cut = rows.collect(ids, scores, want)
            if len(hits) >= want or cut or fetch >= limit:
                break
            fetch = min(limit, fetch * 4)
        return Related(query, ModelRef(self.version), hits[o.offset: want])


MAX_SCAN_ROWS = 20_000
"""The most ranked titles one answer page reads to fill its series: a page of the largest
legal size finds its series within the first few thousand on every shared dump, and a query
whose filters match almost nothing (a rare category) stops here instead of reading the
whole catalog."""


def check_title(title: str) -> None:
    """A query title needs a letter or a digit ("!!!" is no title), in its key too."""
    if not any(c.isalnum() for c in title or "") or not any(c.isalnum() for c in title_forms(title).key):
        raise QueryError(NO_LETTER)


class _Rows:
    """The answer rows of one query, each series once (catalog.groups), as its best-scoring
    title. The query's own series is left out: its catalog series, and titles that are its
    own show by their text (same part before ":" / " - ", or the query's key followed by
    one, or the same key once punctuation and spacing are dropped); `same_series` brings
    its titles back, one row each, before the other series."""

    def __init__(self, model: "RelatedModel", show_id: int | None, key: str, o: Options):
        self.catalog, self.vectors, self.show_id, self.o = model.catalog, model.vectors, show_id, o
        self.first_refreshed = model.first_refreshed
        groups = self.catalog.groups
        self.key, self.head, self.squashed = key, series_head(key), squash(key)
        self.own_prefixes = (key + ":", key + " - ")
        if show_id is not None:
            self.group = int(groups.of[show_id])
        else:
            self.group = groups.index.get(title_forms(key).series or key)
        self.category = o.category.casefold().strip() if o.category else None

    def own(self, i: int, group: int) -> bool:
        if group == self.group:
            return True
        head, squashed = self.catalog.key_forms(i)
        return (head == self.head or squashed == self.squashed
                or self.catalog.keys[i].startswith(self.own_prefixes))

    def hit(self, i: int, score: float) -> Hit | None:
        """The row of title `i`, or None when the category filter leaves it out."""
        show = self.catalog.shows[i]
        if self.category is not None and self.category not in show.categories:
            return None
        g = int(self.catalog.groups.of[i])
        return Hit(int(i), show.title, round(float(score), 6), show.category_list(),
                   self.catalog.groups.names[g], int(self.catalog.groups.sizes[g]), int(i) >= self.first_refreshed)

    def collect(self, ids, scores, want: int) -> tuple[list[Hit], bool]:
        """The rows of a ranked candidate list (best first), at most `want` of the other
        series; True when min_score cut the list (nothing further can pass)."""
        o, groups = self.o, self.catalog.groups
        own: list[Hit] = []
        rows: list[Hit] = []
        seen = {self.group}
        squashed = {self.squashed}
        for i, s in zip(ids, np.asarray(scores).tolist()):     # plain floats: no memmap per item
            if o.min_score is not None and s < o.min_score:
                return own + rows, True
            if i == self.show_id:
                if o.include_self and (h := self.hit(i, s)) is not None:
                    own.append(h)
                continue
            g = int(groups.of[i])
            if self.own(i, g):
                if o.same_series and (h := self.hit(i, s)) is not None:
                    own.append(h)
                continue
            sq = self.catalog.key_forms(i)[1]
            if g in seen or sq in squashed:
                continue
            h = self.hit(i, s)
            if h is None:
                continue
            seen.add(g)
            squashed.add(sq)
            rows.append(h)
            if len(rows) >= want:
                break
        return own + rows, False

    def expand(self, vector) -> list[Hit]:
        """Every title of the series `o.expand` (the query's own title aside), best first."""
        groups = self.catalog.groups
        g = groups.index.get(self.o.expand)
        if g is None:
            raise NotFound(f"unknown series {self.o.expand[:80]!r}")
        ids = groups.members(g)
        scores = np.asarray(self.vectors[ids], dtype=np.float32) @ np.asarray(vector, dtype=np.float32)
        hits = []
        for j in np.argsort(-scores, kind="stable").tolist():
            i, s = int(ids[j]), float(scores[j])
            if (i == self.show_id and not self.o.include_self) or \
                    (self.o.min_score is not None and s < self.o.min_score):
                continue
            if (h := self.hit(i, s)) is not None:
                hits.append(h)
        return hits
