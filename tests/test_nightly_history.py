"""The nightly history under attack (issue 26): a partial dump dated onto a stored night,
a damaged meta file, foreign folders in versions/, a file name that is not UTF-8, a
night staged by a run killed after its swap. Each test works on a copy of the five nights."""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from epgembed import registry
from epgembed.cli.main import main
from epgembed.nightly import history
from epgembed.nightly.run import EXIT_GATED, EXIT_PUBLISHED, run_nightly
from nightly_util import CFG, NCFG, NIGHTS, assert_current_valid, nights_of, rewrite_dump

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]


def shifted_and_cut(text: str, days: int, keep: float) -> str:
    """The dump's dates moved by `days`, and only the programmes of the first `keep` share
    of its distinct titles (sorted) kept."""
    def shift(m: re.Match) -> str:
        d = date(int(m[2]), int(m[3]), int(m[4])) + timedelta(days=days)
        return f'{m[1]}="{d:%Y%m%d}'
    text = re.sub(r'(start|stop)="(\d{4})(\d{2})(\d{2})', shift, text)
    titles = sorted(set(re.findall(r"<title[^>]*>([^<]*)</title>", text)))
    dropped = set(titles[int(len(titles) * keep):])
    head, *programmes = text.split("<programme ")
    kept = [p for p in programmes if re.search(r"<title[^>]*>([^<]*)</title>", p)[1] not in dropped]
    return "<programme ".join([head, *kept]).rsplit("</programme>", 1)[0] + "</programme>\n</tv>\n"


def stored(root: Path, night: str) -> tuple[bytes, bytes]:
    hdir = history.history_dir(root)
    return (hdir / f"{night}.jsonl.gz").read_bytes(), (hdir / f"{night}.json").read_bytes()


# ---------------------------------------------------------------- 2: a partial night
def test_a_partial_dump_dated_onto_a_stored_night_is_gated(nightly_root, daily_dumps, tmp_path):
    """Issue 26.2: the 07-25 dump cut to 62% of its titles, dated 07-23 (a night the history
    holds): gated with the reason, the stored night kept byte for byte; --force replaces it."""
    root, before = nightly_root, registry.current_version(nightly_root)
    kept, night = nights_of(root), "2022-07-23"
    assert night in kept
    old = stored(root, night)
    partial = rewrite_dump(daily_dumps[-1], tmp_path / "p.xml.gz", lambda t: shifted_and_cut(t, -2, 0.62))
    result = run_nightly([partial], root, NCFG, CFG)
    assert result.exit_code == EXIT_GATED, result.summary
    assert result.report["night"] == night and result.report["gate"]["stage"] == "input"
    assert any(f"would shrink the stored night {night}" in r for r in result.report["gate"]["reasons"]), \
        result.report["gate"]
    assert stored(root, night) == old and nights_of(root) == kept
    assert_current_valid(root, before)
    forced = run_nightly([partial], root, replace(NCFG, force=True), CFG)
    assert forced.exit_code == EXIT_PUBLISHED, forced.summary
    assert any("would shrink" in r for r in forced.report["forced"])
    meta = history.read_meta(root, date.fromisoformat(night))
    assert meta["stats"]["programmes"] == forced.report["input_stats"]["programmes"]
    assert meta["version"] == forced.report["version"] == registry.current_version(root)


def test_the_same_night_again_is_not_a_shrink(nightly_root, daily_dumps):
    """The night's own dump once more (a retry with --force): no shrink, published."""
    result = run_nightly([daily_dumps[-1]], nightly_root, replace(NCFG, force=True), CFG)
    assert result.exit_code == EXIT_PUBLISHED and "forced" not in result.report, result.summary
    assert nights_of(nightly_root) == NIGHTS[2:]


# ---------------------------------------------------------------- 5: a programme over a limit
def test_a_programme_over_a_limit_is_skipped_not_an_error(nightly_root, daily_dumps, tmp_path):
    """Issue 26.5: one programme with 300 categories and one on a 1,001-character channel
    made every nightly an error; now they are skipped with file and line, and it publishes."""
    cats = "".join(f"<category>c{i}</category>" for i in range(300))
    bad = (f'<programme start="20220726200000 +0000" channel="ard"><title>Cats 300</title>{cats}</programme>\n'
           f'<programme start="20220726210000 +0000" channel="{"c" * 1001}"><title>Far Away</title>'
           "<category>News</category></programme>\n")
    dump = rewrite_dump(daily_dumps[-1], tmp_path / "d.xml.gz", lambda t: t.replace("</tv>", bad + "</tv>"))
    result = run_nightly([dump], nightly_root, replace(NCFG, night="2022-07-26"), CFG)
    assert result.exit_code == EXIT_PUBLISHED, result.summary
    skipped = {why.split(" (")[0]: (name, line) for name, line, why in result.report["read"]["skipped"]}
    assert skipped["too many categories"][0] == str(dump) and skipped["too many categories"][1] > 1
    assert skipped["channel id too long"][1] == skipped["too many categories"][1] + 1


# ---------------------------------------------------------------- 6: a damaged history file
def test_a_damaged_meta_file_is_named_and_its_night_kept(nightly_root, daily_dumps, capsys):
    """Issue 26.6: a 0-byte history/2022-07-24.json stopped every nightly with a bare
    JSONDecodeError, and `versions --verify` said rc 0. Now verify names it (rc 1) and the
    nightly publishes, naming it, with that night's programmes still in training."""
    root = nightly_root
    (history.history_dir(root) / "2022-07-24.json").write_bytes(b"")
    assert main(["versions", "--models-root", str(root), "--verify"]) == 1
    out = capsys.readouterr().out
    assert "history/2022-07-24.json" in out and "BROKEN" in out, out
    result = run_nightly([daily_dumps[-1]], root, replace(NCFG, night="2022-07-26"), CFG)
    assert result.exit_code == EXIT_PUBLISHED, result.summary
    assert any("history/2022-07-24.json" in w for w in result.report["warnings"]), result.report["warnings"]
    assert "2022-07-24" in result.report["history"]["nights_used"]      # its programmes kept
    assert "2022-07-24" in nights_of(root)


def test_a_damaged_night_file_is_named_and_left_out(nightly_root, daily_dumps, capsys):
    root = nightly_root
    data = history.history_dir(root) / "2022-07-24.jsonl.gz"
    data.write_bytes(data.read_bytes()[:-100])                           # a truncated gzip stream
    assert main(["versions", "--models-root", str(root), "--verify"]) == 1
    assert "history/2022-07-24.jsonl.gz" in capsys.readouterr().out
    assert main(["versions", "--models-root", str(root)]) == 0          # hashes and history unread
    capsys.readouterr()
    # without the night a third of the catalog goes: the catalog gate's to decide (forced here)
    result = run_nightly([daily_dumps[-1]], root, replace(NCFG, night="2022-07-26", force=True), CFG)
    assert result.exit_code == EXIT_PUBLISHED, result.summary
    assert "2022-07-24" not in result.report["history"]["nights_used"]
    assert any("history/2022-07-24.jsonl.gz" in w and "left out" in w for w in result.report["warnings"])


# ---------------------------------------------------------------- 12: foreign folders
def test_foreign_folders_in_versions_do_not_stop_the_nightly(nightly_root, daily_dumps):
    """Issue 26.12: the nightly published, then failed with KeyError: 'created' (exit 2)
    and skipped pruning. Now it prunes the real versions and names the foreign ones."""
    root, vdir = nightly_root, registry.versions_dir(nightly_root)
    (vdir / "zz-foreign").mkdir()
    (vdir / "zz-foreign" / "manifest.json").write_text(
        '{"format": "epgembed-model", "format_version": 1, "version": "zz-foreign"}')
    (vdir / "000-notes").mkdir()
    versions = [v["version"] for v in registry.list_versions(root) if "error" not in v]
    result = run_nightly([daily_dumps[-1]], root, replace(NCFG, night="2022-07-26"), CFG)
    assert result.exit_code == EXIT_PUBLISHED, result.summary
    assert result.report["pruned"]["versions"] == versions[:1]
    warned = " ".join(result.report["warnings"])
    assert "versions/zz-foreign" in warned and "versions/000-notes" in warned, warned
    assert (vdir / "zz-foreign").is_dir() and (vdir / "000-notes").is_dir()


# ---------------------------------------------------------------- 13: a file name not UTF-8
def test_a_dump_whose_name_is_not_utf8_is_read(nightly_root, daily_dumps, tmp_path):
    """Issue 26.13: the nightly stopped with a bare codec error (its report, the manifest
    and the history meta hold the name); now the name is escaped and the dump read."""
    path = tmp_path / os.fsdecode(b"night\xff.xml.gz")
    shutil.copy(daily_dumps[-1], path)
    result = run_nightly([path], nightly_root, replace(NCFG, night="2022-07-26"), CFG)
    assert result.exit_code == EXIT_PUBLISHED, result.summary
    shown = str(tmp_path / "night\\xff.xml.gz")
    assert result.report["inputs"][0]["path"] == shown and result.report["dumps"] == [shown]
    assert history.read_meta(nightly_root, date(2022, 7, 26))["inputs"][0]["path"] == shown
    assert json.loads(result.report_path.read_text(encoding="utf-8"))["inputs"][0]["path"] == shown


# ---------------------------------------------------------------- 14: a feature kind vanished
def test_a_feature_kind_that_vanished_is_warned_about(nightly_root, daily_dumps, tmp_path):
    """Issue 26.14: tonight's feed lost its <rating> elements; with only tonight in the
    window the catalog has no rating feature left: the report warns, whatever the gates say."""
    dump = rewrite_dump(daily_dumps[-1], tmp_path / "r.xml.gz",
                        lambda t: re.sub(r"<rating\b.*?</rating>", "", t, flags=re.DOTALL))
    result = run_nightly([dump], nightly_root, replace(NCFG, night="2022-07-26", history_nights=1, force=True),
                         CFG)
    assert result.status in ("published", "gated") and "training" in result.report, result.summary
    assert any("feature kinds gone since the last version: rating" in w for w in result.report["warnings"]), \
        result.report["warnings"]
