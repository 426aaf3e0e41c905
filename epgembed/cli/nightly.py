"""`epgembed nightly`, `epgembed rollback`, `epgembed versions` (registered by cli.py).

    epgembed nightly --dumps tonight.xml.gz --models-root /srv/epgembed [--history-nights 14] [--keep 7] [--force]
    epgembed rollback --models-root /srv/epgembed [--to VERSION]
    epgembed versions --models-root /srv/epgembed [--json]

Exit codes of `nightly`: 0 published, 3 gated (nothing published, current unchanged),
2 error (nothing published; includes "another run holds the lock"). With --distributed
(under torchrun, cli/ranks.py) these are rank 0's; the other ranks train and exit 0, and
torchrun itself exits 1 when rank 0 does not exit 0.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from epgembed.cli import EXIT_ERROR, ranks
from epgembed.config import Config
from epgembed.fsutil import escape_name
from epgembed.progress import Progress, stage_line

if TYPE_CHECKING:
    from epgembed.nightly.gates import NightlyConfig

__all__ = ["add_commands"]
EXIT_PROBLEMS = 1  # `versions`: a version is broken or `current` dangles


def load_configs(path: str | None) -> tuple[NightlyConfig, Config]:
    """A JSON file with model sections (catalog, tokenizer, train, index) and an optional
    "nightly" section (NightlyConfig fields)."""
    from epgembed.nightly.gates import NightlyConfig   # here: every other command loads faster
    if not path:
        return NightlyConfig(), Config()
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    nightly = data.pop("nightly", {})
    unknown = set(nightly) - {f.name for f in dataclasses.fields(NightlyConfig)}
    if unknown:
        raise ValueError(f"unknown nightly option(s): {', '.join(sorted(unknown))}")
    return NightlyConfig(**nightly), Config.from_dict(data)


def nightly_config(args: argparse.Namespace) -> tuple[NightlyConfig, Config]:
    ncfg, cfg = load_configs(args.config)
    overrides = {"history_nights": args.history_nights, "keep": args.keep, "keep_refreshes": args.keep_refreshes,
                 "tolerance": args.tolerance, "night": args.night, "warm_start": args.warm_start,
                 "force": args.force or None}
    ncfg = dataclasses.replace(ncfg, **{k: v for k, v in overrides.items() if v is not None})
    if ncfg.keep < 1 or ncfg.history_nights < 1 or ncfg.keep_refreshes < 0:
        raise ValueError("--keep and --history-nights must be >= 1, --keep-refreshes >= 0")
    return ncfg, cfg


def cmd_nightly(args: argparse.Namespace) -> int:
    return ranks.ranked(args, functools.partial(_nightly, args), "publishes")


def _nightly(args: argparse.Namespace, group) -> int:
    from epgembed import registry
    from epgembed.nightly.run import run_nightly   # trains: torch and numba load for this command only
    try:
        ncfg, cfg = nightly_config(args)
    except (ValueError, OSError) as e:
        print(f"epgembed nightly: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    progress = Progress.for_stream(sys.stderr, quiet=args.quiet)
    try:
        with progress.stage("nightly") as st:   # on a terminal: a live line while it runs
            result = run_nightly(args.dumps, args.models_root, ncfg, cfg, group)
            print_laps(progress, result.report.get("timings") or {})
            st.note(result.status)
    except registry.RootLocked as e:
        print(f"epgembed nightly: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    print(result.summary)
    for warning in result.report.get("warnings") or []:
        print(f"epgembed nightly: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.report, indent=1, ensure_ascii=False, default=str))
    if result.status == "error":
        print(f"epgembed nightly: error: {result.report.get('error')} (report {result.report_path})",
              file=sys.stderr)
    return result.exit_code


LAPS = (("ingest_s", "ingest"), ("train_s", "train"), ("index_s", "index and neighbour table"),
        ("write_s", "write"), ("evaluate_s", "evaluate"), ("publish_s", "publish"))


def print_laps(progress: Progress, timings: dict) -> None:
    """One line per stage the run reached, from its report's timings (run_nightly keeps
    its own clock; the lines come when it returns)."""
    for key, name in LAPS:
        if key in timings:
            progress.line(stage_line(name, "", timings[key]))


def cmd_rollback(args: argparse.Namespace) -> int:
    from epgembed import registry
    try:
        with registry.locked(Path(args.models_root), holder="rollback"):
            old, new = registry.rollback(Path(args.models_root), args.to)
    except Exception as e:  # noqa: BLE001 - ModelError, RootLocked, missing version ...
        print(f"epgembed rollback: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    print(f"rolled back: current {old} -> {new}")
    return 0


def _report_of(version_dir: Path) -> dict:
    """A version's nightly report.json ({} when it has none, or none that reads)."""
    try:
        rep = json.loads((version_dir / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return rep if isinstance(rep, dict) else {}


def version_rows(root: Path, verify: bool = False) -> list[dict]:
    """list_versions (hashes checked when `verify`) plus the figures of each version's
    nightly report, and a broken row for a `current` that points at no version."""
    from epgembed import registry
    rows = []
    for v in registry.list_versions(root, verify=verify):
        rep = _report_of(registry.versions_dir(root) / v["version"])
        q = rep.get("quality") or {}
        rows.append({**v, "night": rep.get("night"),
                     "p_at_10": (q.get("new") or {}).get("p_at_10"),
                     "map_at_10": (q.get("new") or {}).get("map_at_10"),
                     "stability": (rep.get("stability") or {}).get("common"),
                     "warm_start": (rep.get("warm_start") or {}).get("used")})
    dangling = registry.current_problem(root)
    if dangling:
        rows.append({"version": registry.current_version(root) or registry.CURRENT,
                     "current": True, "error": dangling})
    if verify:   # the nightly history too: a damaged night file is a problem of the root
        from epgembed.nightly.history import verify_nights
        rows += [{"version": name, "current": False, "error": why} for name, why in verify_nights(root)]
    return rows


def cmd_versions(args: argparse.Namespace) -> int:
    root = Path(args.models_root)
    if not root.is_dir():
        print(f"epgembed versions: error: {escape_name(str(root))}: no such models root",
              file=sys.stderr)
        return EXIT_ERROR
    rows = version_rows(root, verify=args.verify)
    code = EXIT_PROBLEMS if any("error" in r for r in rows) else 0
    if args.json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
        return code
    if not rows:
        print(f"{escape_name(str(root))}: no versions")
        return 0
    print(f"  {'version':28s} {'created':20s} {'night':10s} {'shows':>7s} {'P@10':>6s} "
          f"{'MAP@10':>6s} {'stab':>5s}")
    for r in rows:
        if "error" in r:
            print(f"{'*' if r['current'] else ' '} {r['version']:28s} BROKEN: {r['error']}")
            continue
        fmt = lambda x: f"{x:.3f}" if isinstance(x, float) else "-"  # noqa: E731
        refresh = f"  +{r['added']:,} titles: refresh of {r['refresh_of']}" if r.get("refresh_of") else ""
        print(f"{'*' if r['current'] else ' '} {r['version']:28s} {r['created']:20s} "
              f"{r['night'] or ('refresh' if refresh else '-'):10s} {r['n_shows']:>7,} {fmt(r['p_at_10']):>6s} "
              f"{fmt(r['map_at_10']):>6s} {fmt(r['stability']):>5s}{refresh}")
    print("(* = current)" + ("" if args.verify else "; file hashes not checked (--verify)"))
    return code


def add_commands(sub: argparse._SubParsersAction) -> None:
    n = sub.add_parser("nightly", help="retrain from tonight's dumps; gate; publish atomically",
                       epilog="exit codes: 0 published, 3 gated (nothing published), 2 error. "
                              "example: epgembed nightly --dumps /data/epg/today.xml.gz "
                              "--models-root /srv/epgembed")
    n.add_argument("--dumps", nargs="+", required=True, help="tonight's XMLTV files or directories")
    n.add_argument("--models-root", required=True, help="ROOT with versions/, current, history/, reports/")
    n.add_argument("--history-nights", "--history-days", dest="history_nights", type=int,
                   help="keep shows seen in the last N nights received (default 14; counted "
                        "by nights, not by the dumps' dates)")
    n.add_argument("--keep", type=int, help="trained versions to keep (default 7; the current one always stays)")
    n.add_argument("--keep-refreshes", type=int, metavar="N",
                   help="refresh versions (`epgembed refresh`) to keep besides, counted apart (default 8)")
    n.add_argument("--config", help='JSON: model sections (catalog, tokenizer, train, index) and "nightly"')
    n.add_argument("--tolerance", type=float, help="largest allowed held-out P@10 drop (default 0.03)")
    n.add_argument("--night", help="the night's date YYYY-MM-DD (default: from programme start times)")
    n.add_argument("--force", action="store_true",
                   help="publish a night that only the consistency gates refuse (a date far from "
                        "the recent nights', renamed or collapsed categories, a catalog drop "
                        "over 30%%, a dump smaller than the stored night of its date, which it "
                        "replaces); the reasons stay in the report")
    n.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ws = n.add_mutually_exclusive_group()
    ws.add_argument("--warm-start", dest="warm_start", action="store_true", default=None,
                    help="initialise from the current model's token vectors (default)")
    ws.add_argument("--cold-start", dest="warm_start", action="store_false",
                    help="train from a random initialisation")
    n.add_argument("--json", action="store_true", help="also print the full report")
    ranks.add_options(n)
    n.add_argument("--quiet", action="store_true",
                   help="no stage lines on stderr (else one per stage with its time, and a live "
                        "line while it runs on a terminal)")
    n.set_defaults(func=cmd_nightly)

    r = sub.add_parser("rollback", help="point current at an earlier version (validated first)",
                       epilog="example: epgembed rollback --models-root /srv/epgembed")
    r.add_argument("--models-root", required=True)
    r.add_argument("--to", help="version name (default: the one before the current)")
    r.set_defaults(func=cmd_rollback)

    v = sub.add_parser("versions", help="list versions with dates, counts, quality, current",
                       epilog="exit codes: 0 all listed versions look sound, 1 a version is broken, "
                              "current points at no version, or (--verify) a history file is "
                              "damaged, 2 no such models root. "
                              "example: epgembed versions --models-root /srv/epgembed --verify")
    v.add_argument("--models-root", required=True)
    v.add_argument("--json", action="store_true")
    v.add_argument("--verify", action="store_true",
                   help="also check every file's size and sha256 against its manifest, and "
                        "read every history night to its end (reads every file of the root)")
    v.set_defaults(func=cmd_versions)
