"""End to end: dump -> model directory -> related titles; round trip, seeds, bad input, CLI."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest

from guide import GENRES, TINY_CONFIG, programme_xml, tiny_programmes, write_xmltv
from epgembed.artifact.manifest import ModelError, read_manifest
from epgembed.query.load import load_model
from epgembed.build.ingest.epg import DumpError
from epgembed.build.pipeline import train_model
from epgembed.query.requests import Options
from epgembed.query.shapes import Related

pytestmark = pytest.mark.integration

GENRE_OF = {t: g for g, ts in GENRES.items() for t in ts}


def test_neighbours_make_sense(tiny_model_dir):
    model = load_model(tiny_model_dir)
    precision = []
    for genre, titles in GENRES.items():
        for t in titles[1:]:
            hits = model.related(t, Options(k=5)).related
            assert all(h.title != t for h in hits)             # the show itself is no answer
            precision.append(np.mean([GENRE_OF.get(h.title) == genre for h in hits]))
    assert np.mean(precision) > 0.8
    unseen = model.related("Saturday Football Tonight", Options(k=5))       # never seen: embedded on the fly
    assert not unseen.query.known and unseen.query.id is None
    assert sum(GENRE_OF.get(h.title) == "sport" for h in unseen.related) >= 4
    episode = model.related("Football Tonight S1 Ep. 7", Options(k=3))      # an episode of a known show
    assert episode.query.known and model.catalog.shows[episode.query.id].title == "Football Tonight"


def test_scores_are_cosines_of_stored_vectors(tiny_model_dir):
    model = load_model(tiny_model_dir)
    r = model.related_to_id(3, Options(k=5))
    for h in r.related:
        cos = float(np.dot(model.vectors[3], model.vectors[h.id]))
        assert h.score == pytest.approx(cos, abs=1e-4)
    assert [h.score for h in r.related] == sorted((h.score for h in r.related), reverse=True)


def test_manifest_describes_the_folder(tiny_model_dir):
    m = read_manifest(tiny_model_dir)
    assert m.format_version == 2 and m.metric == "angular" and m.dim == 32
    assert m.n_shows == len(load_model(tiny_model_dir).catalog)
    assert set(m.files) >= {"embeddings.npy", "vectors.npy", "index.ann", "catalog.jsonl",
                            "tokenizer.json", "tokenizer.model", "token_counts.npy", "history.json"}
    assert m.config["train"]["dim"] == 32 and m.training.epochs_run >= 1


def test_save_load_round_trip(tiny_model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    a, b = load_model(tiny_model_dir), load_model(copy)
    assert np.array_equal(a.embeddings, b.embeddings) and a.version == b.version
    for q in ["Football Weekly", "A Title Nobody Has Seen"]:
        assert a.related(q, Options(k=5)) == b.related(q, Options(k=5))


def test_two_seeded_runs_give_identical_vectors(tiny_dump, tmp_path):
    cfg = TINY_CONFIG.replace(train={"epochs": 3})
    train_model([tiny_dump], tmp_path / "a", cfg, threads=1)
    train_model([tiny_dump], tmp_path / "b", cfg, threads=1)
    va, vb = (np.load(tmp_path / d / "vectors.npy") for d in "ab")
    assert np.array_equal(va, vb)
    train_model([tiny_dump], tmp_path / "c", cfg.with_seed(1), threads=1)
    assert not np.array_equal(va, np.load(tmp_path / "c" / "vectors.npy"))


@pytest.mark.parametrize("damage", ["truncate_index", "flip_vectors", "drop_catalog", "lie_dim"])
def test_damaged_model_is_refused(tiny_model_dir, tmp_path, damage):
    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    if damage == "truncate_index":
        data = (d / "index.ann").read_bytes()
        (d / "index.ann").write_bytes(data[: len(data) // 2])
    elif damage == "flip_vectors":
        data = bytearray((d / "vectors.npy").read_bytes())
        data[-5] ^= 0xFF
        (d / "vectors.npy").write_bytes(bytes(data))
    elif damage == "drop_catalog":
        (d / "catalog.jsonl").unlink()
    else:
        m = json.loads((d / "manifest.json").read_text())
        m["dim"] = 64
        (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelError):
        load_model(d)


def test_broken_dump_writes_nothing(tmp_path, tiny_dump):
    good = tmp_path / "model"
    train_model([tiny_dump], good, TINY_CONFIG.replace(train={"epochs": 1}), threads=1)
    before = read_manifest(good).version
    broken = tmp_path / "broken.xml"
    broken.write_text('<?xml version="1.0"?>\n<tv>\n' + programme_xml("A", ["x"]) + "<programme>\n")
    with pytest.raises(DumpError) as e:
        train_model([tiny_dump, broken], good, TINY_CONFIG, threads=1)
    assert "broken.xml" in str(e.value)
    assert read_manifest(good).version == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.xml", "model"]  # no temp left


def _cli(*args, cwd=None):
    exe = Path(sys.executable).parent / "epgembed"
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_cli_train_related_info(tmp_path):
    dump = write_xmltv(tmp_path / "d.xml", tiny_programmes())
    out = tmp_path / "m"
    r = _cli("train", dump, "--out", out, "--dim", 16, "--epochs", 3, "--quiet", "--threads", 1)
    assert r.returncode == 0, r.stderr
    assert "shows" in r.stdout and (out / "manifest.json").exists()
    queries = tmp_path / "q.txt"
    queries.write_text("Football Weekly\nNever Seen Before Title\n")
    r = _cli("related", out, "--titles-file", queries, "-k", 4, "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    answers = [msgspec.convert(x, Related) for x in lines]     # the HTTP answer's shape, no field more
    assert [a.query.title for a in answers] == ["Football Weekly", "Never Seen Before Title"]
    assert all(len(a.related) == 4 and a.model.version == lines[0]["model"]["version"] for a in answers)
    assert answers[0].query.known and not answers[1].query.known
    r = _cli("info", out)
    assert r.returncode == 0 and "shows" in r.stdout and "sha256" in r.stdout


def test_cli_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.xml.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    r = _cli("train", bad, "--out", tmp_path / "m", "--quiet")
    assert r.returncode == 2 and "bad.xml.gz" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "m").exists()
    r = _cli("related", tmp_path / "nope", "--title", "x")
    assert r.returncode == 2 and "manifest" in r.stderr and "Traceback" not in r.stderr


def test_skip_bad_input_reads_the_rest(tmp_path, tiny_dump):
    empty = tmp_path / "empty.xml"
    empty.write_bytes(b"")
    r = _cli("train", tiny_dump, empty, "--out", tmp_path / "m", "--skip-bad-input", "--epochs", 1, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "empty.xml" in r.stderr and "skipped" in r.stderr
    assert read_manifest(tmp_path / "m").data.skipped


def test_stored_vectors_are_rebuilt_from_item_tokens_and_centered(tiny_model_dir):
    model = load_model(tiny_model_dir)
    assert model.center is not None                              # centering on by default
    for i in range(0, len(model), 7):
        ids, _, weights = zip(*model.item_tokens(i))
        assert np.allclose(model.vector_of(list(ids), list(weights)), model.vectors[i], atol=1e-5)
    v = model.embed("Football Weekly")           # the title as a query: tokens + n-grams, same centering
    ids, weights = model.tokenizer.query_tokens("Football Weekly")
    assert ids[: len(model.tokenizer.encode("Football Weekly"))] == model.tokenizer.encode("Football Weekly")
    assert len(ids) > len(model.tokenizer.encode("Football Weekly"))     # the character n-grams
    assert np.allclose(v, model.vector_of(ids, weights), atol=1e-6)
    raw = np.asarray(model.embeddings)[ids].sum(0)
    assert not np.allclose(v, raw / np.linalg.norm(raw), atol=1e-3)


def test_display_titles_keep_the_feeds_spelling(tmp_path):
    from epgembed.build.ingest.catalog_build import build_catalog
    from epgembed.build.ingest.epg import read_programmes
    dump = write_xmltv(tmp_path / "d.xml", [programme_xml("Avatar \u2013 Der Herr: Folge A", ["x"]),
                                           programme_xml("Sissi \u2013 Teil 2", ["y"])])
    cat = build_catalog(read_programmes(dump))
    assert {s.title for s in cat.shows} == {"Avatar \u2013 Der Herr: Folge A", "Sissi \u2013 Teil 2"}  # as aired
    assert cat.lookup("Avatar - Der Herr: Folge A") is not None   # any dash finds it


def test_serialized_catalog_saves_the_same_file(tiny_dump, tmp_path):
    """train_model keeps only the catalog's file during training; it must be the same file."""
    from epgembed.artifact.catalog import Catalog
    from epgembed.build.ingest.catalog_build import build_catalog
    from epgembed.build.ingest.epg import read_programmes
    catalog = build_catalog(read_programmes([tiny_dump]), TINY_CONFIG.catalog)
    serialized = catalog.serialized()
    catalog.save(tmp_path / "a.jsonl")
    serialized.save(tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert len(serialized) == len(catalog) and serialized.summary() == catalog.summary()
    assert serialized.jsonl is None                     # written once, then let go
    with pytest.raises(ValueError, match="already written"):
        serialized.save(tmp_path / "c.jsonl")           # never a silently empty second file
    again = Catalog.load(tmp_path / "b.jsonl")
    assert [s.to_json() for s in again.shows] == [s.to_json() for s in catalog.shows]


def test_a_spooled_serialized_catalog_saves_the_same_file_and_leaves_nothing(tiny_dump, tmp_path):
    """train_model spools the catalog into an unlinked temporary file beside the model (no
    memory while training): the saved file is the same, the spool is closed after, and
    training leaves no file in the model's parent folder but the model."""
    import tempfile
    from epgembed.build.ingest.catalog_build import build_catalog
    from epgembed.build.ingest.epg import read_programmes
    from epgembed.build.pipeline import train_model
    catalog = build_catalog(read_programmes([tiny_dump]), TINY_CONFIG.catalog)
    spool = tempfile.TemporaryFile(dir=tmp_path)
    serialized = catalog.serialized(spool)
    assert list(tmp_path.iterdir()) == []                # unlinked from the start
    catalog.save(tmp_path / "a.jsonl")
    serialized.save(tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert spool.closed and serialized.jsonl is None
    out = tmp_path / "models" / "m"
    train_model([tiny_dump], out, TINY_CONFIG)
    assert [p.name for p in out.parent.iterdir()] == ["m"]
    assert (out / "catalog.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()
