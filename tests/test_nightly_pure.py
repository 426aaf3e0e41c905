"""The nightly job's pure parts: dating a night, merging, the history store and its
retention by count, the gates, the held-out split, neighbour stability."""
from __future__ import annotations

import os
from datetime import date

import numpy as np
import pytest

from epgembed.nightly import history, nightfile
from nightly_util import write_night
from epgembed.build.ingest.epg import Programme
from epgembed.nightly.gates import (NightlyConfig, catalog_reasons, consistency_reasons, input_reasons,
                                    quality_reasons)
from epgembed.nightly.quality import in_holdout, neighbour_stability

pytestmark = pytest.mark.unit


# ---------------------------------------------------------------- pure parts
def test_night_is_dated_by_its_listings():
    starts = ["20220720230000 +0000"] * 5 + ["20220721010000 +0000"] * 100 + ["20220722010000 +0000"] * 90
    assert history.night_of(starts, None) == date(2022, 7, 21)
    assert history.night_of([], 0.0) == date.fromtimestamp(0.0)


def test_merge_keeps_one_airing_latest_listing_wins():
    def prog(title: str, start: str) -> Programme:
        return Programme(title, None, None, ("Drama",), "ch", start, "x", 1)
    merged = history.merge([[prog("Old", "1"), prog("A", "2")], [prog("New", "1")]])
    assert sorted(p.title for p in merged) == ["A", "New"]


def test_history_round_trip_keeps_what_the_catalog_uses(tmp_path):
    progs = [Programme("Tatort", "Im Schmerz geboren", "Ein Krimi.", ("Krimi", "Drama"), "ARD",
                       "20220721201500 +0000", "x.xml", 7),
             Programme("Tagesschau", None, None, (), "ARD", "20220721200000 +0000", "x.xml", 9)]
    write_night(tmp_path, date(2022, 7, 21), progs, {"stats": {"programmes": 2}})
    back = list(history.read_night(tmp_path, date(2022, 7, 21)))
    assert [nightfile.to_row(p) for p in back] == [nightfile.to_row(p) for p in progs]
    assert history.committed_nights(tmp_path) == [date(2022, 7, 21)]
    assert history.recent_stats(tmp_path, date(2022, 7, 22), 7) == [{"programmes": 2}]


def test_input_and_quality_gates():
    stats = {"programmes": 1000, "shows": 300, "labelled_share": 0.9}
    recent = [{"programmes": 11000, "shows": 3000, "labelled_share": 0.95}] * 3
    reasons = input_reasons(stats, recent, [], 0.5)
    assert len(reasons) == 2 and "far fewer programmes" in reasons[0]
    assert input_reasons(stats, [], [], 0.5) == []
    assert "no categories" in input_reasons({**stats, "labelled_share": 0.0}, [], [], 0.5)[0]
    ncfg = NightlyConfig()
    rand = {"p_at_10": 0.12, "p_at_10d": 0.12}
    # the gate reads P@10d (one answer per series), not P@10
    assert quality_reasons({"p_at_10": 0.1, "p_at_10d": 0.40, "n_test": 500}, {"p_at_10": 0.9, "p_at_10d": 0.42},
                           rand, ncfg) == []
    assert "P@10d dropped" in quality_reasons({"p_at_10": 0.9, "p_at_10d": 0.38, "n_test": 500},
                                              {"p_at_10": 0.1, "p_at_10d": 0.42}, rand, ncfg)[0]
    assert "random" in quality_reasons({"p_at_10": 0.9, "p_at_10d": 0.15, "n_test": 500}, None, rand, ncfg)[0]
    assert "cannot be measured" in quality_reasons({"p_at_10d": 0.5, "n_test": 3}, None, rand, ncfg)[0]


def test_a_dump_for_a_stored_night_is_compared_with_that_night():
    """Issue 26.2: besides the median, the input gate's ratio holds against the night the
    history already has for tonight's date; any shrink of it is a consistency reason."""
    stats = {"programmes": 1000, "shows": 300, "labelled_share": 0.9}
    recent = [{"programmes": 1100, "shows": 320, "labelled_share": 0.9}] * 3
    stored = {"night": "2022-07-23", "stats": {"programmes": 2500, "shows": 330, "labelled_share": 0.9}}
    assert input_reasons(stats, recent, [], 0.5) == []
    reasons = input_reasons(stats, recent, [], 0.5, stored)
    assert reasons == ["far fewer programmes than the stored night 2022-07-23: 1,000 vs 2,500"]
    ncfg = NightlyConfig()
    shrink = consistency_reasons(date(2022, 7, 23), stats, [], [], ncfg, stored)
    assert len(shrink) == 1 and "would shrink the stored night 2022-07-23" in shrink[0]
    assert "2,500 to 1,000 programmes" in shrink[0] and "330 to 300 shows" in shrink[0]
    assert "--force" in shrink[0]
    same = {"night": "2022-07-23", "stats": dict(stats)}
    assert consistency_reasons(date(2022, 7, 23), stats, [], [], ncfg, same) == []
    assert consistency_reasons(date(2022, 7, 23), stats, [], [], ncfg, {"night": "2022-07-23"}) == []


def test_holdout_is_stable_and_about_a_fifth():
    keys = [f"show {i}" for i in range(5000)]
    held = [k for k in keys if in_holdout(k, 0, 0.2)]
    assert 0.18 < len(held) / len(keys) < 0.22
    assert held == [k for k in keys if in_holdout(k, 0, 0.2)]
    assert held != [k for k in keys if in_holdout(k, 1, 0.2)]


def test_neighbour_stability_measures_overlap():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    keys = [f"k{i}" for i in range(50)]
    same = neighbour_stability(keys, v, keys[::-1], v[::-1], k=5)
    assert same["common"] == 1.0 and same["served"] == 1.0 and same["shows_in_both"] == 50
    other = neighbour_stability(keys, v, keys, rng.normal(size=(50, 8)).astype(np.float32), k=5)
    assert other["common"] < 0.5



def _prog(title: str, cats: tuple[str, ...], start: str = "20220721201500 +0000") -> Programme:
    return Programme(title, None, None, cats, "ARD", start, "x.xml", 1)


def test_retention_counts_nights_received_not_their_dates(tmp_path):
    """A mis-dated night received last does not push the real nights out of the window,
    and pruning keeps the nights received last, whatever their dates."""
    for night in (date(2022, 7, 21), date(2022, 7, 22), date(2022, 7, 23), date(2022, 8, 24)):
        write_night(tmp_path, night, [_prog("Tatort", ("Krimi",))], {"stats": {}})
    assert history.retained(tmp_path, date(2022, 8, 24), 3) == [date(2022, 7, 22), date(2022, 7, 23)]
    # a backfilled older night counts as received last
    write_night(tmp_path, date(2022, 7, 20), [_prog("Tatort", ("Krimi",))], {"stats": {}})
    assert history.committed_nights(tmp_path)[-1] == date(2022, 7, 20)
    assert history.prune_nights(tmp_path, 3) == ["2022-07-21", "2022-07-22"]
    assert history.committed_nights(tmp_path) == [date(2022, 7, 23), date(2022, 8, 24), date(2022, 7, 20)]
    with pytest.raises(ValueError):
        history.prune_nights(tmp_path, 0)


def test_a_staged_night_counts_only_once_committed(tmp_path):
    staged = history.stage_night(tmp_path, date(2022, 7, 21), [_prog("Tatort", ("Krimi",))], {})
    assert history.committed_nights(tmp_path) == []
    assert len(list(history.history_dir(tmp_path).iterdir())) == 2        # two hidden temp files
    staged.discard()
    assert list(history.history_dir(tmp_path).iterdir()) == []
    history.stage_night(tmp_path, date(2022, 7, 21), [_prog("Tatort", ("Krimi",))], {}).commit()
    assert history.committed_nights(tmp_path) == [date(2022, 7, 21)]


@pytest.mark.parametrize("data_committed", [False, True])
def test_a_night_staged_for_the_current_version_is_recovered(tmp_path, data_committed):
    """Issue 26.3: a run killed after its swap left its night staged (or half committed:
    data renamed, meta not): the next run commits it when its version is current, and
    leaves any other staged night to clean_tmp."""
    night, other = date(2022, 7, 22), date(2022, 7, 23)
    staged = history.stage_night(tmp_path, night, [_prog("Tatort", ("Krimi",))], {"version": "v2"})
    history.stage_night(tmp_path, other, [_prog("Tatort", ("Krimi",))], {"version": "v3"})
    if data_committed:
        os.replace(*staged.files[0])
    assert history.recover_staged(tmp_path, None) == []
    assert history.recover_staged(tmp_path, "v2") == ["2022-07-22"]
    assert history.committed_nights(tmp_path) == [night]
    assert history.read_meta(tmp_path, night)["version"] == "v2"
    assert [p.title for p in history.read_night(tmp_path, night)] == ["Tatort"]
    assert len(history.clean_tmp(tmp_path)) == 2                         # the other version's night
    assert history.committed_nights(tmp_path) == [night] and history.recover_staged(tmp_path, "v2") == []


def test_label_agreement_and_usable_categories():
    past = [_prog(f"Show {i}", (f"genre {i % 5}",)) for i in range(40)]
    same = [_prog(f"Show {i}", (f"genre {i % 5}", "Extra")) for i in range(40)]
    shuffled = [_prog(f"Show {i}", (f"genre {(i + 1) % 5}",)) for i in range(40)]
    assert history.label_agreement(same, past) == (1.0, 40)
    assert history.label_agreement(shuffled, past) == (0.0, 40)
    assert history.label_agreement(same[:5], past) == (None, 5)           # too few to compare
    stats = history.input_stats(past + [_prog("Lone", ("rare",))])
    # 5 genres on 8 shows of 41 each (<= 30%), "rare" on one show only: 5 usable
    assert stats["categories"] == 6 and stats["usable_categories"] == 5
    collapsed = history.input_stats([_prog(f"Show {i}", ("Sonstiges",)) for i in range(40)])
    assert collapsed["usable_categories"] == 0                            # on every show: broad


def test_consistency_gates():
    ncfg = NightlyConfig()
    recent = [{"night": f"2022-07-2{d}", "stats": {"usable_categories": 100},
               "category_names": [f"c{i}" for i in range(100)]} for d in (1, 2, 3)]
    names = [f"c{i}" for i in range(100)]
    ok = {"usable_categories": 95}
    assert consistency_reasons(date(2022, 7, 24), ok, names, recent, ncfg) == []
    assert consistency_reasons(date(2022, 7, 30), ok, names, recent, ncfg) == []     # 7 days: fine
    far = consistency_reasons(date(2022, 8, 24), ok, names, recent, ncfg)
    assert len(far) == 1 and "far outside the recent nights (2022-07-21 .. 2022-07-23" in far[0]
    assert "far outside" in consistency_reasons(date(2022, 7, 1), ok, names, recent, ncfg)[0]
    collapsed = consistency_reasons(date(2022, 7, 24), {"usable_categories": 0}, ["sonstiges"], recent, ncfg)
    assert len(collapsed) == 2 and "usable categories" in collapsed[0] and "0 vs median 100" in collapsed[0]
    renamed = consistency_reasons(date(2022, 7, 24), ok, [f"x{i}" for i in range(100)], recent, ncfg)
    assert len(renamed) == 1 and "0% of the last night's 100 category names" in renamed[0]
    assert consistency_reasons(date(2030, 1, 1), ok, [], [], ncfg) == []          # first night
    assert catalog_reasons(0.999, {"dropped": 299}, 1000, ncfg) == []
    dropped = catalog_reasons(0.999, {"dropped": 301}, 1000, ncfg)
    assert len(dropped) == 1 and "drop 301 of the current 1,000 shows" in dropped[0]
    assert "shuffled" in catalog_reasons(0.2, {"dropped": 0}, 1000, ncfg)[0]
    assert catalog_reasons(None, {"dropped": 10}, 0, ncfg) == []                  # nothing to compare
