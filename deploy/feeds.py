"""The list of feeds (deploy/feeds.json): serving sharded by feed group, one model per feed,
each with its own models root, replica set and nightly timer, behind one nginx
(docs/DEPLOY.md, "Several feeds").

    {"feeds": [{"name": "de", "models": "/srv/epgembed/feeds/de/models",
                "replicas": ["10.0.0.11:8101", "10.0.0.12:8101"], "nightly": "*-*-* 02:30:00"}, ...]}

Per feed: `name` (the route /feeds/NAME/...), `models` (its models root), `replicas`
(HOST:PORT of each of its `epgembed serve` instances); optional `dumps` (where its nightly
dumps arrive; default: the folder `dumps` beside its models root) and `nightly` (when its
timer fires, a systemd OnCalendar; default NIGHTLY). From this one list
`deploy/render_nginx.py --feeds FILE` renders nginx's upstreams, routes and the /feeds
list, and `python3 deploy/feeds.py FILE --systemd OUT` each feed's systemd files:

    OUT/epgembed/feeds/NAME.env                          -> /etc/epgembed/feeds/
    OUT/systemd/epgembed@PORT.service.d/feed.conf        -> /etc/systemd/system/ (each replica port)
    OUT/systemd/epgembed-nightly@NAME.service.d/feed.conf, .timer.d/schedule.conf

A port serves one feed on every host (its drop-in names the feed), so a port is in one feed
only. Standard library only (the system python3 runs it, no virtualenv needed).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

NIGHTLY = "*-*-* 03:30:00"          # the single-feed timer's (deploy/systemd/epgembed-nightly.timer)
ENV_DIR = "/etc/epgembed/feeds"     # where each feed's environment file is installed
KEYS = {"name", "models", "replicas", "dumps", "nightly"}

ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_PATH = re.compile(r"^/[A-Za-z0-9._/+@-]*$")          # nothing systemd or nginx would read as syntax
_CALENDAR = re.compile(r"^[A-Za-z0-9*:,./~ -]{1,80}$")


class FeedsError(ValueError):
    """A feeds list that cannot be rendered; the message names the file and the feed."""


@dataclass(frozen=True)
class Feed:
    name: str
    models: str                     # its models root (versions/ + current)
    replicas: tuple[str, ...]       # HOST:PORT of each replica
    dumps: str = ""                 # its nightly dumps; "" = the folder `dumps` beside `models`
    nightly: str = NIGHTLY          # systemd OnCalendar of its nightly timer

    @property
    def dumps_dir(self) -> str:
        return self.dumps or str(Path(self.models).parent / "dumps")

    @property
    def upstream(self) -> str:
        """Its nginx upstream's name."""
        return f"epgembed_{self.name}"

    def ports(self) -> list[int]:
        return [int(ADDRESS.match(r).group(2)) for r in self.replicas]


def load(path: str | Path) -> list[Feed]:
    """The feeds of a feeds file; FeedsError naming the file for anything wrong in it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise FeedsError(f"{path}: cannot read it: {e}") from None
    except json.JSONDecodeError as e:
        raise FeedsError(f"{path}: not JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    return parse(data, str(path))


def parse(data: object, source: str = "feeds") -> list[Feed]:
    """The feeds of a parsed feeds file (`{"feeds": [...]}`), checked as a whole."""
    if not isinstance(data, dict) or set(data) != {"feeds"} or not isinstance(data["feeds"], list):
        raise FeedsError(f'{source}: an object with one key, "feeds": a list of feeds')
    if not data["feeds"]:
        raise FeedsError(f"{source}: the list of feeds is empty")
    feeds = [_feed(d, f"{source}: feed {i + 1}") for i, d in enumerate(data["feeds"])]
    check(feeds, source)
    return feeds


def _feed(d: object, where: str) -> Feed:
    if not isinstance(d, dict):
        raise FeedsError(f"{where}: an object with name, models, replicas (dumps, nightly optional)")
    if unknown := set(d) - KEYS:
        raise FeedsError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(KEYS)})")
    if missing := {"name", "models", "replicas"} - set(d):
        raise FeedsError(f"{where}: missing {sorted(missing)}")
    if not isinstance(d["replicas"], list) or not all(isinstance(r, str) for r in d["replicas"]):
        raise FeedsError(f"{where}: replicas is a list of HOST:PORT strings")
    if not all(isinstance(d.get(k, ""), str) for k in KEYS - {"replicas"}):
        raise FeedsError(f"{where}: name, models, dumps and nightly are strings")
    return Feed(d["name"], d["models"], tuple(d["replicas"]), d.get("dumps", ""), d.get("nightly", NIGHTLY))


def check(feeds: list[Feed], source: str = "feeds") -> None:
    """FeedsError for a bad field, a name or models root given twice, a port in two feeds."""
    for f in feeds:
        where = f"{source}: feed {f.name!r}"
        if not _NAME.match(f.name):
            raise FeedsError(f"{source}: feed name {f.name!r}: lower-case letters, digits, - and _ "
                             "(at most 40, starting with a letter or digit)")
        for what, p in (("models", f.models), ("dumps", f.dumps_dir)):
            if not _PATH.match(p) or "/../" in p + "/":
                raise FeedsError(f"{where}: {what} {p!r} is not an absolute path of letters, digits and ._/+@-")
        if not f.replicas:
            raise FeedsError(f"{where}: no replicas")
        for r in f.replicas:
            m = ADDRESS.match(r)
            if not m or not 0 < int(m.group(2)) < 65536:
                raise FeedsError(f"{where}: replica {r!r} is not HOST:PORT")
        if not _CALENDAR.match(f.nightly):
            raise FeedsError(f"{where}: nightly {f.nightly!r} is not a systemd OnCalendar")
    _unique(source, "feed name", [(f.name, f.name) for f in feeds])
    _unique(source, "models root", [(f.models.rstrip("/"), f.name) for f in feeds])
    _unique(source, "port", [(p, f.name) for f in feeds for p in set(f.ports())])
    for f in feeds:
        _unique(f"{source}: feed {f.name!r}", "replica", [(r, f.name) for r in f.replicas])


def _unique(source: str, what: str, pairs: list[tuple[object, str]]) -> None:
    seen: dict[object, str] = {}
    for value, feed in pairs:
        if value in seen:
            also = f"in both {seen[value]!r} and {feed!r}" if seen[value] != feed else "listed twice"
            raise FeedsError(f"{source}: {what} {value!r} is {also}"
                             + (" (a port serves one feed on every host)" if what == "port" else ""))
        seen[value] = feed


def index(feeds: list[Feed]) -> str:
    """The body of GET /feeds (one line of JSON): each feed's route and where its version is."""
    return json.dumps({"feeds": [{"name": f.name, "url": f"/feeds/{f.name}/", "model": f"/feeds/{f.name}/v1/model",
                                  "nightly": f.nightly} for f in feeds]})


# ---------------------------------------------------------------------------- systemd
_HEAD = "# rendered from {source} by deploy/feeds.py: edit the list and render again\n"


def systemd_files(feeds: list[Feed], source: str = "deploy/feeds.json") -> dict[str, str]:
    """Path under OUT -> text of every feed's environment file and systemd drop-ins."""
    head = _HEAD.format(source=source)
    out: dict[str, str] = {}
    for f in feeds:
        env = f"{ENV_DIR}/{f.name}.env"
        out[f"epgembed/feeds/{f.name}.env"] = (
            f"{head}# feed {f.name}: read after /etc/epgembed/epgembed.env by its replicas and its nightly job\n"
            f"EPGEMBED_FEED={f.name}\nEPGEMBED_MODELS={f.models}\nEPGEMBED_DUMPS={f.dumps_dir}\n")
        for port in f.ports():
            out[f"systemd/epgembed@{port}.service.d/feed.conf"] = (
                f"{head}# port {port} serves feed {f.name}: its models root instead of the default one\n"
                f"[Unit]\nDescription=epgembed replica of feed {f.name} on port %i\n"
                f"RequiresMountsFor={f.models}\n\n"
                f"[Service]\nEnvironmentFile={env}\nReadOnlyPaths=\nReadOnlyPaths={f.models}\n")
        out[f"systemd/epgembed-nightly@{f.name}.service.d/feed.conf"] = (
            f"{head}[Unit]\nRequiresMountsFor={f.models} {f.dumps_dir}\n\n"
            f"[Service]\nReadWritePaths={f.models}\nReadOnlyPaths={f.dumps_dir}\n")
        out[f"systemd/epgembed-nightly@{f.name}.timer.d/schedule.conf"] = (
            f"{head}[Timer]\nOnCalendar=\nOnCalendar={f.nightly}\n")
    return out


def write_systemd(feeds: list[Feed], out: Path, source: str = "deploy/feeds.json") -> list[Path]:
    written = []
    for rel, text in systemd_files(feeds, source).items():
        path = Path(out) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("feeds", help="the feeds file (deploy/feeds.json)")
    p.add_argument("--systemd", metavar="OUT", help="write each feed's systemd files here (else: check and list)")
    a = p.parse_args(argv)
    try:
        feeds = load(a.feeds)
    except FeedsError as e:
        print(f"feeds: {e}", file=sys.stderr)
        return 2
    if a.systemd:
        for path in write_systemd(feeds, Path(a.systemd), a.feeds):
            print(path)
    else:
        for f in feeds:
            print(f"{f.name}: /feeds/{f.name}/ -> {', '.join(f.replicas)}; models {f.models}, dumps {f.dumps_dir}, "
                  f"nightly {f.nightly}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
