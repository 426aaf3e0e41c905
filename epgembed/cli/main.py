"""The `epgembed` command line: one library call per subcommand.

    epgembed train DUMP... --out MODEL_DIR          ingest, train, index, save
    torchrun --standalone --nproc-per-node=2 -m epgembed.cli.main train DUMP... --out M --distributed
    epgembed related MODEL_DIR --title "Tatort"      related titles (known or unseen)
    epgembed related MODEL_DIR --titles-file Q.txt -k 20 --json
    epgembed related MODEL_DIR --programmes-file P.jsonl --json   whole programmes, one a line
    epgembed info MODEL_DIR                          the manifest, readable
    epgembed evaluate DUMP...                        the quality protocol vs baselines
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from functools import partial
from pathlib import Path

from epgembed.cli import EXIT_ERROR, QUERY_COMMANDS, LazyParser, one_blas_thread, ranks
from epgembed.fsutil import escape_name, gc_paused
from epgembed.config import Config
from epgembed.build.ingest.dumpfiles import PIPE_TIMEOUT_S

# system -> (the module it needs, the extra that brings it)
EXTRA_SYSTEMS = {"channel": ("scipy", "eval"), "tfidf": ("sklearn", "eval"), "fasttext": ("fasttext", "fasttext")}
COLD_SYSTEMS = ("epgembed", "fasttext", "tfidf")   # those that answer a title they never saw


def _figure(x) -> str:
    """A figure as a person reads it: 3 decimals, "n/a" when missing or not a number."""
    return f"{x:.3f}" if isinstance(x, float) and x == x else "n/a" if x is None or x != x else str(x)


def _config(args: argparse.Namespace) -> Config:
    cfg = Config.load(args.config) if getattr(args, "config", None) else Config()
    train = {k: v for k, v in {"dim": args.dim, "epochs": args.epochs, "lr": args.lr,
                               "workers": getattr(args, "workers", None)}.items() if v is not None}
    if train:
        cfg = cfg.replace(train=train)
    if args.seed is not None:
        cfg = cfg.with_seed(args.seed)
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    return ranks.ranked(args, partial(_train, args), "writes the model")


def _train(args: argparse.Namespace, group) -> int:
    from epgembed.build.ingest.dumpfiles import ReadLimits
    from epgembed.build.ingest.epg import SKIP_EMPTY_TITLE
    from epgembed.build.pipeline import train_model, vanished_kinds
    from epgembed.progress import Progress
    cfg = _config(args)
    limits = ReadLimits(pipe_timeout_s=args.input_timeout or None)
    last = _replaced_manifest(Path(args.out))
    manifest = train_model(args.dumps, args.out, cfg, skip_bad_input=args.skip_bad_input,
                           threads=args.threads, limits=limits,
                           progress=Progress.for_stream(sys.stderr, quiet=args.quiet), group=group)
    data, t = manifest.data, manifest.training
    print(f"model {manifest.version} -> {escape_name(args.out)}: {manifest.n_shows:,} shows "
          f"({manifest.counts.labelled_shows:,} labelled) from {data.programmes:,} programmes; "
          f"{t.epochs_run} epochs (best {t.best_epoch}), {t.seconds:.1f} s, "
          f"{t.examples_per_s:,.0f} examples/s, val P@10 {_figure(t.val_p_at_10)}")
    for f, line, why in data.skipped:
        print(f"skipped: {f}{':' + str(line) if line else ''}: {why}", file=sys.stderr)
    no_key = data.empty_titles - data.skip_counts.get(SKIP_EMPTY_TITLE, 0)
    if no_key:
        print(f"dropped: {no_key:,} programmes whose title has an empty key (e.g. punctuation only)",
              file=sys.stderr)
    gone = vanished_kinds(last, manifest)
    if gone:
        print(f"warning: {gone}", file=sys.stderr)
    return 0


def _replaced_manifest(out: Path):
    """The manifest of the model `train` is about to replace, if any (to compare with)."""
    from epgembed.artifact.manifest import ModelError, read_manifest
    try:
        return read_manifest(out) if out.is_dir() else None
    except ModelError:
        return None


def _queries(args: argparse.Namespace) -> list[str]:
    if args.title is not None:
        return [args.title]
    return [line for line in _lines(args.titles_file) if line.strip()]


def _lines(path: str) -> list[str]:
    text = Path(path).read_text(encoding="utf-8-sig")
    return [line.rstrip("\r") for line in text.split("\n")]


def _options(args: argparse.Namespace) -> tuple:
    """(Options, Context) of `related`, read and checked as POST /v1/related reads them
    (query.requests; a programme carries its own context)."""
    from epgembed.cli.options import from_args, given
    from epgembed.query.contract import one_of
    from epgembed.query.requests import BatchRequest, Context, Options
    one_of(BatchRequest, {"titles" if args.programmes_file is None else "programmes", *given(Context, args)})
    return from_args(Options, args), from_args(Context, args)


def _asks(args: argparse.Namespace, model, options, context) -> Iterator[tuple[str, Callable]]:
    """(the query as shown in an error, the call that answers it) per title, or per non-blank
    line of a programmes file (one JSON object a line: query.requests.ProgrammeQuery)."""
    if args.programmes_file is None:
        for q in _queries(args):
            yield q, partial(model.related, q, options, context=context)
        return
    for n, line in enumerate(_lines(args.programmes_file), 1):
        if line.strip():
            yield f"line {n}", partial(_answer_programme, model, n, line, options)


def _answer_programme(model, n: int, line: str, options):
    """The answer to line `n` of a programmes file; QueryError naming the line (and the
    field) when the line is no programme or cannot be answered."""
    import msgspec
    from epgembed.query.errors import QueryError
    from epgembed.query.requests import ProgrammeQuery
    try:
        programme = msgspec.json.decode(line, type=ProgrammeQuery)
        return model.related_programme(programme, options)
    except msgspec.DecodeError as e:
        raise QueryError(f"line {n}: malformed JSON: {e}") from None
    except (msgspec.ValidationError, QueryError) as e:
        raise QueryError(f"line {n}: {e}") from None


def cmd_related(args: argparse.Namespace) -> int:
    """One answer per query; --json writes the HTTP service's shapes (query.shapes), one per line."""
    from epgembed.query.errors import QueryError
    from epgembed.query.load import load_model
    from epgembed.query.shapes import Error, ErrorBody, encode
    options, context = _options(args)
    with gc_paused():
        model = load_model(args.model_dir)
    for q, answer in _asks(args, model, options, context):
        try:
            result = answer()
        except QueryError as e:
            if args.json:
                print(encode(Error(ErrorBody(400, "bad_request", str(e)))).decode())
            else:
                print(f"{q}\n  error: {e}")
            continue
        if args.json:
            print(encode(result).decode())
            continue
        known = f"known, id {result.query.id}" if result.query.known else "not in catalog, embedded from its tokens"
        print(f"{result.query.title}  ({known})")
        for i, h in enumerate(result.related, 1):
            more = f"  (+{h.series_titles - 1} more of {h.series!r})" if h.series_titles > 1 and not args.expand else ""
            print(f"  {i:2d}. {h.score:.3f}  {h.title}  [{', '.join(h.categories[:3])}]{more}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from epgembed.artifact.manifest import encode_manifest, read_manifest
    m = read_manifest(args.model_dir)
    if args.json:
        print(encode_manifest(m).decode("utf-8"))
        return 0
    t, c = m.training, m.counts
    print(f"model        {m.version}  (format {m.format} v{m.format_version}, created {m.created})")
    print(f"catalog      {c.shows:,} shows, {c.labelled_shows:,} with categories, "
          f"{c.categories} categories, {c.airings:,} airings")
    print(f"vectors      dim {m.dim}, vocabulary {m.vocab_size:,} tokens, metric {m.metric}, "
          f"{m.n_trees} trees")
    print(f"training     {t.epochs_run} epochs (best {t.best_epoch}), {t.seconds} s, "
          f"{t.examples_per_s:,} examples/s, val P@10 {_figure(t.val_p_at_10)}")
    print(f"inputs       {', '.join(m.data.inputs)} ({m.data.programmes:,} programmes, "
          f"{len(m.data.skipped)} skipped)")
    if m.refresh:
        r = m.refresh
        print(f"refresh      of {r.of} (trained: {r.trained}): +{len(r.added):,} titles from "
              f"{', '.join(r.inputs)}; ids {r.first_added:,} on are new since the last training")
    if m.quality:
        print(f"quality      {json.dumps(m.quality)}")
    for name, f in sorted(m.files.items()):
        print(f"file         {name:18s} {f.bytes:>12,} bytes  sha256 {f.sha256[:16]}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from epgembed.eval.baselines import ChannelSystem, EpgembedSystem, RandomSystem, TfidfSystem
    from epgembed.eval.evaluate import evaluate_dumps, format_table
    cfg = _config(args)
    makers = {"epgembed": lambda: EpgembedSystem(cfg), "channel": ChannelSystem,
              "tfidf": TfidfSystem, "random": lambda: RandomSystem(args.seed or 0), "fasttext": _fasttext}
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [n for n in names if n not in makers]
    if unknown:
        raise ValueError(f"unknown system(s): {', '.join(unknown)} (choose from {', '.join(makers)})")
    missing = [n for n in names if n in EXTRA_SYSTEMS and importlib.util.find_spec(EXTRA_SYSTEMS[n][0]) is None]
    if missing:
        raise ValueError("; ".join(f"system {n} needs the {EXTRA_SYSTEMS[n][1]} extra, which the runtime "
                                   f"install leaves out: pip install -e '.[{EXTRA_SYSTEMS[n][1]}]'"
                                   for n in missing))
    systems, cold = [makers[n]() for n in names], []
    if args.cold_start:
        from epgembed.eval.coldstart import evaluate_with_cold_start, format_cold_table
        rows, cold = evaluate_with_cold_start(args.dumps, systems, [makers[n]() for n in names if n in COLD_SYSTEMS],
                                              seed=args.seed or 0, cut=args.cut)
    else:
        rows = evaluate_dumps(args.dumps, systems, seed=args.seed or 0, cut=args.cut)
    figures = {"results": rows, **({"cold_start": cold} if args.cold_start else {})}
    print(json.dumps(figures if args.cold_start else rows, indent=1) if args.json else format_table(rows))
    if args.cold_start and not args.json:
        print("\ncold start (titles never seen; EVALUATION.md):\n" + format_cold_table(cold))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"command": " ".join(sys.argv), **figures}, indent=1))
    return 0


def _fasttext():
    from epgembed.eval.fasttext_ref import FastTextSystem
    return FastTextSystem()


def _training_options(sp) -> None:
    """The training settings `train` and `evaluate` share."""
    sp.add_argument("--config", help="JSON file with config sections (catalog, tokenizer, train, index)")
    sp.add_argument("--dim", type=int, help="embedding dimension (default 100)")
    sp.add_argument("--epochs", type=int, help="maximum epochs (default 20)")
    sp.add_argument("--lr", type=float, help="learning rate")
    sp.add_argument("--seed", type=int, help="seed for tokenizer, sampling, init and index")
    sp.add_argument("--workers", type=int,
                    help="Hogwild! training threads (default 1: reproducible; 2 uses both "
                         "cores of a 2-core machine, 1.1-1.2x faster in make bench-train, "
                         "not bit-for-bit reproducible)")


def _add_train(sub) -> None:
    """`epgembed train`."""
    t = sub.add_parser("train", help="train a model directory from XMLTV dumps",
                       epilog="example: epgembed train data/sample.xml.gz --out models/sample")
    t.add_argument("dumps", nargs="+",
                   help="XMLTV files (.xml or .xml.gz), directories, pipes or FIFOs; - is stdin "
                        "(zcat today.xml.gz | epgembed train - --out m)")
    t.add_argument("--out", required=True,
                   help="model directory to write: a new path, an empty folder or an earlier "
                        "model (replaced atomically); anything else is refused")
    _training_options(t)
    t.add_argument("--skip-bad-input", action="store_true",
                   help="read what can be read from broken files and report what was skipped")
    t.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: the step's kernels are too small to "
                        "gain from more; use --workers to train on several cores)")
    t.add_argument("--quiet", action="store_true",
                   help="no progress on stderr (else a live line or bar per stage on a terminal, "
                        "one line per stage with its time in a log)")
    t.add_argument("--input-timeout", type=float, default=PIPE_TIMEOUT_S, metavar="S",
                   help="longest wait for data from a pipe or FIFO before it is an error "
                        "(default %(default)g s; 0: no limit)")
    ranks.add_options(t)
    t.set_defaults(func=cmd_train)


def _add_related(sub) -> None:
    """`epgembed related`."""
    r = sub.add_parser("related", help="related titles for a title or a file of titles",
                       epilog='example: epgembed related models/sample --title "Football Tonight" -k 5')
    r.add_argument("model_dir")
    q = r.add_mutually_exclusive_group(required=True)
    q.add_argument("--title", help="one query title (need not be in the catalog)")
    q.add_argument("--titles-file", help="file with one query title per line")
    q.add_argument("--programmes-file", metavar="FILE.jsonl",
                   help="file with one programme per line, a JSON object: title (required), sub_title, "
                        "desc, channel, start (YYYYmmddHHMM), duration (minutes), credits (list), year, "
                        "country, rating, episode_num; a title the catalog lacks is placed by all of it")
    r.add_argument("--json", action="store_true", help="one JSON object per query line")
    r.defer(_related_options)
    r.set_defaults(func=cmd_related)


def _related_options(r: argparse.ArgumentParser) -> None:
    """The options and the schedule context of a query, as GET /v1/related takes them."""
    from epgembed.cli.options import add_fields
    from epgembed.query.requests import Context, Options
    add_fields(r.add_argument_group("options (query.requests.Options)"), Options)
    add_fields(r.add_argument_group("schedule context (for titles the catalog has never seen)"), Context)


def _add_info(sub) -> None:
    """`epgembed info`."""
    i = sub.add_parser("info", help="describe a model directory",
                       epilog="example: epgembed info models/sample")
    i.add_argument("model_dir")
    i.add_argument("--json", action="store_true", help="the raw manifest")
    i.set_defaults(func=cmd_info)


def _add_evaluate(sub) -> None:
    """`epgembed evaluate`."""
    e = sub.add_parser("evaluate", help="the quality protocol on dumps, with baselines: 20%% of the "
                       "titles with categories held out (their categories removed from training), "
                       "each queried once, answers scored by shared categories",
                       epilog="example: epgembed evaluate ../shared/data/epg/de_magenta.xml.gz")
    e.add_argument("dumps", nargs="+")
    e.add_argument("--systems", default="epgembed,random",
                   help="comma-separated: epgembed, random, channel, tfidf, fasttext (default "
                        "epgembed,random; channel and tfidf need the eval extra: pip install -e '.[eval]', "
                        "fasttext the fasttext extra); each row: P@10, P@10x, P@10d, series_rep, MAP@10, "
                        "own_series, dup, train and query time")
    e.add_argument("--cold-start", action="store_true",
                   help="also the cold-start protocol: each system that can answer a title it never saw "
                        "(epgembed, tfidf, fasttext) trained without the test titles, then asked with "
                        "the title alone, with its schedule context and with its whole programme "
                        "(the modes it answers); figures over all test titles and over the new series")
    e.add_argument("--cut", action="store_true",
                   help="also P@10d of each system's ranking cut to one answer per series (100 asked)")
    e.add_argument("--out", help="also write the figures as JSON here")
    e.add_argument("--json", action="store_true")
    _training_options(e)
    e.set_defaults(func=cmd_evaluate)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="epgembed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=LazyParser)
    for add in (_add_train, _add_related, _add_info, _add_evaluate):
        add(sub)
    # -- more subcommands register here (each module's add_commands(sub)) --
    from epgembed.cli.serve import add_commands as serve_commands
    serve_commands(sub)
    from epgembed.cli.inspect import add_commands as inspect_commands
    inspect_commands(sub)
    from epgembed.cli.nightly import add_commands as nightly_commands
    nightly_commands(sub)
    from epgembed.cli.refresh import add_commands as refresh_commands
    refresh_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)     # before any heavy import: --help answers at once
    if args.command in QUERY_COMMANDS:
        one_blas_thread()
    with gc_paused() if args.command in QUERY_COMMANDS else nullcontext():
        from epgembed.artifact.manifest import ModelError
    try:    # ingest.epg's DumpError is a ValueError: caught without importing lxml for queries
        return args.func(args)
    except BrokenPipeError:                    # `epgembed info DIR | head`: silent, like any tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ModelError, ValueError, OSError) as e:
        print(f"epgembed {args.command}: error: {escape_name(str(e))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
