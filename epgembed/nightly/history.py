"""The nightly input history kept in a models root: what past nights' dumps contained.

    ROOT/history/<YYYY-MM-DD>.jsonl.gz   the night's programmes (nightfile.py)
    ROOT/history/<YYYY-MM-DD>.json       the night's meta: inputs, input statistics

A night counts only once its meta file exists; both files are written to hidden temporary names, fsynced and renamed, data first, so a
crash leaves either the complete night or nothing (plus a hidden temp file that
`clean_tmp` removes). The nightly job stages a night (`stage_night`) before it publishes and
commits it after, so a published version always has its night in the history: a run
killed between its swap and its commit leaves the night staged for the version that is now
current, and the next run commits it (`recover_staged`) before it cleans anything.

Retention is by count of nights received (`retained`, `prune_nights`), never by the dates
inside a dump: a mis-dated dump cannot age the real nights out.

A night's date comes from its programmes' start times (the first day that carries a
real share of the listings; a dump starts with a few programmes of the previous evening),
or from the newest input file's mtime when no start time parses.
"""
from __future__ import annotations

import json
import os
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from epgembed.fsutil import fsync_dir, utc, write_synced
from epgembed.build.ingest.epg import Programme
from epgembed.nightly.nightfile import NightFileError, encode_programmes, read_programmes
from epgembed.text.normalize import normalize_category, title_forms

HISTORY = "history"
_NIGHT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_START = re.compile(r"^(\d{4})(\d{2})(\d{2})")


def history_dir(root: Path) -> Path:
    return Path(root) / HISTORY


# ---------------------------------------------------------------- night dates
def parse_night(text: str) -> date:
    if not _NIGHT.match(text):
        raise ValueError(f"night {text!r} is not YYYY-MM-DD")
    return date.fromisoformat(text)


def start_date(start: str) -> date | None:
    """The calendar date of an XMLTV start time ("20220721003300 +0000"), as written."""
    m = _START.match(start or "")
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def night_of(starts: Iterable[str], fallback_mtime: float | None, min_share: float = 0.1) -> date:
    """The earliest day with at least `min_share` of the busiest day's programmes."""
    days = Counter(d for d in map(start_date, starts) if d is not None)
    if days:
        busiest = max(days.values())
        return min(d for d, n in days.items() if n >= min_share * busiest)
    if fallback_mtime is None:
        raise ValueError("no programme start times and no file time to date the night by")
    return date.fromtimestamp(fallback_mtime)


# ---------------------------------------------------------------- statistics
def key_categories(programmes: Iterable[Programme]) -> dict[str, set[str]]:
    """Normalized categories per title key (keys without categories included, empty)."""
    out: dict[str, set[str]] = {}
    for p in programmes:
        cats = out.setdefault(title_forms(p.title).key, set())
        cats.update(c for c in map(normalize_category, p.categories) if c)
    return out


def input_stats(programmes: list[Programme], max_share: float = 0.3) -> dict:
    """Counts the input gate compares with recent nights. `usable_categories`: categories
    that could supervise training (on at least 2 shows and at most `max_share` of them)."""
    labelled = sum(1 for p in programmes if p.categories)
    by_key = key_categories(programmes)
    per_cat = Counter(c for cats in by_key.values() for c in cats)
    shows = len(by_key)
    usable = sum(1 for k in per_cat.values() if k >= 2 and k <= max_share * shows)
    return {"programmes": len(programmes), "shows": shows,
            "labelled_share": round(labelled / len(programmes), 4) if programmes else 0.0,
            "categories": len(per_cat), "usable_categories": usable,
            "channels": len({p.channel for p in programmes})}


def category_names(programmes: Iterable[Programme]) -> list[str]:
    """Tonight's normalized category names (stored in the night's meta)."""
    return sorted({c for p in programmes for c in map(normalize_category, p.categories) if c})


def label_agreement(tonight: Iterable[Programme], past: Iterable[Programme],
                    min_common: int = 20) -> tuple[float | None, int]:
    """Of the shows labelled both tonight and in the past nights, the share whose
    categories overlap: about 1.0 on a real feed, low when labels were shuffled or
    renamed. (None, n) when fewer than `min_common` shows are comparable."""
    now, before = key_categories(tonight), key_categories(past)
    common = [k for k, cats in now.items() if cats and before.get(k)]
    if len(common) < min_common:
        return None, len(common)
    return round(sum(1 for k in common if now[k] & before[k]) / len(common), 4), len(common)


def merge(nights: Iterable[Iterable[Programme]]) -> list[Programme]:
    """One programme per airing (channel, start), the latest night's listing winning.

    Consecutive dumps overlap by days; without this an airing listed by three dumps
    would count three times.
    """
    out: dict[tuple[str, str, str], Programme] = {}
    for programmes in nights:
        for p in programmes:
            key = (p.channel, p.start, "" if p.start else p.title)
            out.pop(key, None)  # re-insert: order follows the latest listing
            out[key] = p
    return list(out.values())


# ---------------------------------------------------------------- store
@dataclass
class StagedNight:
    """A night written to hidden, fsynced temp files, not yet counted: `commit` renames
    them into place (data first; the meta file commits the night), `discard` removes them.
    The nightly job stages before it publishes and commits after, so a night that cannot be
    written (a full disk) stops the run before anything is published."""
    hdir: Path
    night: date
    files: tuple[tuple[Path, Path], ...]      # (temp, final), data first

    def commit(self) -> Path:
        for tmp, final in self.files:
            os.replace(tmp, final)
        fsync_dir(self.hdir)
        return self.files[0][1]

    def discard(self) -> None:
        for tmp, _ in self.files:
            tmp.unlink(missing_ok=True)


def stage_night(root: Path, night: date, programmes: list[Programme], meta: dict) -> StagedNight:
    """Write a night's programmes and meta to temp files (see StagedNight). The meta records
    the order nights were received in (`received`), which retention follows."""
    hdir = history_dir(root)
    hdir.mkdir(parents=True, exist_ok=True)
    data = encode_programmes(programmes)
    meta = {"night": night.isoformat(), "written": utc(), "received": _next_received(root), **meta}
    token = uuid.uuid4().hex[:8]            # one suffix for both: recover_staged pairs them
    staged = StagedNight(hdir, night, tuple(
        (hdir / f".{final}{_STAGED}{token}", hdir / final)
        for final in (f"{night.isoformat()}.jsonl.gz", f"{night.isoformat()}.json")))
    try:
        write_synced(staged.files[0][0], data)
        write_synced(staged.files[1][0], json.dumps(meta, indent=1).encode("utf-8"))
    except BaseException:
        staged.discard()
        raise
    return staged


class HistoryError(ValueError):
    """A history file that cannot be read; the message names it."""


def committed_nights(root: Path) -> list[date]:
    """Nights whose data and meta are both present, in the order they were received
    (oldest first; nights stored before `received` was recorded come first, by date; a
    night whose meta is unreadable comes right after the nights received before its date)."""
    hdir = history_dir(root)
    if not hdir.is_dir():
        return []
    received = {}
    for meta in hdir.glob("*.json"):
        if _NIGHT.match(meta.stem) and (hdir / f"{meta.stem}.jsonl.gz").is_file():
            night = date.fromisoformat(meta.stem)
            received[night] = _received(root, night)
    known = {n: r for n, r in received.items() if r is not None}
    order = {n: known.get(n, max((r for d, r in known.items() if d < n), default=0) + 0.5)
             for n in received}
    return sorted(received, key=lambda n: (order[n], n))


def _received(root: Path, night: date) -> int | None:
    """The night's place in the order received (0: not recorded), None: unreadable meta."""
    try:
        meta = read_meta(root, night)
    except HistoryError:
        return None
    try:
        return int(meta.get("received", 0))
    except (ValueError, TypeError):
        return 0


def _next_received(root: Path) -> int:
    return 1 + max((r for n in committed_nights(root) if (r := _received(root, n)) is not None), default=0)


def retained(root: Path, tonight: date, nights: int) -> list[date]:
    """The past nights a run on `tonight` trains with: the last `nights - 1` received
    (tonight itself makes `nights`), whatever dates they carry. A dump dated far from the
    others does not push real nights out of the window (the nightly gate refuses it)."""
    past = [n for n in committed_nights(root) if n != tonight]
    return past[-(nights - 1):] if nights > 1 else []


def read_night(root: Path, night: date) -> Iterator[Programme]:
    """The night's programmes; HistoryError naming the file (and line) when it is damaged."""
    path = history_dir(root) / f"{night.isoformat()}.jsonl.gz"
    try:
        yield from read_programmes(path, f"{HISTORY}/{path.name}")
    except NightFileError as e:
        raise HistoryError(str(e)) from None


def read_meta(root: Path, night: date) -> dict:
    """The night's meta; HistoryError naming the file when it is missing or damaged."""
    path = history_dir(root) / f"{night.isoformat()}.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise HistoryError(f"{HISTORY}/{path.name}: unreadable night meta ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict):
        raise HistoryError(f"{HISTORY}/{path.name}: not a night meta (a JSON {type(meta).__name__})")
    return meta


def stored_meta(root: Path, night: date) -> dict | None:
    """The meta of `night` when the history holds it (committed, readable), else None."""
    if night not in committed_nights(root):
        return None
    try:
        return read_meta(root, night)
    except HistoryError:
        return None


def recent_metas(root: Path, tonight: date, n: int) -> list[dict]:
    """The meta files of the last `n` nights received, other than tonight's date (an
    unreadable one left out: `damaged_metas` names it)."""
    out = []
    for night in retained(root, tonight, n + 1):
        try:
            out.append(read_meta(root, night))
        except HistoryError:
            pass
    return out


def recent_stats(root: Path, tonight: date, n: int) -> list[dict]:
    """Input statistics of the last `n` nights received, other than tonight's date."""
    return [m.get("stats", {}) for m in recent_metas(root, tonight, n)]


def damaged_metas(root: Path) -> list[str]:
    """What is wrong with the meta files of the committed nights, each naming its file."""
    out = []
    for night in committed_nights(root):
        try:
            read_meta(root, night)
        except HistoryError as e:
            out.append(f"{e}: the night's statistics are left out of the gates, its programmes kept")
    return out


def verify_nights(root: Path) -> list[tuple[str, str]]:
    """(file, problem) for every committed night file that cannot be read to its end:
    metas, and the programmes, every line (what `epgembed versions --verify` adds)."""
    problems = []
    for night in committed_nights(root):
        for name, read in ((f"{night.isoformat()}.json", lambda: read_meta(root, night)),
                           (f"{night.isoformat()}.jsonl.gz", lambda: sum(1 for _ in read_night(root, night)))):
            try:
                read()
            except HistoryError as e:
                problems.append((f"{HISTORY}/{name}", str(e)))
    return problems


def prune_nights(root: Path, keep: int) -> list[str]:
    """Delete all but the `keep` nights received last (meta first: the night stops
    counting). By count, never by the dates a dump carries."""
    if keep < 1:
        raise ValueError("keep must be >= 1")
    hdir = history_dir(root)
    gone = []
    for night in committed_nights(root)[:-keep]:
        (hdir / f"{night.isoformat()}.json").unlink(missing_ok=True)
        (hdir / f"{night.isoformat()}.jsonl.gz").unlink(missing_ok=True)
        gone.append(night.isoformat())
    return gone


_STAGED = ".tmp-"
_STAGED_META = re.compile(r"^\.(\d{4}-\d{2}-\d{2})\.json\.tmp-(\w+)$")


def recover_staged(root: Path, current: str | None) -> list[str]:
    """Commit the nights staged for the version that is `current`: a run killed after its
    swap and before its commit published that version; its night belongs to it (a night
    staged for any other version is left to `clean_tmp`). Call it under the lock, before
    cleaning. Returns the nights committed."""
    hdir = history_dir(root)
    if current is None or not hdir.is_dir():
        return []
    done = []
    for meta_tmp in sorted(hdir.iterdir()):
        m = _STAGED_META.match(meta_tmp.name)
        if not m:
            continue
        try:
            meta = json.loads(meta_tmp.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue                # written after the data: half a meta, nothing was published
        if not isinstance(meta, dict) or meta.get("version") != current:
            continue
        night, token = m[1], m[2]
        data_tmp, data = hdir / f".{night}.jsonl.gz{_STAGED}{token}", hdir / f"{night}.jsonl.gz"
        if data_tmp.exists():
            os.replace(data_tmp, data)
        elif not data.exists():
            continue
        os.replace(meta_tmp, hdir / f"{night}.json")
        fsync_dir(hdir)
        done.append(night)
    return done


def clean_tmp(root: Path) -> list[str]:
    """Remove hidden temp files and data files without meta (a crash mid-commit)."""
    hdir = history_dir(root)
    if not hdir.is_dir():
        return []
    gone = []
    for p in sorted(hdir.iterdir()):
        orphan = p.name.endswith(".jsonl.gz") and not (hdir / p.name.replace(".jsonl.gz", ".json")).exists()
        if p.name.startswith(".") or orphan:
            p.unlink(missing_ok=True)
            gone.append(f"{HISTORY}/{p.name}")
    return gone
