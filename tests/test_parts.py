"""Each part of a model folder saves and loads itself (artifact/parts.py, the Tokenizer, the
Catalog), and read_folder gives back the unit write_folder wrote (tests/handmade.py builds
one without training)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from epgembed.artifact.catalog import Catalog
from epgembed.artifact.show import Show
from epgembed.artifact.folder import read_folder
from epgembed.artifact.manifest import ModelError
from epgembed.artifact.parts import HISTORY, NeighbourTable, TitleVectors, TokenTable, write_history
from epgembed.config import FeatureConfig, TokenizerConfig
from epgembed.text.tokenize import Tokenizer
from handmade import build_handmade_model

pytestmark = pytest.mark.unit

RNG = np.random.default_rng(0)


def test_token_table_round_trip(tmp_path):
    table = TokenTable(RNG.standard_normal((7, 4)).astype(np.float32), np.arange(7, dtype=np.int64))
    assert table.save(tmp_path) == list(TokenTable.files())
    back = TokenTable.load(tmp_path)
    assert np.array_equal(back.embeddings, table.embeddings) and back.embeddings.dtype == np.float32
    assert np.array_equal(back.counts, table.counts) and back.counts.dtype == np.int64
    assert isinstance(back.embeddings, np.memmap)                 # the large one is mapped, not read


def test_title_vectors_round_trip_and_a_zero_center_when_not_centred(tmp_path):
    vectors = RNG.standard_normal((5, 4))                         # float64: written as float32
    TitleVectors.of(vectors, None).save(tmp_path)
    back = TitleVectors.load(tmp_path)
    assert back.vectors.dtype == np.float32 and np.allclose(back.vectors, vectors, atol=1e-6)
    assert np.array_equal(back.center, np.zeros(4, np.float32))
    center = np.ones(4, np.float32)
    TitleVectors.of(vectors, center).save(tmp_path)
    assert np.array_equal(TitleVectors.load(tmp_path).center, center)


def test_neighbour_table_round_trip_and_its_shape_check(tmp_path):
    ids = RNG.integers(0, 6, (6, 3)).astype(np.int32)
    table = NeighbourTable(ids, RNG.random((6, 3)).astype(np.float32))
    assert table.save(tmp_path) == list(NeighbourTable.files())
    back = NeighbourTable.load(tmp_path)
    assert np.array_equal(back.ids, ids) and np.array_equal(back.scores, table.scores)
    assert back.problem(6, 3) is None
    assert back.problem(6, 4) == "neighbours (6, 3) int32 != (6, 4) int32"
    assert NeighbourTable(ids.astype(np.int64), table.scores).problem(6, 3) == "neighbours (6, 3) int64 != (6, 3) int32"


def test_history_is_written_as_json_and_nan_is_refused(tmp_path):
    assert write_history(tmp_path, [{"epoch": 1, "loss": 0.5}]) == [HISTORY]
    assert json.loads((tmp_path / HISTORY).read_text()) == [{"epoch": 1, "loss": 0.5}]
    with pytest.raises(ValueError):
        write_history(tmp_path, [{"epoch": 1, "loss": float("nan")}])


def test_tokenizer_round_trip_keeps_every_list(tmp_path):
    tok = Tokenizer(None, ["football", "tonight"], TokenizerConfig(pieces=False, min_word_count=1),
                    ["derby"], ["channel=ch1"], FeatureConfig(channel=2.0), ["<fo", "oot"])
    assert tok.save(tmp_path) == ["tokenizer.json"]
    back = Tokenizer.load(tmp_path)
    assert (back.words, back.context_words, back.features, back.ngrams) == (tok.words, tok.context_words,
                                                                              tok.features, tok.ngrams)
    assert back.feature_cfg == tok.feature_cfg and back.cfg == tok.cfg and back.vocab_size == tok.vocab_size


@pytest.mark.parametrize("missing", ["context_words", "features", "feature_config", "ngrams"])
def test_a_tokenizer_json_without_an_entry_is_refused(tmp_path, missing):
    Tokenizer(None, ["news"], TokenizerConfig(pieces=False, min_word_count=1)).save(tmp_path)
    meta = json.loads((tmp_path / "tokenizer.json").read_text())
    del meta[missing]
    with pytest.raises(KeyError, match=missing):
        Tokenizer.load(tmp_path, meta)


def test_catalog_round_trip(tmp_path):
    catalog = Catalog([Show(0, "news at six", "News at Six", {"news": 2}, 2, ["ch1"]),
                       Show(1, "puppy club", "Puppy Club", {}, 1, ["ch2"])])
    catalog.save(tmp_path / "catalog.jsonl")
    back = Catalog.load(tmp_path / "catalog.jsonl")
    assert [s.to_json() for s in back.shows] == [s.to_json() for s in catalog.shows]


def test_read_folder_gives_back_every_part(tmp_path):
    folder = read_folder(build_handmade_model(tmp_path / "m"))
    assert folder.manifest.n_shows == len(folder.catalog) == len(folder.vectors.vectors)
    assert folder.tokens.embeddings.shape == (folder.tokenizer.vocab_size, folder.manifest.dim)
    assert folder.neighbours is not None and folder.neighbours.ids.shape[0] == len(folder.catalog)
    np.save(tmp_path / "m" / "center.npy", np.zeros(3, np.float32))          # another model's center
    with pytest.raises(ModelError, match=r"inconsistent model: center \(3,\) != \(8,\)"):
        read_folder(tmp_path / "m", verify=False)
