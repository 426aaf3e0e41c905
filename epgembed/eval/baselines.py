"""Systems the evaluation drives: two reference baselines and the project's own model.

Each system has a ``name``, ``fit(train_dump, workdir)`` and
``query(titles, k) -> list[list[str]]`` (display titles, best first).

- `RandomSystem`: k random distinct titles of the training dump (the floor).
- `TfidfSystem`: char 2-4-gram TF-IDF over the distinct (case-folded) titles, cosine.
- `ChannelSystem`: no text at all: a title is the idf-weighted set of its channels, cosine.
- `EpgembedSystem`: trains and queries the project's model via `epgembed.build.pipeline`
  and `epgembed.query.load` (imported lazily), or with ranks > 1 as a data-parallel run of
  `epgembed train --distributed` (`epgembed.build.model.distributed.launch`); it also
  answers the cold-start modes with a schedule context and with the whole programme
  (`epgembed.eval.coldstart`).
- The fastText reference is `epgembed.eval.fasttext_ref.FastTextSystem`.
"""
from __future__ import annotations

import json
import math
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from epgembed.eval.evaluate import most_frequent_spelling
from epgembed.eval.xmltv import iter_airings, iter_programmes

_QUERY_BATCH = 512


def training_titles(train_dump: Path) -> Counter[str]:
    """Raw title -> number of programmes in the training dump (empty titles dropped)."""
    return Counter(title for title, _ in iter_programmes(train_dump) if title)


class RandomSystem:
    """Answers k random distinct titles of the training dump (never the query itself)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._titles: list[str] = []
        self._rng = random.Random(seed)

    def fit(self, train_dump: Path, workdir: Path) -> None:
        """Remember the distinct titles of the training dump; reseed."""
        self._titles = sorted(training_titles(train_dump))
        self._rng = random.Random(self.seed)

    def query(self, titles: list[str], k: int) -> list[list[str]]:
        """k random titles per query, the query's own title left out."""
        n = min(len(self._titles), k + 1)
        out = []
        for title in titles:
            picks = [t for t in self._rng.sample(self._titles, n) if t != title]
            out.append(picks[:k])
        return out


class _CosineSystem:
    """Shared by the cosine baselines: one row per distinct case-folded title of the
    training dump, displayed by its most frequent raw spelling, rows in sorted order;
    `_matrix` holds a (sparse) vector per row."""

    _positive_only = False  # answer only rows that score above 0

    def __init__(self) -> None:
        self._rows: list[str] = []  # case-folded texts, sorted
        self._display: list[str] = []
        self._row_of: dict[str, int] = {}
        self._matrix: Any = None

    def _set_titles(self, counts: Counter[str]) -> None:
        """Rows from raw title -> number of programmes."""
        spellings: dict[str, Counter[str]] = defaultdict(Counter)
        for title, n in counts.items():
            spellings[title.casefold()][title] += n
        self._rows = sorted(spellings)
        self._display = [most_frequent_spelling(spellings[r]) for r in self._rows]
        self._row_of = {r: i for i, r in enumerate(self._rows)}

    def _neighbours(self, queries: Any, self_rows: list[int | None], k: int) -> list[list[str]]:
        """Top-k rows by dot product with each (sparse) query vector, best first; ties by
        row order; the query's own row (if any) excluded."""
        out: list[list[str]] = []
        for start in range(0, len(self_rows), _QUERY_BATCH):
            scores = (queries[start : start + _QUERY_BATCH] @ self._matrix.T).toarray()
            for row, self_row in zip(scores, self_rows[start : start + _QUERY_BATCH]):
                out.append(self._top(row, self_row, k))
        return out

    def _top(self, scores: np.ndarray, self_row: int | None, k: int) -> list[str]:
        if self_row is not None:
            scores[self_row] = -np.inf
        order = np.argsort(-scores, kind="stable")
        picks = [i for i in order[: k + 1] if i != self_row][:k]
        return [self._display[i] for i in picks if scores[i] > 0 or not self._positive_only]


class TfidfSystem(_CosineSystem):
    """Char 2-4-gram TF-IDF (``char_wb``) over distinct case-folded titles; cosine neighbours.

    One row per distinct case-folded title, displayed by its most frequent raw spelling.
    The row equal to the (case-folded) query is excluded from its answers.
    """

    name = "tfidf-char"

    def __init__(self) -> None:
        super().__init__()
        self._vectorizer: Any = None

    def fit(self, train_dump: Path, workdir: Path) -> None:
        """Vectorize the distinct titles of the training dump."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        self._set_titles(training_titles(train_dump))
        self._vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4))
        self._matrix = self._vectorizer.fit_transform(self._rows).tocsr()

    def query(self, titles: list[str], k: int) -> list[list[str]]:
        """Top-k cosine neighbours per query (ties by row order), self excluded."""
        if not titles:
            return []
        texts = [t.casefold() for t in titles]
        self_rows = [self._row_of.get(t) for t in texts]
        return self._neighbours(self._vectorizer.transform(texts), self_rows, k)


class ChannelSystem(_CosineSystem):
    """Channel only, no text (EVALUATION.md reference system): a title's vector is the set
    of channels that air it in the training dump (the ``channel`` attribute of its
    programmes), each weighted by idf = log(titles / titles on that channel); answers are
    the top-k titles by cosine, ties by row order (sorted case-folded titles).

    Titles are the distinct case-folded titles, as in `TfidfSystem`. Only titles with a
    cosine above 0 (a channel in common that does not air every title) are answers: a query
    whose case-folded title is not in the training dump gets none.
    """

    name = "channel"
    _positive_only = True

    def fit(self, train_dump: Path, workdir: Path) -> None:
        """One idf-weighted, L2-normalized channel vector per distinct title."""
        from scipy.sparse import csr_matrix

        counts: Counter[str] = Counter()
        channels: dict[str, set[str]] = defaultdict(set)
        for title, channel in iter_airings(train_dump):
            if title:
                counts[title] += 1
                if channel:
                    channels[title.casefold()].add(channel)
        self._set_titles(counts)
        column = {c: j for j, c in enumerate(sorted(set().union(*channels.values())))}
        n_titles = Counter(c for chans in channels.values() for c in chans)
        idf = {c: math.log(len(self._rows) / n) for c, n in n_titles.items()}
        indptr, indices, data = [0], [], []
        for row in self._rows:
            chans = sorted(channels.get(row, ()))
            norm = math.sqrt(sum(idf[c] ** 2 for c in chans))
            indices += [column[c] for c in chans]
            data += [idf[c] / norm if norm else 0.0 for c in chans]
            indptr.append(len(indices))
        self._matrix = csr_matrix((data, indices, indptr), shape=(len(self._rows), len(column)))

    def query(self, titles: list[str], k: int) -> list[list[str]]:
        """Top-k cosine neighbours per known query title, self excluded; [] for unknown ones."""
        rows = [self._row_of.get(t.casefold()) for t in titles]
        known = [r for r in rows if r is not None]
        found = iter(self._neighbours(self._matrix[known], known, k) if known else [])
        return [next(found) if r is not None else [] for r in rows]


class EpgembedSystem:
    """The project's model: `epgembed.build.pipeline.train_model` + `epgembed.query.load.load_model`.

    The model is loaded on the first `query` after `fit` (so query time includes loading,
    as with ``epgembed related``).
    """

    name = "epgembed"

    def __init__(self, config: Any = None, name: str = "epgembed", threads: int | None = None,
                 ranks: int = 1) -> None:
        self.config = config
        self.name = name
        self.threads = threads
        self.ranks = ranks
        self._model_dir: Path | None = None
        self._model: Any = None

    def fit(self, train_dump: Path, workdir: Path) -> None:
        """Train the project's model on the training dump into ``workdir/model``; with
        ranks > 1, as that many processes of `epgembed train --distributed` under torchrun."""
        self._model_dir = Path(workdir) / "model"
        self._model = None
        if self.ranks > 1:
            self._fit_distributed(Path(train_dump), Path(workdir))
            return
        from epgembed.build.pipeline import train_model

        train_model([Path(train_dump)], out_dir=self._model_dir, cfg=self.config, threads=self.threads)

    def _fit_distributed(self, train_dump: Path, workdir: Path) -> None:
        from epgembed.build.model.distributed import launch

        args = ["train", str(train_dump), "--out", str(self._model_dir), "--distributed", "--quiet",
                "--threads", str(self.threads or 1)]
        if self.config is not None:
            path = workdir / "config.json"
            path.write_text(json.dumps(self.config.to_dict()), encoding="utf-8")
            args += ["--config", str(path)]
        launch(args, self.ranks)

    def _loaded(self) -> Any:
        if self._model is None:
            if self._model_dir is None:
                raise RuntimeError("EpgembedSystem queried before fit")
            from epgembed.query.load import load_model

            self._model = load_model(self._model_dir)
        return self._model

    def query(self, titles: list[str], k: int) -> list[list[str]]:
        """Related titles of each query from the trained model."""
        return [list(answers) for answers in self._loaded().related_titles(titles, k)]

    def query_context(self, queries: list[dict], k: int) -> list[list[str]]:
        """Cold start, mode 2: each title with its schedule context (channel, start,
        duration), through `RelatedModel.related(title, options, context=...)`; a duration over
        a day is left out (the guide features know none)."""
        from epgembed.query.requests import Context, Options

        model = self._loaded()
        minutes = [q.get("duration") if (q.get("duration") or 0) <= 24 * 60 else None for q in queries]
        return [_titles(lambda: model.related(q["title"], Options(k=k), context=Context(
            channel=q.get("channel"), start=q.get("start"), minutes=m)))
            for q, m in zip(queries, minutes)]

    def query_programmes(self, programmes: list[dict], k: int) -> list[list[str]]:
        """Cold start, mode 3: each whole programme (fields of query.requests.ProgrammeQuery),
        through `RelatedModel.related_programme`."""
        from epgembed.query.requests import Options, ProgrammeQuery
        from epgembed.query.shapes import convert

        model = self._loaded()
        return [_titles(lambda: model.related_programme(convert(p, ProgrammeQuery), Options(k=k)))
                for p in programmes]


def _titles(answer: Any) -> list[str]:
    """The display titles of `answer()` (a query.shapes.Related), [] when it is refused."""
    from epgembed.query.errors import QueryError

    try:
        return [hit.title for hit in answer().related]
    except QueryError:
        return []
