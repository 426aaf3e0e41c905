"""Frozen configuration dataclasses, passed explicitly to every stage.

`Config()` is the default run; `Config.from_dict` / `Config.load(path)` read a JSON file
with any subset of sections and keys; `config.replace(train={"dim": 64})` gives an
overridden copy. Nothing here reads the environment.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CatalogConfig:
    strip_episodes: bool = True    # False: "Rote Rosen (3608)" is its own item (ablation)
    fold_series: bool = False      # False: "Series: Episode" titles stay separate items,
                                   # linked to their series (Show.series)
    series_labels: bool = True     # supervise every title with its whole series' categories
    # "Prefix: suffix" titles are one series when the prefix recurs with at least this
    # many distinct suffixes and suffixes change often (episodes, not spin-offs) ...
    series_min_suffixes: int = 3
    series_min_suffix_ratio: float = 0.25
    # ... or with at least 2 suffixes when the data itself says so (the suffix is the
    # programme's sub-title, or the prefix also airs alone).
    # A category on more than this share of shows is "broad" (e.g. "Series" on 95% of a
    # feed): kept for display and filters, not used as supervision.
    max_category_share: float = 0.3
    # A category needs at least this many shows to supervise leave-one-out.
    min_category_shows: int = 2
    # Characters of description text kept per title (most frequent descriptions first);
    # 0 keeps none. Used for the stored catalog vectors, never needed for a query.
    context_chars: int = 300


@dataclass(frozen=True)
class FeatureConfig:
    """Guide features in a catalog title's bag (epgembed/text/features.py): the weight of each
    kind (a title token weighs 1; 0 leaves the kind out), times the feature's share of the
    title's airings. Chosen by P@10x over all seven shared dumps (bench/results/quality.md):
    channel weight 0.5 -> 1 -> 2 -> 3 raised the mean on four dumps from 0.60 to 0.65, 0.70
    and 0.73; slot and duration 2 beat 0.5 and 1 on three of four."""
    channel: float = 3.0
    slot: float = 2.0
    day: float = 0.5
    duration: float = 2.0
    episodic: float = 1.0
    credit: float = 0.5
    year: float = 0.25
    country: float = 0.25
    rating: float = 0.25
    per_kind: int = 4              # features of one kind kept per title (most frequent first)
    min_share: float = 0.1         # a feature on fewer of the title's airings is left out
    min_items: int = 2             # a feature becomes a token when this many titles carry it


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = 0            # 0: chosen from the data size
    min_vocab: int = 400
    max_vocab: int = 16000
    words: bool = True             # whole-word tokens alongside sentencepiece pieces
    min_word_count: int = 2        # a word becomes a token when >= this many titles use it
    pieces: bool = True            # False: word tokens only (ablation)
    max_tokens: int = 48           # tokens per title kept (long titles are cut)
    context_words: int = 24        # description words added to a catalog title's bag
    context_weight: float = 0.5    # weight of each description word (title tokens weigh 1)
    context_max_df: float = 0.05   # description words in more than this share of titles are stopwords
    # Character n-grams of every title word ("<ta", "tat", "ort>", fastText's subwords,
    # boundaries marked), used by 2+ titles: a query's text and the text view of training
    # carry them, a catalog title's stored bag does not (there they cost 0.01-0.03 P@10d).
    # They place a title whose words were never trained (a new show) by its word parts:
    # new-series text-only P@10d 0.36 -> 0.39 mean over the shared dumps (issue 23).
    # ngram_max 0: none.
    ngram_min: int = 2
    ngram_max: int = 4
    ngram_weight: float = 2.0      # what one word's n-grams weigh together in a query bag
                                   # (shared equally, as fastText averages them; a token: 1)
    sp_max_sentences: int = 300_000  # sentencepiece learns pieces from at most this many distinct
                                   # titles (a seeded sample beyond; 0: all); words count them all
    seed: int = 0


@dataclass(frozen=True)
class TrainConfig:
    dim: int = 100
    # 10 epochs, every one kept (patience 0): early stopping on the held-out figure picked
    # epochs 1-4 on the small feeds, where that figure is flat from the first epoch, and
    # cost 0.01 P@10d warm and 0.02 cold with context (issue 23); 15 epochs: no better.
    epochs: int = 10
    # ... and at least this many examples: 10 epochs of a 440-title guide are 40 steps, too
    # few (fr_kazer cold start, text only: 0.36 P@10d at 10 epochs, 0.39-0.41 at 20-30)
    min_examples: int = 10_000
    # 0.05 with margin 0.3 (was 0.2 and 0.2): P@10d 0.77 -> 0.79 mean over the shared dumps,
    # the text and guide views on (issue 23's runs; 0.1 / 0.5 within 0.005 of it)
    lr: float = 0.05
    # "compiled": numba kernels of the step (epgembed/build/model/kernels.py), the production engine;
    # "fused": the same math in torch ops (epgembed/build/model/fused.py: hand-derived gradient +
    # row-wise Adagrad), ~2x slower: the readable statement the kernels are tested against
    engine: str = "compiled"
    margin: float = 0.3
    n: int = 3                     # titles per leave-one-out example (n-1 predict 1)
    neg_candidates: int = 256      # shared candidate pool per batch, scored by one matmul
    max_negatives: int = 10        # hardest violators used per example
    hard_negatives: bool = True    # False: random negatives from the pool (ablation)
    batch_size: int = 256
    # Threads applying steps to one shared table without locks (Hogwild!, as StarSpace's
    # -thread). 1 keeps training bit-for-bit reproducible for a seed; 2 are ~1.5x faster
    # on 2 cores (bench/train_speed.py) but cost P@10 on small dumps (racing updates).
    workers: int = 1
    inv_freq: bool = True          # inverse-frequency gradient scaling (multiplies each
                                   # touched row's Adagrad step by its token's weight)
    inv_freq_power: float = 0.25   # 0.5 and 1.0 cost P@10 on every dump (bench/results/quality.md)
    inv_freq_cap: float = 10.0
    init_std: float = 0.01
    val_fraction: float = 0.05     # labelled shows held out for the per-epoch figure
    max_val: int = 1000
    patience: int = 0              # epochs without a better held-out figure before stopping
                                   # (0: no early stopping, the last epoch's table is kept)
    seed: int = 0
    progress: bool = False
    # Multi-view training (StarSpace trains several views of an item into one space): a
    # context title of an example is, with these probabilities, its text view (the title's
    # tokens and n-grams: what a query by text carries) or its guide view (text and guide
    # features, no description: a query with a schedule context), else its whole bag. The
    # text and the guide then predict a title's category neighbours alone, so a title never
    # seen lands among its kind: new-series text-only P@10d 0.33 -> 0.38, with context
    # 0.74 -> 0.76 of 0.79 warm, and warm P@10d unchanged (issue 23; 0 / 0: off).
    text_view: float = 0.6
    guide_view: float = 0.3


@dataclass(frozen=True)
class IndexConfig:
    n_trees: int = 50
    # Nodes inspected per query (never fewer than Annoy's own n_trees * k; -1: exactly that).
    # Annoy's default (550 for 10 results) found 69% of the true 10 nearest at 100k titles,
    # 5000 found 91% and 15000 96% (0.5 / 1.4 ms); 10000: 0.997 on the 12k shared-data model
    # (bench/results/index.md). Catalog titles read the neighbour table instead.
    search_k: int = 10_000
    # Subtract the mean catalog vector before normalizing (stored as center.npy and applied
    # to queries too): removes the direction every title shares, so generic titles stop
    # being everybody's neighbour ("hubs").
    center: bool = True
    # Neighbour table: the `neighbours` nearest titles of every catalog title, computed at
    # build and served for catalog titles (by id and known titles) without an index search.
    # Exact (blocked matmul + top-k; time grows with S^2, ~30 s at 100k titles) up to
    # `neighbours_max_shows` titles; beyond, clustered: each title against the titles of the
    # `neighbours_probe` clusters (of 4 * sqrt(S)) whose centres are nearest the title
    # (0: no table there; Annoy alone). neighbours = 0: no table at all.
    neighbours: int = 100
    neighbours_max_shows: int = 200_000
    neighbours_probe: int = 256
    # Threads that build the neighbour table (the result does not depend on them).
    neighbours_threads: int = 2
    # Searches for vectors that are no catalog row (unseen titles, pages past the table):
    # "auto": exact over every vector up to `search_exact_max_shows` titles (~0.1 ms at 12k),
    # beyond that a cluster probe: spherical k-means into `search_clusters` * sqrt(S)
    # clusters (8,000 at 1M), the clusters nearest the query until they hold `search_rows`
    # titles, every one scored exactly (centroids.npy, order.npy, bounds.npy,
    # cluster_vectors.npy; docs/SCALE.md). "annoy": Annoy for all, as before.
    # `search_rows` 16,384: on the 1M guide calibrated against the shared dumps' model
    # (issue 27) it finds 0.961 of the true 10 of unseen titles at p50 1.11 / p99 1.47 ms
    # (target 0.95 at 2 ms); 12,288: 0.945 at 1.14 ms; 8,192 (the default before): 0.917
    # at 0.84 ms; Annoy at search_k 10000: 0.34 at 2.35 ms. On the flat synthetic 1M (the
    # worst case, next to no neighbourhood structure) 16,384 rows find 0.785
    # (bench/results/index-search-1m-guide.md, index-search-1m.md; docs/SCALE.md).
    search: str = "auto"
    # Pseudo-relevance feedback for a vector that is no catalog title (a title never seen, a
    # programme): it moves toward the mean of its `feedback` nearest catalog titles, with
    # that mean weighing `feedback_weight` against its own unit vector; one more search.
    # Cold start with context 0.756 -> 0.766 P@10d, text only +0.007 (issue 23). 0: off.
    feedback: int = 10
    feedback_weight: float = 1.0
    # The guide features of a query's schedule context (channel, start, duration) weigh this
    # many times a catalog title's: for a title never seen the schedule is what is known,
    # its words are barely trained. Cold start with context 0.758 -> 0.769 P@10d at 2
    # (1.6-2.5 alike; 4: 0.762; 0.6: 0.736), text only unchanged. A whole programme is
    # embedded as a catalog title that aired once (query/programme.py): 0.799 at 1, 0.795
    # at 2 (issue 23).
    schedule_weight: float = 2.0
    search_exact_max_shows: int = 50_000
    search_clusters: float = 8.0
    search_rows: int = 16_384
    seed: int = 0

    def __post_init__(self) -> None:
        if self.search not in ("auto", "annoy"):
            raise ValueError(f"index.search must be 'auto' or 'annoy', not {self.search!r}")


@dataclass(frozen=True)
class InspectConfig:
    # a token used by at most this many labelled training shows is "rare" (barely trained).
    # 1 is the setting whose flags best predict bad rankings on the shared dumps
    # (bench/outliers.py measures 0..3; docs/INSPECT.md)
    rare_max_count: int = 1
    # a match "collapses" when removing one rare token takes at least this share of its score
    collapse_share: float = 0.5
    # a title's list "disagrees" when at least this share of its labelled neighbours
    # shares no informative category with it ...
    disagree_share: float = 0.5
    # ... counted only when it has at least this many labelled neighbours
    min_labelled_neighbors: int = 3

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Config:
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    index: IndexConfig = field(default_factory=IndexConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Config":
        return cls().replace(**data)

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def replace(self, **sections: dict[str, Any]) -> "Config":
        """A copy with some keys of some sections replaced; unknown keys are an error."""
        updated = {}
        for name, values in sections.items():
            if name not in {f.name for f in dataclasses.fields(self)}:
                raise ValueError(f"unknown config section {name!r}")
            current = getattr(self, name)
            known = {f.name for f in dataclasses.fields(current)}
            unknown = set(values) - known
            if unknown:
                raise ValueError(f"unknown {name} option(s): {', '.join(sorted(unknown))}")
            updated[name] = dataclasses.replace(current, **values)
        return dataclasses.replace(self, **updated)

    def with_seed(self, seed: int) -> "Config":
        return self.replace(tokenizer={"seed": seed}, train={"seed": seed}, index={"seed": seed})
