"""`epgembed serve` and `epgembed publish`: the service's command-line entry.

    epgembed publish models/sample --root models/root      install as a new version, make it current
    epgembed serve --models models/root [--host 127.0.0.1] [--port 8000] [--workers 2]

`serve` passes the options given as the variables of service/settings.py (the one table of
the service's settings, whose defaults are the rest), then execs gunicorn with
service/gunicorn.conf.py (it never returns); the master and its workers load them from there.
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
    from service.settings import ServerConfig, to_env
    models = Path(args.models)
    if not models.is_dir():
        raise ValueError(f"{models}: no such directory (a models root or a model directory)")
    host, port = ServerConfig.bind.rsplit(":", 1)
    given = {**vars(args), "models": models.resolve(), "bind": f"{args.host or host}:{args.port or port}"}
    return {**base, **to_env(given)}


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
    with locked(Path(args.root), holder="publish"):   # never beside a nightly run's publish or clean-up
        if (versions_dir(Path(args.root)) / version).is_dir():   # idempotent: make it current again,
            rollback(Path(args.root), version)                   # once it loads (as a rollback)
            print(f"{version} was already published; {args.root}/current -> {version}")
            return 0
        version = publish(Path(args.root), Path(args.model_dir), move=args.move)
    print(f"published {version} -> {args.root}/current")
    return 0


def _serve_options(s: argparse.ArgumentParser) -> None:
    """The options of `serve`: the settings of service/settings.py that have one."""
    from service.settings import SETTINGS, ServerConfig, default
    host, port = ServerConfig.bind.rsplit(":", 1)
    s.add_argument("--host", help=f"address to bind (default {host})")
    s.add_argument("--port", type=int, help=f"port (default {port})")
    for setting in (x for x in SETTINGS if x.flag):
        required = setting.env == "EPGEMBED_MODELS"
        s.add_argument(setting.flag, type=setting.parse, required=required,
                       help=setting.help + ("" if required else f" (default {default(setting)})"))


def add_commands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("serve", help="run the HTTP service (gunicorn) on a models root or a model directory",
                       epilog="example: epgembed serve --models models/root --port 8000")
    s.defer(_serve_options)
    s.set_defaults(func=cmd_serve)

    p = sub.add_parser("publish", help="install a model directory into a models root and make it current",
                       epilog="example: epgembed publish models/sample --root models/root")
    p.add_argument("model_dir")
    p.add_argument("--root", required=True, help="models root (created if missing)")
    p.add_argument("--move", action="store_true", help="move the folder instead of copying it")
    p.set_defaults(func=cmd_publish)
