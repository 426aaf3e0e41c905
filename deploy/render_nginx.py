"""Render deploy/nginx/epgembed.conf.template: nginx in front of N epgembed replicas, or in
front of the replica sets of several feeds (deploy/feeds.json, routes /feeds/NAME/...).

    python3 deploy/render_nginx.py --listen 80 --replica 10.0.0.11:8001 --replica 10.0.0.12:8001 \
        --access-log /var/log/nginx/epgembed.access.log > /etc/nginx/conf.d/epgembed.conf
    python3 deploy/render_nginx.py --listen 80 --feeds deploy/feeds.json > /etc/nginx/conf.d/epgembed.conf
    python3 deploy/render_nginx.py --prefix /tmp/lb --listen 127.0.0.1:8080 \
        --replica 127.0.0.1:8001 --replica 127.0.0.1:8002       # a standalone tree, then:
    nginx -p /tmp/lb -c conf/nginx.conf -g 'daemon off;'

The first two forms print the http-level file (upstreams + server) for an existing nginx;
`--prefix` writes a self-contained prefix folder (conf/nginx.conf from deploy/nginx/nginx.conf,
conf/epgembed.conf, logs/, run/, tmp/) that `nginx -p PREFIX` runs without touching
/etc/nginx or /var. tests/test_replicas.py and bench/replicas.py use the second form.
Standard library only (it runs with the system python3, no virtualenv needed).
"""
from __future__ import annotations

import argparse
import re
import shlex
import shutil
import sys
from pathlib import Path

if __package__:                     # imported as deploy.render_nginx (the tests, the bench)
    from deploy import feeds as feedlist
else:                               # run as a script: deploy/ is on sys.path
    import feeds as feedlist

HERE = Path(__file__).resolve().parent / "nginx"
TEMPLATE = HERE / "epgembed.conf.template"      # the http level: LISTEN, ACCESS_LOG, UPSTREAMS, ROUTES
UPSTREAM = HERE / "upstream.conf.template"      # one replica set: UPSTREAM, SERVERS
ROUTES = HERE / "routes.conf.template"          # one feed at /: UPSTREAM
FEEDS = HERE / "feeds.conf.template"            # several feeds: FEEDS_JSON, FEED_NAMES, FEED_ROUTES
FEED = HERE / "feed.conf.template"              # one of them at /feeds/NAME/: NAME, UPSTREAM
MAIN = HERE / "nginx.conf"
NGINX = "/usr/sbin/nginx"

_LISTEN = re.compile(r"^[A-Za-z0-9.:\[\] _=-]+$")
_DURATION = re.compile(r"^\d+(ms|s|m)?$")


def server_lines(replicas: list[str], max_fails: int, fail_timeout: str) -> str:
    if not replicas:
        raise ValueError("at least one --replica HOST:PORT")
    for r in replicas:
        if not feedlist.ADDRESS.match(r):
            raise ValueError(f"replica {r!r} is not HOST:PORT")
    if not _DURATION.match(fail_timeout):
        raise ValueError(f"fail timeout {fail_timeout!r} is not an nginx time (5s, 500ms)")
    return "\n".join(f"    server {r} max_fails={int(max_fails)} fail_timeout={fail_timeout};" for r in replicas)


def fill(template: Path, values: dict[str, str]) -> str:
    """`template` with each @NAME@ replaced; ValueError for a placeholder without a value."""
    text = template.read_text()
    unknown = set(re.findall(r"@([A-Z_]+)@", text)) - set(values)
    if unknown:
        raise ValueError(f"{template.name}: unknown placeholders {sorted(unknown)}")
    return re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)], text)


def render(listen: str, replicas: list[str] | None = None, access_log: str = "/var/log/nginx/epgembed.access.log",
           max_fails: int = 2, fail_timeout: str = "5s", feeds: list[feedlist.Feed] | None = None) -> str:
    """The http-level configuration: upstream `epgembed` of `replicas` behind `/`, or (`feeds`)
    an upstream per feed behind /feeds/NAME/ and the list of feeds at /feeds."""
    if not _LISTEN.match(listen):
        raise ValueError(f"listen {listen!r}: an address, port and listen flags only")
    if not access_log or any(c in access_log for c in ";{}'\"\n") or " " in access_log:
        raise ValueError(f"access log {access_log!r}: a path (or off) without spaces or quotes")
    if (replicas is None) == (feeds is None):
        raise ValueError("either replicas (one replica set) or feeds")
    if feeds is not None:
        feedlist.check(feeds)
        sets = [(f.upstream, list(f.replicas)) for f in feeds]
        routes = fill(FEEDS, {"FEEDS_JSON": feedlist.index(feeds), "FEED_NAMES": ", ".join(f.name for f in feeds),
                              "FEED_ROUTES": "".join(fill(FEED, {"NAME": f.name, "UPSTREAM": f.upstream})
                                                     for f in feeds)})
    else:
        sets = [("epgembed", replicas)]
        routes = fill(ROUTES, {"UPSTREAM": "epgembed"})
    upstreams = "\n".join(fill(UPSTREAM, {"UPSTREAM": name, "SERVERS": server_lines(servers, max_fails, fail_timeout)})
                          for name, servers in sets)
    return fill(TEMPLATE, {"LISTEN": listen, "ACCESS_LOG": access_log, "UPSTREAMS": upstreams, "ROUTES": routes})


def write_prefix(prefix: Path, listen: str, replicas: list[str] | None = None, **kw) -> Path:
    """A self-contained nginx prefix folder; returns the main config's path (PREFIX/conf/nginx.conf)."""
    prefix = Path(prefix)
    for sub in ("conf", "logs", "run", "tmp"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(MAIN, prefix / "conf" / "nginx.conf")
    kw.setdefault("access_log", "logs/access.log")        # relative to the prefix
    (prefix / "conf" / "epgembed.conf").write_text(render(listen, replicas, **kw))
    return prefix / "conf" / "nginx.conf"


def command(prefix: Path, nginx: str = NGINX, *extra: str) -> list[str]:
    """nginx in the foreground on a prefix written by write_prefix."""
    return [nginx, "-p", f"{Path(prefix)}/", "-c", "conf/nginx.conf", "-g", "daemon off;", *extra]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", required=True, help='nginx "listen" value: 80, 127.0.0.1:8080, "443 ssl" ...')
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--replica", action="append", metavar="HOST:PORT",
                       help="one epgembed replica (repeat for each)")
    which.add_argument("--feeds", metavar="FILE", help="several feeds: their list (deploy/feeds.json)")
    p.add_argument("--access-log", help="default: /var/log/nginx/epgembed.access.log (with --prefix: logs/access.log)")
    p.add_argument("--max-fails", type=int, default=2)
    p.add_argument("--fail-timeout", default="5s")
    p.add_argument("--prefix", help="write a standalone nginx prefix folder here instead of printing")
    a = p.parse_args(argv)
    kw = {"max_fails": a.max_fails, "fail_timeout": a.fail_timeout}
    if a.access_log:
        kw["access_log"] = a.access_log
    try:
        if a.feeds:
            kw["feeds"] = feedlist.load(a.feeds)
        if a.prefix:
            conf = write_prefix(Path(a.prefix), a.listen, a.replica, **kw)
            print(f"wrote {conf}; run: {shlex.join(command(Path(a.prefix)))}")
        else:
            sys.stdout.write(render(a.listen, a.replica, **kw))
    except ValueError as e:
        print(f"render_nginx: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
