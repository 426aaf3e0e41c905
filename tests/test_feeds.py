"""Feeds sharded behind nginx (issue 27; docs/DEPLOY.md, "Several feeds"): a list of two feeds
rendered by deploy/render_nginx.py --feeds in front of one `epgembed serve` replica per feed
(1 worker, polling `current` every 0.2 s), each feed on its own models root: feed a serves
the tiny model, feed b the second one (another version), all on free loopback ports.

- routing: /feeds/a/... answers feed a's version from a's replica, /feeds/b/... b's (the
  prefix stripped: the service sees /v1/...; the explorer page loads under /feeds/a/);
  /feeds lists both, and each entry's model link answers that feed's version; an unknown feed, a feed's name without its slash and a path
  outside /feeds are JSON 404s in the service's shape;
- isolation: a new version published on feed a's root is served on /feeds/a/ while feed b
  keeps its version and loads nothing;
- the example list deploy/feeds.json renders to an nginx configuration `nginx -t` accepts,
  and to systemd files `systemd-analyze verify` accepts (beside the units of deploy/systemd).

Skipped only when nginx is not installed (`make test` installs Debian's nginx).
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from deploy import feeds as feedlist
from deploy import render_nginx
from deploy.local_stack import FeedStack, find_nginx, free_port
from epgembed.registry import publish
from polling import holds_for, wait_until
from service_util import make_root, version_of

pytestmark = pytest.mark.system

NGINX = find_nginx()
if NGINX is None:
    pytest.skip("nginx is not installed (make test installs it: apt-get install -y nginx)", allow_module_level=True)

REPO = Path(__file__).resolve().parent.parent
POLL = 0.2
SWITCH_WINDOW = 5.0   # poll + load, with room for a busy machine


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_model_dir, tiny_model_b):
    """Feeds a and b, one replica each on its own root, one nginx in front."""
    base = tmp_path_factory.mktemp("feeds")
    roots = {"a": base / "a" / "models", "b": base / "b" / "models"}
    make_root(roots["a"], tiny_model_dir)
    make_root(roots["b"], tiny_model_b)
    with FeedStack(roots, base, 1, NGINX, workers=1, poll=POLL, ready_timeout=40) as s:
        yield s


def served(url: str, feed: str) -> str | None:
    r = requests.get(f"{url}/feeds/{feed}/v1/model", timeout=5)
    return r.json()["version"] if r.status_code == 200 else None


def renamed(model_dir: Path, folder: Path, version: str) -> Path:
    """The same files under another version name: a new version as the registry sees it."""
    out = folder / version
    shutil.copytree(model_dir, out)
    manifest = out / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "version": version}))
    return out


def assert_json_404(r: requests.Response) -> None:
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/json", (r.url, r.status_code, r.text)
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.json()["error"]["status"] == 404 and r.json()["error"]["code"] == "not_found", r.text


def test_each_feed_answers_on_its_own_route(stack, tiny_model_dir, tiny_model_b):
    url = stack.nginx.url
    versions = {"a": version_of(tiny_model_dir), "b": version_of(tiny_model_b)}
    assert versions["a"] != versions["b"]
    with requests.Session() as s:
        for feed, v in versions.items():
            assert served(url, feed) == v
            for r in (s.get(f"{url}/feeds/{feed}/v1/titles/7/related?k=5", timeout=5),
                      s.get(f"{url}/feeds/{feed}/v1/related", params={"title": "Football Weekly", "k": 5}, timeout=5),
                      s.post(f"{url}/feeds/{feed}/v1/related", json={"titles": ["Cartoon Club", "Unknown Thing"],
                                                                     "k": 3}, timeout=5)):
                assert r.status_code == 200, r.text
                assert r.headers["X-Model-Version"] == r.json()["model"]["version"] == v
    # nginx sent each feed's requests to that feed's replica only
    routed = [e for e in stack.nginx.access() if e["uri"].startswith("/feeds/")]
    assert len(routed) == 8
    for e in routed:
        assert e["upstream"] == stack.feeds[e["uri"].split("/")[2]][0].addr, e
    # the service saw its own paths: the prefix is gone (its 404 names the path it got)
    page = requests.get(f"{url}/feeds/a/", timeout=5)         # the explorer: its URLs are relative
    assert page.status_code == 200 and 'src="explorer/explorer.js"' in page.text
    assert requests.get(f"{url}/feeds/a/explorer/explorer.js", timeout=5).status_code == 200
    missing = requests.get(f"{url}/feeds/a/v1/nothing-here", timeout=5)
    assert_json_404(missing)
    assert missing.json()["error"]["message"].startswith("no route /v1/nothing-here")

    listed = requests.get(f"{url}/feeds", timeout=5)
    assert listed.status_code == 200 and listed.headers["Content-Type"] == "application/json"
    assert [f["name"] for f in listed.json()["feeds"]] == ["a", "b"]
    for f in listed.json()["feeds"]:
        assert requests.get(url + f["model"], timeout=5).json()["version"] == versions[f["name"]]
    not_get = requests.post(f"{url}/feeds", json={}, timeout=5)
    assert not_get.status_code == 405 and not_get.json()["error"]["code"] == "method_not_allowed"

    for path in ("/feeds/zzz/v1/model", "/feeds/a", "/v1/model", "/feeds/"):
        r = requests.get(url + path, timeout=5, allow_redirects=False)
        assert_json_404(r)
        assert "the feeds are a, b" in r.json()["error"]["message"]


def test_a_publish_on_one_feed_leaves_the_other_as_it_was(stack, tmp_path, tiny_model_dir, tiny_model_b):
    url = stack.nginx.url
    (replica_a,), (replica_b,) = stack.feeds["a"], stack.feeds["b"]
    va, vb = version_of(tiny_model_dir), version_of(tiny_model_b)
    assert served(url, "a") == va and served(url, "b") == vb
    loads_b = replica_b.log().count('"event": "model_loaded"')
    vc = publish(replica_a.root, renamed(tiny_model_dir, tmp_path, va + "-c"))
    wait_until(lambda: served(url, "a") == vc, timeout=SWITCH_WINDOW, what="feed a on its new version")
    holds_for(lambda: served(url, "b") == vb, seconds=5 * POLL, what="feed b on its own version")
    answer = requests.get(f"{url}/feeds/b/v1/titles/7/related?k=5", timeout=5)
    assert answer.status_code == 200 and answer.headers["X-Model-Version"] == vb
    assert replica_b.log().count('"event": "model_loaded"') == loads_b


def test_the_example_list_renders_to_configs_nginx_and_systemd_accept(tmp_path):
    feeds = feedlist.load(REPO / "deploy" / "feeds.json")
    prefix = tmp_path / "nginx"
    render_nginx.write_prefix(prefix, f"127.0.0.1:{free_port()}", feeds=feeds)
    check = subprocess.run(render_nginx.command(prefix, NGINX, "-t"), capture_output=True, text=True)
    assert check.returncode == 0, check.stderr

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    units = tmp_path / "units"
    shutil.copytree(REPO / "deploy" / "systemd", units)
    feedlist.write_systemd(feeds, tmp_path / "out")
    shutil.copytree(tmp_path / "out" / "systemd", units, dirs_exist_ok=True)
    names = [f"epgembed@{p}.service" for f in feeds for p in f.ports()]
    names += [f"epgembed-nightly@{f.name}.{kind}" for f in feeds for kind in ("service", "timer")]
    run = subprocess.run([analyze, "verify", *names], capture_output=True, text=True, cwd=units,
                         env={"SYSTEMD_UNIT_PATH": f"{units}:", "PATH": "/usr/bin:/bin"})
    # the only complaint allowed: the units' ExecStart is installed under /opt/epgembed, not here
    problems = [line for line in run.stderr.splitlines() if "/opt/epgembed/.venv/bin/epgembed is not executable" not in line]
    assert problems == [], run.stderr
