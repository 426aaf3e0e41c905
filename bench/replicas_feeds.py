"""The feeds phase of `make bench-replicas` (issue 27; docs/DEPLOY.md, "Several feeds"):
2 feeds x N replicas behind one nginx rendered from a list of feeds (deploy/feeds.py), each
feed on its own models root. Feed a serves the bench model, feed b the same files under
another version name, so every answer says which feed's model it came from. With the
Python load generator on both feeds at once (half the threads each, the mixed traffic of
bench/replicas.py under /feeds/NAME/):

1. traffic: both feeds for the phase's seconds: per feed requests/s, p50/p99, failures;
2. a new version published on feed a: the time until every replica of a serves it; feed b
   meanwhile: the versions it answered (its own only) and its failures (none);
3. kill -9 of one replica of feed b, restarted 1 s later (systemd's RestartSec=1): failures
   and nginx retries per feed (only b's may fail, bounded by its requests in flight), time
   until the restarted replica answers through nginx again.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import PyLoad, kill_and_restart, second_version
from deploy.local_stack import FeedStack, Nginx, Replica

FEEDS = ("a", "b")


def version_of(model_dir: Path) -> str:
    return json.loads((model_dir / "manifest.json").read_text())["version"]


class TwoLoads:
    """One PyLoad per feed, on that feed's routes through the same nginx."""

    def __init__(self, port: int, reqs, threads: int = 4):
        self.loads = {f: PyLoad(port, [(m, f"/feeds/{f}{p}", b) for m, p, b in reqs], n=threads) for f in FEEDS}

    def stop(self) -> dict[str, dict]:
        out = {}
        for f, load in self.loads.items():
            stats = load.stop()
            ok = [x for x in load.all if x[2] == 200]
            out[f] = {**stats, "versions_answered": sorted({x[4] for x in ok})}
        return out


def traffic(port: int, reqs, seconds: float) -> dict:
    loads = TwoLoads(port, reqs)
    time.sleep(seconds)
    return loads.stop()


def publish_on_a(port: int, reqs, stack: FeedStack, root: Path, model: Path, tail: float) -> dict:
    from epgembed.registry import publish
    new = version_of(model)
    loads = TwoLoads(port, reqs)
    time.sleep(1.0)
    publish(root, model, move=False)
    t_moved = time.time()
    switched: dict[str, float] = {}
    while len(switched) < len(stack.feeds["a"]) and time.time() - t_moved < 60:
        for r in stack.feeds["a"]:
            if r.addr not in switched and r.serves_only(new):
                switched[r.addr] = round(time.time() - t_moved, 3)
        time.sleep(0.02)
    time.sleep(tail)
    per_feed = loads.stop()
    return {"published_on": "a", "version": new, "a_switched_after_s": switched,
            "a_all_switched_after_s": max(switched.values(), default=None), **per_feed}


def kill_on_b(port: int, reqs, nginx: Nginx, victim: Replica, tail: float) -> dict:
    mark = len(nginx.access())
    loads = TwoLoads(port, reqs)
    time.sleep(1.0)
    k = kill_and_restart(nginx, victim, mark)
    time.sleep(tail)
    per_feed = loads.stop()
    entries = [e for e in nginx.access()[mark:] if e["msec"] >= k["t_kill"]]
    for f in FEEDS:
        per_feed[f]["retried_by_nginx"] = sum(1 for e in entries if e["uri"].startswith(f"/feeds/{f}/")
                                              and "," in e["upstream"])
    return {"killed": f"b: {victim.addr}", "restart_to_ready_s": round(k["ready_s"], 2),
            "kill_to_traffic_via_nginx_s": round(k["t_back"] - k["t_kill"], 2) if k["t_back"] else None, **per_feed}


def feeds_phase(args: argparse.Namespace, nginx_bin: str, model_dir: Path, reqs, tmp: Path,
                command: list[str]) -> dict:
    """The three steps on a FeedStack started in `tmp` (stopped on return)."""
    from epgembed.registry import publish
    roots = {f: tmp / f"feed-{f}" / "models" for f in FEEDS}
    publish(roots["a"], model_dir, move=False)
    publish(roots["b"], second_version(model_dir, tmp, "-b"), move=False)
    model_a2 = second_version(model_dir, tmp, "-a2")
    tail = args.seconds / 4
    with FeedStack(roots, tmp, args.replicas, nginx_bin, workers=args.workers, threads=args.threads,
                   poll=args.poll_seconds, command=command) as stack:
        port = stack.nginx.port
        print(f"2 feeds x {args.replicas} replicas x {args.workers} workers ready in {stack.startup_s} s", flush=True)
        out = {"feeds": {f: {"version": rs[0].version(), "replicas": len(rs)} for f, rs in stack.feeds.items()},
               "startup_s": stack.startup_s}
        out["traffic"] = t = traffic(port, reqs, args.seconds)
        print("traffic to both feeds: " + "; ".join(
            f"{f} {t[f]['rps']} req/s p50 {t[f]['p50_ms']} ms p99 {t[f]['p99_ms']} ms, failed {t[f]['failed']} "
            f"of {t[f]['requests']}" for f in FEEDS), flush=True)
        out["publish_on_a"] = p = publish_on_a(port, reqs, stack, roots["a"], model_a2, tail)
        print(f"publish on feed a: every replica of a switched {p['a_all_switched_after_s']} s after `current` moved; "
              f"a answered {p['a']['versions_answered']} (mixed {p['a']['mixed_version_answers']}, failed "
              f"{p['a']['failed']} of {p['a']['requests']}); b answered {p['b']['versions_answered']} (failed "
              f"{p['b']['failed']} of {p['b']['requests']})", flush=True)
        out["kill9_replica_of_b"] = k = kill_on_b(port, reqs, stack.nginx, stack.feeds["b"][-1], tail)
        print(f"kill -9 of a replica of feed b: b failed {k['b']['failed']} of {k['b']['requests']} (retried by "
              f"nginx {k['b']['retried_by_nginx']}); a failed {k['a']['failed']} of {k['a']['requests']}; the "
              f"replica answered through nginx again {k['kill_to_traffic_via_nginx_s']} s after the kill", flush=True)
    return out
