"""A hand-made tiny model with one planted rare token (no training, fully deterministic).

Four genres on axes 0-3 of an 8-dim space; each word is its genre's axis plus a little
seeded noise on axes 4-6. The rare word "zorblax" (in no labelled training show)
is a long vector on axis 7, and it is the only thing "Zorblax Puppy" (kids) and
"Zorblax Kitchen" (cooking) have in common: that match is carried by the rare token alone.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from epgembed.artifact.folder import ModelParts, write_folder
from epgembed.artifact.manifest import DataSummary, TrainingSummary
from epgembed.artifact.parts import TitleVectors, TokenTable
from epgembed.build.index.build import write_indexes
from epgembed.artifact.catalog import Catalog
from epgembed.artifact.show import Show
from epgembed.config import Config, IndexConfig, TokenizerConfig
from epgembed.inspect.explain import padded
from epgembed.query.vectors import catalog_vectors
from epgembed.text.normalize import title_key
from epgembed.text.tokenize import Tokenizer

GENRES = {
    "Sport": ["Football Match", "Tennis Match", "Golf Match", "Football Goals", "Tennis Open"],
    "News": ["Morning News", "Evening News", "World News", "News Report", "World Report"],
    "Kids": ["Puppy Club", "Dragon Club", "Puppy Tales", "Dragon Tales", "Cartoon Club"],
    "Cooking": ["Kitchen Heroes", "Baking Heroes", "Kitchen Secrets", "Baking Secrets", "Cooking Show"],
}
PLANTED = ("Zorblax Puppy", "Zorblax Kitchen")      # kids, cooking
RARE = "zorblax"
UNLABELLED = "Football Special"
DIM = 8


def shows() -> list[tuple[str, dict[str, int]]]:
    out = [(t, {g.casefold(): 2, "series": 2}) for g, ts in GENRES.items() for t in ts]
    out += [(PLANTED[0], {"kids": 2, "series": 2}), (PLANTED[1], {"cooking": 2, "series": 2}),
            (UNLABELLED, {})]
    return out


def genre_of_word() -> dict[str, int]:
    words: dict[str, int] = {}
    for g, titles in enumerate(GENRES.values()):
        for t in titles:
            for w in t.casefold().split():
                words.setdefault(w, g)
    words.setdefault("special", 0)
    return words


def build_handmade_model(out_dir: Path, seed: int = 0, center: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    genre = genre_of_word()
    words = sorted([*genre, RARE])
    tokenizer = Tokenizer(None, words, TokenizerConfig(pieces=False, words=True, min_word_count=1))
    table = np.zeros((tokenizer.vocab_size, DIM), dtype=np.float32)
    for w, g in genre.items():
        row = np.zeros(DIM)
        row[g] = 1.0
        row[4:7] = 0.25 * rng.standard_normal(3)
        table[tokenizer.word_id[w]] = row
    table[tokenizer.word_id[RARE], 7] = 3.0
    entries = sorted(shows(), key=lambda s: title_key(s[0]))
    catalog = Catalog([Show(i, title_key(t), t, cats, 2, ["ch1"]) for i, (t, cats) in enumerate(entries)])
    ids = [tokenizer.encode(s.key) for s in catalog.shows]
    counts = np.zeros(tokenizer.vocab_size, dtype=np.int64)
    for s, toks in zip(catalog.shows, ids):
        if s.categories:
            np.add.at(counts, toks, 1)
    counts[tokenizer.word_id[RARE]] = 0          # both zorblax shows were held out: never trained
    vectors, mean = catalog_vectors(table, padded(ids), centred=center)   # as pipeline.write_model
    cfg = Config().replace(index={"n_trees": 5})
    data = DataSummary(files=[], programmes=0, skipped=[], skip_counts={}, empty_titles=0,
                       dropped_programmes={}, supervising_categories=4, labelled_for_training=0, inputs=[])
    training = TrainingSummary(best_epoch=0, epochs_run=0, seconds=0.0, examples=0, examples_per_s=0.0,
                               val_p_at_10=None, timings={})     # hand-made: not trained
    parts = ModelParts(tokenizer, catalog, TokenTable(table, counts), TitleVectors.of(vectors, mean), [],
                       cfg.to_dict(), data, training)
    write_folder(out_dir, parts, lambda folder: write_indexes(folder, vectors, IndexConfig(n_trees=5)))
    return out_dir


def make_app(model_dir: Path):
    """The service (its app factory) serving `model_dir`, with the explain blueprint."""
    from service import ServiceConfig, create_app
    from service import explain
    app = create_app(ServiceConfig(models=model_dir, poll_seconds=0))
    if "explain" not in app.blueprints:          # until create_app registers it itself
        app.register_blueprint(explain.bp)
    return app
