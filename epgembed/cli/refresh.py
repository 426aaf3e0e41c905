"""`epgembed refresh` (registered by cli/main.py): the titles of a fresh dump that the serving
model lacks, added without training (nightly/refresh.py; docs/NIGHTLY.md, "Refreshes").

    epgembed refresh --dumps update.xml.gz --models-root /srv/epgembed [--wait 600] [--json]

Exit codes: 0 published, or nothing new (nothing published); 3 refused (more new titles
than --max-share of the catalog: run the nightly); 2 error (a dump that does not parse,
nothing published yet, ...; nothing published); 75 the root's lock is held by another run
(a nightly, another refresh) past --wait: nothing done, try again later (EX_TEMPFAIL).
"""
from __future__ import annotations

import argparse
import json
import sys

from epgembed.cli import EXIT_ERROR

__all__ = ["add_commands"]
EXIT_BUSY = 75   # sysexits.h EX_TEMPFAIL: the lock is held, a later run will do it


def cmd_refresh(args: argparse.Namespace) -> int:
    from epgembed import registry
    from epgembed.nightly.refresh import RefreshConfig, run_refresh
    try:
        rcfg = RefreshConfig(**{k: v for k, v in {"max_share": args.max_share, "wait_s": args.wait,
                                                  "keep_refreshes": args.keep_refreshes}.items() if v is not None})
    except ValueError as e:
        print(f"epgembed refresh: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    try:
        result = run_refresh(args.dumps, args.models_root, rcfg)
    except registry.RootLocked as e:
        print(f"epgembed refresh: busy: {e}; nothing done (a nightly or another refresh is running: "
              "--wait SECONDS waits for it)", file=sys.stderr)
        return EXIT_BUSY
    print(result.summary)
    for warning in result.details.get("warnings") or []:
        print(f"epgembed refresh: warning: {warning}", file=sys.stderr)
    if result.status == "error":
        print(f"epgembed refresh: error: {result.summary}", file=sys.stderr)
    if args.json:
        print(json.dumps({"status": result.status, "exit_code": result.exit_code, "version": result.version,
                          "added": result.added, **result.details}, indent=1, ensure_ascii=False, default=str))
    return result.exit_code


def add_commands(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("refresh", help="add the titles of a fresh dump that the serving model lacks, "
                                       "without training; publish atomically",
                       epilog="exit codes: 0 published or nothing new, 3 refused (too many new titles: run "
                              "the nightly), 2 error (nothing published), 75 the root is locked by another "
                              "run. example: epgembed refresh --dumps /data/epg/update.xml.gz "
                              "--models-root /srv/epgembed")
    r.add_argument("--dumps", nargs="+", required=True,
                   help="XMLTV files or directories: a whole day's guide, or a few programmes")
    r.add_argument("--models-root", required=True, help="ROOT with versions/ and current (the nightly's)")
    r.add_argument("--wait", type=float, metavar="SECONDS",
                   help="wait up to SECONDS for a nightly or another refresh holding the root's lock "
                        "(default 0: exit 75 at once)")
    r.add_argument("--max-share", type=float, metavar="SHARE",
                   help="the most new titles one refresh adds, as a share of the catalog (default 0.2); "
                        "more: refused, run the nightly")
    r.add_argument("--keep-refreshes", type=int, metavar="N",
                   help="refresh versions kept beside the trained ones (default 8; a trained version is "
                        "never pruned by a refresh)")
    r.add_argument("--json", action="store_true", help="also print what the run did (timings, bytes written)")
    r.set_defaults(func=cmd_refresh)
