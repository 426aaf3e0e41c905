"""The format 1 -> 2 converter (artifact/upgrade.py) on hand-made format 1 inputs: manifests
as format 1 wrote them at different times (before `search`, before `feature_kinds`, with the
first probe entry), tokenizer.json without its later entries, configs with retired options,
history rows of 5, 6 and 7 fields and a night file without a header."""
from __future__ import annotations

import gzip
import json
from datetime import date

import msgspec
import numpy as np
import pytest

from epgembed.artifact import upgrade
from epgembed.artifact.catalog import Catalog
from epgembed.artifact.show import Show
from epgembed.artifact.manifest import Manifest, ModelError, decode_manifest
from epgembed.config import Config, FeatureConfig, IndexConfig, TokenizerConfig
from epgembed.nightly import history
from epgembed.nightly.nightfile import NIGHT_HEADER, from_row
from epgembed.text.tokenize import Tokenizer

pytestmark = pytest.mark.unit


def v1_manifest(**changes) -> dict:
    """A format 1 manifest as the first versions wrote it: no search, neighbours,
    neighbour_table, feature_kinds, quality, libraries; a config with a retired option."""
    config = Config().to_dict()
    config["train"]["optimizer"] = "sparse_adam"              # an option since removed
    del config["index"]["feedback"]                           # an option added since
    m = {"format": "epgembed-model", "format_version": 1, "version": "20250101T000000Z-0badc0de",
         "created": "2025-01-01T00:00:00Z", "metric": "angular", "dim": 8, "vocab_size": 10, "n_shows": 2,
         "n_trees": 10, "counts": {"shows": 2, "labelled_shows": 1, "categories": 1, "airings": 3},
         "config": config,
         "data": {"files": ["a.xml"], "programmes": 3, "skipped": [["a.xml", 4, "bad"]],
                  "supervising_categories": 1, "labelled_for_training": 1, "inputs": ["a.xml"]},
         "training": {"best_epoch": 2, "epochs_run": 2, "seconds": 0.1, "examples": 4,
                      "examples_per_s": 40.0, "val_p_at_10": None, "timings": {"train_s": 0.1}},
         "files": {name: {"sha256": "0" * 64, "bytes": 1} for name in (
             "tokenizer.json", "embeddings.npy", "token_counts.npy", "vectors.npy", "center.npy",
             "catalog.jsonl", "history.json", "index.ann")}}
    m.update(changes)
    return m


def read(tmp_path, m: dict) -> Manifest:
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    return decode_manifest((tmp_path / "manifest.json").read_bytes(), tmp_path / "manifest.json")


def write_catalog(folder) -> None:
    Catalog([Show(0, "a", "A", {"news": 1}, 2, ["ch1"], features={"channel=ch1": 1.0, "slot=2": 0.5}),
             Show(1, "b", "B", {}, 1, ["ch1"], features={"channel=ch1": 1.0})]).save(folder / "catalog.jsonl")


def test_a_first_format_1_manifest_becomes_format_2(tmp_path):
    write_catalog(tmp_path)
    m = read(tmp_path, v1_manifest())
    assert m.format_version == 2 and m.version == "20250101T000000Z-0badc0de"
    assert m.search.method == "exact" and m.neighbours == 0 and m.neighbour_table is None
    assert m.feature_kinds == {"channel": 2, "slot": 1}                  # counted from the catalog
    assert m.quality == {} and m.libraries == {}
    assert (m.data.skip_counts, m.data.empty_titles, m.data.dropped_programmes) == ({}, 0, {})
    assert m.data.skipped == [("a.xml", 4, "bad")]
    cfg = m.model_config()
    assert cfg.index.feedback == IndexConfig().feedback and "optimizer" not in m.config["train"]
    assert m.config == cfg.to_dict()


def test_feature_kinds_inside_counts_move_out(tmp_path):
    counts = {"shows": 2, "labelled_shows": 1, "categories": 1, "airings": 3, "feature_kinds": {"channel": 2}}
    m = read(tmp_path, v1_manifest(counts=counts))                       # no catalog read: none here
    assert m.feature_kinds == {"channel": 2} and msgspec.to_builtins(m.counts) == {
        "shows": 2, "labelled_shows": 1, "categories": 1, "airings": 3}


def test_the_search_a_model_without_the_entry_had(tmp_path):
    write_catalog(tmp_path)
    assert read(tmp_path, v1_manifest()).search.method == "exact"
    big = IndexConfig().search_exact_max_shows + 1
    assert read(tmp_path, v1_manifest(n_shows=big)).search.method == "annoy"   # then: Annoy


def test_the_first_probe_entry_gets_its_rows(tmp_path):
    np.save(tmp_path / "centroids.npy", np.zeros((4, 8), np.float32))
    files = {**v1_manifest()["files"], **{f: {"sha256": "0" * 64, "bytes": 1} for f in
                                          ("centroids.npy", "order.npy", "bounds.npy", "cluster_vectors.npy")}}
    m = read(tmp_path, v1_manifest(n_shows=1000, files=files, feature_kinds={},
                                   search={"method": "probe", "probe": 2}))
    assert (m.search.clusters, m.search.rows) == (4, 2 * 1000 // 4)


def test_a_table_without_its_description_was_exact(tmp_path):
    files = {**v1_manifest()["files"], "neighbours.npy": {"sha256": "0" * 64, "bytes": 1},
             "neighbour_scores.npy": {"sha256": "0" * 64, "bytes": 1}}
    m = read(tmp_path, v1_manifest(neighbours=2, files=files, feature_kinds={}))
    assert m.neighbours == 2 and m.neighbour_table.method == "exact" and m.neighbour_table.recall_at_10 is None


def test_a_format_1_manifest_missing_what_format_1_always_had_is_refused_by_name(tmp_path):
    m = v1_manifest(feature_kinds={})
    del m["created"]
    with pytest.raises(ModelError, match="missing required field `created`"):
        read(tmp_path, m)
    with pytest.raises(ModelError, match="missing required field `version`"):
        read(tmp_path, {"format": "epgembed-model", "format_version": 1})


def test_a_format_1_tokenizer_json_loads_through_the_converter(tmp_path):
    tok = Tokenizer(None, ["football", "tonight"], TokenizerConfig(pieces=False, min_word_count=1))
    tok.save(tmp_path)
    meta = json.loads((tmp_path / "tokenizer.json").read_text())
    old = {"format": "epgembed-tokenizer/1", "config": {**meta["config"], "retired": 1},
           "n_pieces": 0, "words": meta["words"], "pad_id": 0}             # before the later entries
    with pytest.raises(ValueError, match="unknown format 'epgembed-tokenizer/1'"):
        Tokenizer.load(tmp_path, old)
    new = upgrade.tokenizer(old)
    assert (new["context_words"], new["features"], new["ngrams"]) == ([], [], [])
    assert new["feature_config"] == FeatureConfig().__dict__ and "retired" not in new["config"]
    back = Tokenizer.load(tmp_path, new)
    assert back.encode("Football Tonight") == tok.encode("Football Tonight")
    assert upgrade.tokenizer(meta) is meta                               # format 2: as it is


def test_history_rows_of_format_1(tmp_path):
    rows = [["ARD", "1", "Old row", None, ["Krimi"]],
            ["ARD", "2", "Later row", "Sub", [], "A description."],
            ["ZDF", "3", "Guide row", None, [], None, {"stop": "4", "year": "1999"}]]
    assert [len(upgrade.night_row(r)) for r in rows] == [7, 7, 7]
    progs = [from_row(upgrade.night_row(r), "h", i) for i, r in enumerate(rows, 1)]
    assert progs[0].desc is None and progs[0].categories == ("Krimi",) and progs[1].desc == "A description."
    assert progs[2].stop == "4" and progs[2].year == "1999"
    for bad in (["ARD", "1", "x"], "not a row", ["a", "b", "c", "d", [], None, {}, "extra"]):
        with pytest.raises(ValueError):
            upgrade.night_row(bad)
    with pytest.raises(ValueError, match="7 fields"):
        from_row(rows[0], "h", 1)                                        # format 2 is strict


def write_night(root, night: str, lines: list) -> None:
    hdir = history.history_dir(root)
    hdir.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(x) + "\n" for x in lines)
    (hdir / f"{night}.jsonl.gz").write_bytes(gzip.compress(text.encode("utf-8")))
    (hdir / f"{night}.json").write_text(json.dumps({"night": night}))


def test_a_night_file_of_format_1_is_read_and_a_newer_one_refused(tmp_path):
    write_night(tmp_path, "2025-01-01", [["ARD", "1", "Old row", None, ["Krimi"]],
                                         ["ARD", "2", "Later row", None, [], "Text."]])
    old = list(history.read_night(tmp_path, date(2025, 1, 1)))
    assert [p.title for p in old] == ["Old row", "Later row"] and old[1].desc == "Text."
    write_night(tmp_path, "2025-01-02", [{**NIGHT_HEADER, "format_version": 3}, ["ARD", "1", "x", None, [], None, {}]])
    with pytest.raises(history.HistoryError, match=r"history/2025-01-02.jsonl.gz:1: .*not a night of format 2"):
        list(history.read_night(tmp_path, date(2025, 1, 2)))
    write_night(tmp_path, "2025-01-03", [NIGHT_HEADER, ["ARD", "1", "Short row", None, []]])
    with pytest.raises(history.HistoryError, match=r"2025-01-03.jsonl.gz:2: .*7 fields"):
        list(history.read_night(tmp_path, date(2025, 1, 3)))
