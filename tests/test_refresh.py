"""`epgembed refresh` (issue 24): titles a fresh dump adds, in the answers without training.

A tiny trained model (neighbour table narrower than the catalog, so rows are merged, not
recomputed) published in a root, then refreshed with a hand-made dump of three new titles
(one a new episode of a series the catalog has) and one moved airing of a known title.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from pathlib import Path

import msgspec
import numpy as np
import pytest

from epgembed import registry
from epgembed.artifact.manifest import read_manifest
from epgembed.cli.main import main
from epgembed.nightly.refresh import EXIT_REFUSED, RefreshConfig, run_refresh
from epgembed.query.load import load_model
from epgembed.query.requests import Options
from epgembed.query.search import TitleIndex
from epgembed.query.shapes import encode
from epgembed.query.vectors import top_k
from guide import TINY_CONFIG, programme_xml, tiny_programmes, write_xmltv
from nightly_util import leftovers
from polling import holds_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]

FIVE = Options(k=5)
SMALL_TABLE = TINY_CONFIG.replace(index={"neighbours": 10})
NEW = ["Football Champions Night", "Little Puppy Adventures", "Kitchen Heroes: Christmas Special"]
MOVED = "Football Tonight"


def update_programmes(titles=NEW) -> list[str]:
    """The new titles (a description each, their own slot) and a moved airing of a known one."""
    cats = {"Football": "Sport", "Puppy": "Kids", "Kitchen": "Cooking"}
    out = [programme_xml(t, [next(c for w, c in cats.items() if w in t)] if any(w in t for w in cats) else [],
                         channel=f"ch{1 + i % 2}", start=f"20260102{i:02d}0000 +0000")
           for i, t in enumerate(titles)]
    return out + [programme_xml(MOVED, ["Sport"], channel="ch2", start="20260103213000 +0000")]


@pytest.fixture(scope="module")
def base_model(tmp_path_factory, tiny_dump) -> Path:
    from epgembed.build.pipeline import train_model
    out = tmp_path_factory.mktemp("refresh-base") / "model"
    train_model([tiny_dump], out, SMALL_TABLE, threads=1)
    return out


@pytest.fixture
def root(tmp_path, base_model) -> Path:
    root = tmp_path / "root"
    registry.publish(root, base_model, move=False)
    return root


@pytest.fixture
def update(tmp_path) -> Path:
    return write_xmltv(tmp_path / "update.xml", update_programmes())


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_new_titles_get_ids_answers_and_search_hits_and_old_titles_stay_bit_for_bit(root, update):
    old_dir = registry.current_dir(root)
    old = load_model(old_dir)
    n = len(old)
    result = run_refresh([update], root)
    assert result.status == "published" and result.exit_code == 0, result.summary
    new_dir = registry.current_dir(root)
    new = load_model(new_dir)                          # verified and self-tested
    assert result.version == new.version != old.version
    ids = [new.resolve(t) for t in NEW]
    assert sorted(ids) == list(range(n, n + 3)) and len(new) == n + 3
    # the old titles: vectors, token table, tokenizer, center and catalog lines as they were
    assert np.asarray(new.vectors[:n]).tobytes() == np.asarray(old.vectors).tobytes()
    for name in ("embeddings.npy", "token_counts.npy", "center.npy", "tokenizer.json", "tokenizer.model"):
        assert sha(new_dir / name) == sha(old_dir / name), name
    assert (new_dir / "catalog.jsonl").read_bytes().startswith((old_dir / "catalog.jsonl").read_bytes())
    moved = old.resolve(MOVED)
    assert new.resolve(MOVED) == moved and new.catalog.shows[moved] == old.catalog.shows[moved]
    # the new ones: the vector their item tokens give, a row of the table, answers, search hits
    for i in ids:
        tokens = new.item_tokens(i)
        np.testing.assert_allclose(new.vector_of([t[0] for t in tokens], [t[2] for t in tokens]),
                                   new.vectors[i], rtol=0, atol=1e-6)
        row, _ = top_k(new.vectors, new.neighbours[0].shape[1], rows=[i])
        assert new.neighbours[0][i].tolist() == row[0].tolist()
        answer = new.related_to_id(i, FIVE)
        assert len(answer.related) == 5
        table = new.neighbours[0][i].tolist()
        assert [table.index(h.id) for h in answer.related] == sorted(table.index(h.id) for h in answer.related)
    search = TitleIndex.from_catalog(new.catalog)
    assert all(new.resolve(t) in [m.id for m in search.search(t[:12], 10)] for t in NEW)
    # the new episode joins its series; the manifest says what was added, and of which version
    christmas = new.catalog.shows[new.resolve(NEW[2])]
    assert christmas.series == "kitchen heroes"
    assert new.catalog.groups.of[christmas.id] == new.catalog.groups.of[new.resolve("Kitchen Heroes")]
    refresh = new.manifest.refresh
    assert (refresh.of, refresh.trained, refresh.first_added) == (old.version, old.version, n)
    assert refresh.added == [new.catalog.keys[i] for i in range(n, n + 3)] == result.added
    assert read_manifest(old_dir).refresh is None and leftovers(root) == []


def test_old_answers_change_only_where_a_new_title_enters_and_the_table_is_exact(root, update):
    old = load_model(registry.current_dir(root))
    n = len(old)
    run_refresh([update], root)
    new = load_model(registry.current_dir(root))
    k = new.neighbours[0].shape[1]
    exact_ids, exact_cos = top_k(new.vectors, k)
    np.testing.assert_allclose(new.neighbours[1], exact_cos, atol=1e-6)
    assert (new.neighbours[0] == exact_ids).mean() > 0.99          # ties may order apart
    entered = 0
    for i in range(n):
        before = [h.id for h in old.related_to_id(i, FIVE).related]
        after = [h.id for h in new.related_to_id(i, FIVE).related]
        if any(j >= n for j in after):
            entered += 1
            assert [j for j in after if j < n] == [j for j in before if j in after]
        else:
            assert after == before, i
    assert entered > 0                       # the new titles turn up in other titles' answers
    flagged = [h for i in range(n) for h in new.related_to_id(i, FIVE).related if h.refreshed]
    assert flagged and all(h.id >= n for h in flagged)
    assert b'"refreshed"' not in encode(old.related_to_id(0, FIVE))   # absent from a trained model's rows


def test_nothing_new_publishes_nothing(root, update):
    run_refresh([update], root)
    versions = [v["version"] for v in registry.list_versions(root)]
    again = run_refresh([update], root)
    assert (again.status, again.exit_code, again.version) == ("unchanged", 0, None)
    assert "nothing new" in again.summary and "nothing published" in again.summary
    assert [v["version"] for v in registry.list_versions(root)] == versions
    assert registry.current_version(root) == versions[-1]


def test_more_than_the_share_is_refused_with_the_nightly_named(root, tmp_path, capsys):
    before = registry.current_version(root)
    many = write_xmltv(tmp_path / "many.xml", update_programmes([f"Brand New Show {i}" for i in range(12)]))
    assert main(["refresh", "--dumps", str(many), "--models-root", str(root)]) == EXIT_REFUSED
    out = capsys.readouterr().out
    assert "12 titles the model lacks" in out and "run the nightly" in out
    assert registry.current_version(root) == before and len(registry.list_versions(root)) == 1
    assert run_refresh([many], root, RefreshConfig(max_share=0.5)).status == "published"


def test_a_malformed_dump_exits_2_naming_the_file_and_current_is_unchanged(root, tmp_path, capsys):
    before = registry.current_version(root)
    bad = tmp_path / "broken-update.xml"
    bad.write_text('<?xml version="1.0"?>\n<tv>\n<programme start="20260101" channel="a">\n'
                   "<title>Unclosed</title>\n</tv>\n")
    assert main(["refresh", "--dumps", str(bad), "--models-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "broken-update.xml:" in err and "nothing published" in err
    assert registry.current_version(root) == before and len(registry.list_versions(root)) == 1
    assert leftovers(root) == []


def test_a_held_lock_exits_with_the_message_or_is_waited_for(root, update, capsys):
    before = registry.current_version(root)
    with registry.locked(root, holder="nightly"):
        assert main(["refresh", "--dumps", str(update), "--models-root", str(root)]) == 75
        err = capsys.readouterr().err
        assert "held by another run" in err and "nightly" in err and "--wait" in err
        assert registry.current_version(root) == before
        done: dict = {}
        waiting = threading.Thread(target=lambda: done.update(r=run_refresh([update], root, RefreshConfig(wait_s=60))))
        waiting.start()
        holds_for(lambda: waiting.is_alive() and registry.current_version(root) == before, 0.5,
                  what="the refresh waiting for the lock")
    waiting.join(60)
    assert done["r"].status == "published" and registry.current_version(root) == done["r"].version


def test_refreshes_never_push_trained_versions_out_and_roll_back(root, tmp_path, tiny_model_dir):
    trained = [registry.current_version(root), registry.publish(root, tiny_model_dir, move=False)]
    made = []
    for i in range(3):
        dump = write_xmltv(tmp_path / f"u{i}.xml", update_programmes([f"Fresh Cooking Night {i}"]))
        made.append(run_refresh([dump], root, RefreshConfig(keep_refreshes=2)).version)
    rows = {v["version"]: v for v in registry.list_versions(root)}
    assert set(rows) == {*trained, *made[1:]}                 # the oldest refresh pruned, no trained one
    assert rows[made[2]]["refresh_of"] == made[1] and rows[made[2]]["added"] == 1
    last = load_model(registry.current_dir(root))
    assert last.manifest.refresh.trained == trained[1] and last.manifest.refresh.first_added == last.manifest.n_shows - 3
    assert registry.prune(root, 1, None) == [min(trained)]    # the nightly's count: trained versions only
                                                              # (the older by name: by when it was built)
    assert registry.rollback(root) == (made[2], made[1]) and load_model(registry.current_dir(root)).version == made[1]


def test_the_cli_and_versions_show_a_refresh(root, update, capsys):
    assert main(["refresh", "--dumps", str(update), "--models-root", str(root), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("refresh: PUBLISHED") and '"added"' in out
    assert main(["versions", "--models-root", str(root)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("*"))
    assert "refresh" in line and "+3 titles: refresh of" in line
    assert main(["info", str(registry.current_dir(root))]) == 0
    assert "ids 49 on are new since the last training" in capsys.readouterr().out


def test_the_probe_files_take_the_new_titles(tmp_path, tiny_dump):
    from epgembed.build.pipeline import train_model
    cfg = SMALL_TABLE.replace(index={"search_exact_max_shows": 20, "search_clusters": 1.0})
    train_model([tiny_dump], tmp_path / "model", cfg, threads=1)
    root = tmp_path / "root"
    registry.publish(root, tmp_path / "model")
    n = len(load_model(registry.current_dir(root)))
    run_refresh([write_xmltv(tmp_path / "u.xml", update_programmes())], root)
    new = load_model(registry.current_dir(root))
    probe = new.search
    assert new.manifest.search.method == "probe" and sorted(np.asarray(probe.order).tolist()) == list(range(n + 3))
    assert np.array_equal(np.asarray(probe.ordered), np.asarray(new.vectors)[np.asarray(probe.order)])
    for i in range(n, n + 3):
        ids, cos = probe(np.asarray(new.vectors[i]), 1)
        assert ids == [i] and cos[0] > 1 - 1e-5


def test_the_service_reloads_a_refresh_and_flags_the_new_titles(root, update):
    from service.state import state
    from service_util import serving_app
    with serving_app(root) as app:
        client = app.test_client()
        n = client.get("/v1/model").get_json()["shows"]
        version = run_refresh([update], root).version
        assert state(app).holder.check() is True
        assert client.get("/v1/model").get_json()["version"] == version
        new_id = client.get("/v1/titles?q=little puppy adv").get_json()["titles"][0]["id"]
        assert new_id >= n
        answer = client.get(f"/v1/titles/{new_id}/related?k=5").get_json()
        assert len(answer["related"]) == 5 and answer["model"]["version"] == version
        rows = [h for i in range(n) for h in client.get(f"/v1/titles/{i}/related?k=5").get_json()["related"]]
        assert any(h.get("refreshed") for h in rows)
        assert all(h.get("refreshed", False) == (h["id"] >= n) for h in rows)
        assert msgspec.json.decode(client.get("/openapi.json").data)["components"]["schemas"]["Hit"][
            "properties"]["refreshed"]["type"] == "boolean"


def test_the_next_nightly_trains_from_the_refreshed_version_as_from_any(nightly_root, daily_dumps, tmp_path):
    from epgembed.nightly.run import run_nightly
    from nightly_util import CFG, NCFG, nights_of
    nights = nights_of(nightly_root)
    update = write_xmltv(tmp_path / "update.xml", update_programmes())
    refreshed = run_refresh([update], nightly_root)
    assert refreshed.status == "published" and nights_of(nightly_root) == nights      # no history night
    # the night's own dumps bring the refreshed programmes again
    result = run_nightly([daily_dumps[-1], update], nightly_root, replace(NCFG, night="2022-07-26"), CFG)
    assert result.exit_code == 0, result.summary
    assert result.report["previous"] == refreshed.version and result.report["warm_start"]["used"]
    trained = load_model(registry.current_dir(nightly_root))
    assert trained.manifest.refresh is None and all(trained.resolve(t) is not None for t in NEW)
    assert refreshed.version in [v["version"] for v in registry.list_versions(nightly_root)]


def test_a_complete_orphan_of_a_killed_run_is_made_current_not_refused(root, update, monkeypatch):
    """A refresh killed after renaming its version into versions/ and before swapping
    `current` leaves that version behind; the next refresh, in the same second, makes the
    very same folder: it points `current` at the one there (once it loads)."""
    import epgembed.artifact.extend as extend
    base = registry.current_version(root)
    monkeypatch.setattr(extend.time, "time", lambda: 1_900_000_000.0)     # both runs in one second
    orphan = run_refresh([update], root).version
    registry.point_current(root, base)                                    # as if killed before the swap
    again = run_refresh([update], root)
    assert (again.status, again.version) == ("published", orphan) and registry.current_version(root) == orphan
    assert [v["version"] for v in registry.list_versions(root)] == [base, orphan]
