"""`epgembed inspect` and `epgembed outliers`: why is Y among the neighbours of X?

    epgembed inspect MODEL_DIR --title "Tatort" [-k 20] [--json] [--compare OTHER_MODEL_DIR]
    epgembed outliers MODEL_DIR [--top 100] [-k 20] [--html report.html] [--json]

Registered in cli.py with `add_commands(sub)`; the math is in inspect.py / outliers.py.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from epgembed.config import InspectConfig
from epgembed.fsutil import gc_paused
from epgembed.progress import Progress


def _cfg(args: argparse.Namespace) -> InspectConfig:
    """The flagging settings, read and checked as the explain endpoints read them (query.requests.Tuning)."""
    from epgembed.cli.options import from_args
    from epgembed.query.requests import Tuning
    return from_args(Tuning, args).config()


def _fmt_tokens(tokens: list[dict], limit: int = 6) -> str:
    top = sorted(tokens, key=lambda t: -t["drop"])[:limit]
    return "  ".join(f'{t["token"]}{"*" if t["rare"] else ""}(×{t["count"]}) {t["drop"]:+.2f}' for t in top)


def print_inspect(r: dict) -> None:
    t = r["title"]
    known = f'known, id {t["id"]}' if t["known"] else "not in catalog, embedded from its tokens"
    print(f'{r["query"]}  ({known})  [{", ".join(t["categories"][:4])}]')
    print("tokens: " + "  ".join(f'{x["token"]}{"*" if x["rare"] else ""}(×{x["count"]})' for x in r["tokens"]))
    d = r["disagreement"]
    print(f'{r["outliers"]} of {len(r["neighbors"])} neighbours flagged; {d["off_category"]} of '
          f'{d["labelled_neighbors"]} labelled neighbours share no informative category'
          + ("  -> the list disagrees with the title's categories" if d["disagrees"] else ""))
    for e in r["neighbors"]:
        mark = "!" if e["outlier"] else " "
        shared = ", ".join(e["shared_informative_categories"][:3]) or "-"
        print(f' {mark}{e["rank"]:2d}. {e["score"]:.3f}  {e["neighbor"]["text"]}  [shared: {shared}]'
              + (f'  {", ".join(e["flags"])}' if e["flags"] else ""))
        print(f'      title:    {_fmt_tokens(e["tokens"]["title"])}')
        print(f'      neighbor: {_fmt_tokens(e["tokens"]["neighbor"])}')
    print("(* rare token; ×N labelled training shows use it; +d: the score drops by d without it)")


def print_compare(c: dict) -> None:
    print(f'{c["query"]}: {c["model"]["path"]} (inv_freq {c["model"]["inv_freq"]}) vs '
          f'{c["other"]["path"]} (inv_freq {c["other"]["inv_freq"]})')
    print(f'overlap of the top {c["k"]}: {c["overlap"]}; flagged neighbours {c["outliers"]["model"]} vs '
          f'{c["outliers"]["other"]}; mean rare-token collapse {c["mean_collapse"]["model"]:.3f} vs '
          f'{c["mean_collapse"]["other"]:.3f}')
    for row in c["neighbors"]:
        other = row["other_rank"] if row["other_rank"] is not None else "-"
        print(f' {"!" if row["outlier"] else " "}{row["rank"]:2d}. {row["score"]:.3f}  {row["title"]}  (other: {other})')
    for row in c["only_in_other"]:
        print(f' {"!" if row["other_outlier"] else " "} --  only in other, rank {row["other_rank"]}, '
              f'{row["other_score"]:.3f}  {row["title"]}')
    print("token norms: " + "  ".join(f'{t["token"]} {t.get("model", 0):.2f}/{t.get("other", 0):.2f}'
                                      for t in c["token_norms"]))


def cmd_inspect(args: argparse.Namespace) -> int:
    from epgembed.query.load import load_model
    from epgembed.inspect.explain import compare_title, inspect_title
    with gc_paused():
        model = load_model(args.model_dir)
        other = load_model(args.compare) if args.compare else None
    if other is not None:
        result = compare_title(model, other, args.title, args.k, _cfg(args))
        if args.json:
            print(json.dumps(result, ensure_ascii=False))
        else:
            print_inspect(result["inspect"])
            print()
            print_compare(result)
        return 0
    result = inspect_title(model, args.title, args.k, _cfg(args))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print_inspect(result)
    return 0


def print_outliers(scan: dict, limit: int = 25) -> None:
    s = scan["summary"]
    print(f'{s["shows"]:,} shows, {s["pairs"]:,} pairs (k={scan["k"]}): {s["flagged_pairs"]:,} flagged '
          f'({s["no_shared_category"]:,} share no category, {s["rare_token_match"]:,} carried by a rare token); '
          f'{s["titles_disagreeing"]:,} titles whose list disagrees; {scan["timings"]["total_s"]:.1f} s')
    for key, v in s["check"].items():
        if v["share_no_informative_category"] is not None:
            print(f'  {key}: {v["share_no_informative_category"]:.1%} of {v["decidable"]:,} decidable pairs '
                  "share no informative category")
    for n, e in enumerate(scan["outliers"][:limit], 1):
        c = e["carrier"]
        print(f'{n:3d}. {e["suspicion"]:.3f}  {e["title"]["text"]}  ->  {e["neighbor"]["text"]}  '
              f'score {e["score"]:.3f}  [{", ".join(e["flags"])}]  carried by {c["token"]} (×{c["count"]}, '
              f'-{c["drop"]:.2f})')
    if len(scan["outliers"]) > limit:
        print(f'... {len(scan["outliers"]) - limit} more (--json or --html for all)')


def cmd_outliers(args: argparse.Namespace) -> int:
    from epgembed.query.load import load_model
    from epgembed.inspect.outliers import find_outliers
    from epgembed.inspect.report import render_report
    progress = Progress.for_stream(sys.stderr, quiet=args.quiet)
    with progress.stage("load model") as st:
        model = load_model(args.model_dir)
        st.note(f"{len(model):,} shows")
    scan = find_outliers(model, args.top, args.k, _cfg(args), progress=progress)
    if args.html:
        Path(args.html).parent.mkdir(parents=True, exist_ok=True)
        Path(args.html).write_text(render_report(scan), encoding="utf-8")
    if args.json:
        print(json.dumps(scan, ensure_ascii=False))
    else:
        print_outliers(scan)
        if args.html:
            print(f"report -> {args.html}")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-k", type=_positive, default=20, help="neighbours per title (default 20)")
    p.add_argument("--json", action="store_true", help="the full result as JSON")
    p.defer(_tuning)


def _tuning(p: argparse.ArgumentParser) -> None:
    from epgembed.cli.options import add_fields
    from epgembed.query.requests import Tuning
    add_fields(p, Tuning)


def add_commands(sub: argparse._SubParsersAction) -> None:
    i = sub.add_parser("inspect", help="a title's neighbours, outlier flags and per-token contributions",
                       epilog='example: epgembed inspect models/sample --title "Football Tonight" -k 10')
    i.add_argument("model_dir")
    i.add_argument("--title", required=True, help="title to inspect (need not be in the catalog)")
    i.add_argument("--compare", metavar="OTHER_MODEL_DIR",
                   help="also rank in this model (e.g. trained without inverse-frequency scaling)")
    _options(i)
    i.set_defaults(func=cmd_inspect)

    o = sub.add_parser("outliers", help="scan the whole catalog for suspicious rankings",
                       epilog="example: epgembed outliers models/sample --top 50 --html report.html")
    o.add_argument("model_dir")
    o.add_argument("--top", type=_positive, default=100, help="pairs to rank and explain (default 100)")
    o.add_argument("--html", help="also write a self-contained HTML report here")
    o.add_argument("--quiet", action="store_true",
                   help="no progress on stderr (else a live line or bar per stage on a terminal, "
                        "one line per stage with its time in a log)")
    _options(o)
    o.set_defaults(func=cmd_outliers)
