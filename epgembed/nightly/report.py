"""The nightly run's JSON report and its one-line summary.

    ROOT/reports/<night>_<started>_<status>.json   every run (published, gated, error)
    ROOT/versions/<version>/report.json            the same report, for a published night

Written to a hidden temporary name, fsynced and renamed: a reader never sees half a report.
"""
from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

from epgembed import registry
from epgembed.fsutil import atomic_write, escape_name, utc

REPORTS = "reports"
REPORT_FORMAT = "epgembed-nightly-report/1"


def file_info(path: Path) -> dict:
    """Path (escaped: a name need not be UTF-8), size and time of an input file."""
    try:
        st = path.stat()
        return {"path": escape_name(str(path)), "bytes": st.st_size,
                "mtime": utc(st.st_mtime)}
    except OSError as e:
        return {"path": escape_name(str(path)), "error": e.strerror or str(e)}


def medians(recent: list[dict]) -> dict:
    keys = sorted({k for r in recent for k in r})
    return {k: statistics.median(r[k] for r in recent if k in r) for k in keys}


def new_report(dumps: list, root: Path, config: dict) -> dict:
    return {"format": REPORT_FORMAT, "started": utc(),
            "root": escape_name(str(root)), "dumps": [escape_name(str(d)) for d in dumps], "night": None,
            "previous": registry.current_version(root), "version": None, "pid": os.getpid(),
            "config": config}


def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=1, ensure_ascii=False, default=str).encode("utf-8"))


def write_reports(root: Path, report: dict, keep: int) -> Path:
    """ROOT/reports/<night>_<stamp>_<status>.json for every run (the newest `keep` kept),
    plus versions/<version>/report.json for a published one."""
    rdir = root / REPORTS
    rdir.mkdir(parents=True, exist_ok=True)
    for stale in rdir.glob(".*.tmp-*"):
        stale.unlink(missing_ok=True)
    stamp = report["started"].replace("-", "").replace(":", "")
    path = rdir / f"{report.get('night') or 'unknown'}_{stamp}_{report['status']}.json"
    _write_json(path, report)
    if report["status"] == "published":
        vdir = registry.versions_dir(root) / report["version"]
        _write_json(vdir / "report.json", report)
        path = vdir / "report.json"
    runs = sorted(rdir.glob("*.json"), key=lambda p: p.name.split("_", 1)[-1])
    for old in runs[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def _fig(x) -> str:
    return "n/a" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def summary_line(r: dict) -> str:
    """The one line a scheduler's log shows (figures rounded, words for missing values)."""
    head = f"nightly {r.get('night') or '?'}: {r['status'].upper()}"
    t = r.get("timings", {}).get("total_s")
    current = r.get("current_after") or "none published yet"
    if r["status"] == "error":
        return f"{head}: {r.get('error')} | current {current} | {_fig(t)} s"
    parts = [head + (f" {r['version']}" if r["status"] == "published" else "")]
    if r["status"] == "gated":
        parts.append(f"{r['gate']['stage']}: {'; '.join(r['gate']['reasons'])}")
    if r["status"] == "unchanged":
        parts.append("the same inputs and settings as the current version (--force retrains)")
    if "catalog" in r:
        c = r.get("changes", {})
        parts.append(f"{r['catalog']['shows']:,} shows (+{c.get('added', 0)} -{c.get('dropped', 0)}, "
                     f"{c.get('categories_changed', 0)} recategorised)")
    q = r.get("quality")
    if q:
        cur = q["current"].get("p_at_10d") if q.get("current") else None
        parts.append(f"P@10d {_fig(q['new'].get('p_at_10d'))} (current {_fig(cur)}, "
                     f"random {_fig(q['random'].get('p_at_10d'))}); P@10 {_fig(q['new']['p_at_10'])}")
    if r.get("stability"):
        parts.append(f"top-10 Jaccard {_fig(r['stability']['common'])}")
    if "warm_start" in r:
        parts.append("warm" if r["warm_start"]["used"] else "cold")
    parts.append(f"current {current}")
    parts.append(f"{_fig(t)} s")
    return " | ".join(parts)
