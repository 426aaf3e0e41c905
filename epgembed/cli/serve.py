"""`epgembed serve` and `epgembed publish`: the service's command-line entry.

    epgembed publish models/sample --root models/root      install as a new version, make it current
    epgembed serve --models models/root [--host 127.0.0.1] [--port 8000] [--workers 2]

`serve` turns its options into the environment that service/gunicorn.conf.py and
service/wsgi.py read, then execs gunicorn with that config (it never returns).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path


def gunicorn_config_path() -> Path:
    spec = importlib.util.find_spec("service")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the service package is not installed (pip install -e .)")
    return Path(list(spec.submodule_search_locations)[0]) / "gunicorn.conf.py"


def serve_env(args: argparse.Namespace, base: dict[str, str]) -> dict[str, str]:
    models = Path(args.models)
    if not models.is_dir():
        raise ValueError(f"{models}: no such directory (a models root or a model directory)")
    env = dict(base)
    env.update({"EPGEMBED_MODELS": str(models.resolve()), "EPGEMBED_BIND": f"{args.host}:{args.port}",
                "EPGEMBED_WORKERS": str(args.workers), "EPGEMBED_THREADS": str(args.threads),
                "EPGEMBED_POLL_SECONDS": str(args.poll_seconds)})
    if args.access_log:
        env["EPGEMBED_ACCESS_LOG"] = args.access_log
    return env


def cmd_serve(args: argparse.Namespace) -> int:
    env = serve_env(args, dict(os.environ))
    argv = [sys.executable, "-m", "gunicorn", "-c", str(gunicorn_config_path())]
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)
    return 0  # not reached


def cmd_publish(args: argparse.Namespace) -> int:
    from epgembed.artifact.manifest import read_manifest
    from epgembed.registry import check_version_name, locked, publish, rollback, versions_dir
    version = check_version_name(read_manifest(Path(args.model_dir)).version)
    with locked(Path(args.root)):   # never beside a nightly run's publish or clean-up
        if (versions_dir(Path(args.root)) / version).is_dir():   # idempotent: make it current again,
            rollback(Path(args.root), version)                   # once it loads (as a rollback)
            print(f"{version} was already published; {args.root}/current -> {version}")
            return 0
        version = publish(Path(args.root), Path(args.model_dir), move=args.move)
    print(f"published {version} -> {args.root}/current")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("serve", help="run the HTTP service (gunicorn) on a models root or a model directory",
                       epilog="example: epgembed serve --models models/root --port 8000")
    s.add_argument("--models", required=True,
                   help="models root (versions/ + current, hot reload) or one model directory (no reload)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    s.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    s.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    s.add_argument("--poll-seconds", type=float, default=5.0,
                   help="how often workers check the root's `current` (default 5; 0: only on SIGHUP)")
    s.add_argument("--access-log", help='"-" stdout (default), a file, or "off"')
    s.set_defaults(func=cmd_serve)

    p = sub.add_parser("publish", help="install a model directory into a models root and make it current",
                       epilog="example: epgembed publish models/sample --root models/root")
    p.add_argument("model_dir")
    p.add_argument("--root", required=True, help="models root (created if missing)")
    p.add_argument("--move", action="store_true", help="move the folder instead of copying it")
    p.set_defaults(func=cmd_publish)
