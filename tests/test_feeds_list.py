"""The list of feeds (deploy/feeds.py) and what is rendered from it, without processes: a bad
list is refused with a message naming the file and the feed; each feed gets its own
upstream, routes, environment file and drop-ins; the single replica set renders as before.
The rendered configurations running under nginx and systemd: tests/test_feeds.py."""
from __future__ import annotations

import json

import pytest

from deploy import feeds as feedlist
from deploy import render_nginx
from deploy.feeds import Feed, FeedsError

pytestmark = pytest.mark.unit

A = {"name": "de", "models": "/srv/feeds/de/models", "replicas": ["10.0.0.1:8101", "10.0.0.2:8101"]}
B = {"name": "fr", "models": "/srv/feeds/fr/models", "replicas": ["10.0.0.1:8102"], "nightly": "*-*-* 04:00:00",
     "dumps": "/srv/incoming/fr"}


def listed(*feeds: dict) -> dict:
    return {"feeds": list(feeds)}


@pytest.mark.parametrize("data, message", [
    ([A], 'an object with one key, "feeds"'),
    ({"feeds": []}, "the list of feeds is empty"),
    (listed({**A, "model": "/x"}), "feed 1: unknown keys ['model']"),
    (listed({"name": "de", "replicas": []}), "feed 1: missing ['models']"),
    (listed({**A, "replicas": "10.0.0.1:8101"}), "replicas is a list of HOST:PORT strings"),
    (listed({**A, "name": "De Feed"}), "feed name 'De Feed'"),
    (listed({**A, "models": "srv/de"}), "feed 'de': models 'srv/de' is not an absolute path"),
    (listed({**A, "models": "/srv/../etc"}), "models '/srv/../etc' is not an absolute path"),
    (listed({**A, "replicas": []}), "feed 'de': no replicas"),
    (listed({**A, "replicas": ["10.0.0.1"]}), "replica '10.0.0.1' is not HOST:PORT"),
    (listed({**A, "replicas": ["10.0.0.1:70000"]}), "replica '10.0.0.1:70000' is not HOST:PORT"),
    (listed({**A, "nightly": "03:30; rm"}), "nightly '03:30; rm' is not a systemd OnCalendar"),
    (listed(A, {**B, "name": "de"}), "feed name 'de' is listed twice"),
    (listed(A, {**B, "models": "/srv/feeds/de/models/"}), "models root '/srv/feeds/de/models' is in both"),
    (listed(A, {**B, "replicas": ["10.0.0.3:8101"]}), "port 8101 is in both 'de' and 'fr' (a port serves one feed"),
    (listed({**A, "replicas": ["10.0.0.1:8101", "10.0.0.1:8101"]}), "feed 'de': replica '10.0.0.1:8101' is listed twice"),
])
def test_a_bad_list_is_refused_naming_the_file_and_the_feed(tmp_path, data, message):
    path = tmp_path / "feeds.json"
    path.write_text(json.dumps(data))
    with pytest.raises(FeedsError) as e:
        feedlist.load(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value), str(e.value)


def test_a_file_that_is_no_json_names_its_line(tmp_path):
    path = tmp_path / "feeds.json"
    path.write_text('{"feeds": [\n  {"name": "de",}\n]}')
    with pytest.raises(FeedsError, match=rf"^{path}: not JSON: .*\(line 2, column 17\)"):
        feedlist.load(path)


def test_defaults_and_the_list_served_at_feeds():
    de, fr = feedlist.parse(listed(A, B))
    assert de == Feed("de", "/srv/feeds/de/models", ("10.0.0.1:8101", "10.0.0.2:8101"))
    assert (de.dumps_dir, de.nightly, de.ports()) == ("/srv/feeds/de/dumps", feedlist.NIGHTLY, [8101, 8101])
    assert (fr.dumps_dir, fr.nightly) == ("/srv/incoming/fr", "*-*-* 04:00:00")
    assert json.loads(feedlist.index([de, fr])) == {"feeds": [
        {"name": "de", "url": "/feeds/de/", "model": "/feeds/de/v1/model", "nightly": feedlist.NIGHTLY},
        {"name": "fr", "url": "/feeds/fr/", "model": "/feeds/fr/v1/model", "nightly": "*-*-* 04:00:00"}]}


def test_each_feed_gets_its_environment_drop_ins_and_schedule():
    files = feedlist.systemd_files(feedlist.parse(listed(A, B)))
    assert sorted(files) == ["epgembed/feeds/de.env", "epgembed/feeds/fr.env",
                             "systemd/epgembed-nightly@de.service.d/feed.conf",
                             "systemd/epgembed-nightly@de.timer.d/schedule.conf",
                             "systemd/epgembed-nightly@fr.service.d/feed.conf",
                             "systemd/epgembed-nightly@fr.timer.d/schedule.conf",
                             "systemd/epgembed@8101.service.d/feed.conf", "systemd/epgembed@8102.service.d/feed.conf"]
    env = files["epgembed/feeds/fr.env"].splitlines()
    assert {"EPGEMBED_FEED=fr", "EPGEMBED_MODELS=/srv/feeds/fr/models", "EPGEMBED_DUMPS=/srv/incoming/fr"} <= set(env)
    replica = files["systemd/epgembed@8102.service.d/feed.conf"].splitlines()
    # the feed's environment file (read after the shared one, so its root wins), its root only
    assert "EnvironmentFile=/etc/epgembed/feeds/fr.env" in replica
    assert replica[-2:] == ["ReadOnlyPaths=", "ReadOnlyPaths=/srv/feeds/fr/models"]
    nightly = files["systemd/epgembed-nightly@fr.service.d/feed.conf"].splitlines()
    assert {"ReadWritePaths=/srv/feeds/fr/models", "ReadOnlyPaths=/srv/incoming/fr"} <= set(nightly)
    assert files["systemd/epgembed-nightly@fr.timer.d/schedule.conf"].splitlines()[-2:] == [
        "OnCalendar=", "OnCalendar=*-*-* 04:00:00"]


def test_nginx_routes_each_feed_to_its_own_upstream_and_one_set_renders_as_before():
    text = render_nginx.render("80", feeds=feedlist.parse(listed(A, B)))
    for name, servers in (("de", A["replicas"]), ("fr", B["replicas"])):
        upstream = text.split(f"upstream epgembed_{name} {{", 1)[1].split("}", 1)[0]
        assert [line.split()[1] for line in upstream.splitlines() if line.strip().startswith("server ")] == servers
        assert f"location /feeds/{name}/ {{\n        proxy_pass http://epgembed_{name}/;" in text    # prefix stripped
        assert f"location = /feeds/{name}/v1/related {{" in text
    assert "upstream epgembed {" not in text and "location / {\n        return 404;" in text
    one = render_nginx.render("80", ["10.0.0.1:8001"])
    assert "upstream epgembed {\n" in one and "location / {\n        proxy_pass http://epgembed;\n" in one
    assert "/feeds" not in one.split("server {", 1)[1]
    with pytest.raises(ValueError, match="either replicas"):
        render_nginx.render("80", ["10.0.0.1:8001"], feeds=feedlist.parse(listed(A)))
