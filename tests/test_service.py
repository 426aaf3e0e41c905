"""The HTTP service through Flask's test client: API contract, every error case, OpenAPI,
metrics, access log, hot reload (concurrent clients, corrupt models, SIGHUP), config."""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
from pathlib import Path

import msgspec
import numpy as np
import pytest

from guide import GENRES
from epgembed.query.load import load_model
from epgembed.query.requests import Context, Options
from epgembed.registry import publish
from polling import holds_for, wait_until
from service import Limits, ServiceConfig, create_app
from epgembed.text.normalize import MAX_TITLE_CHARS
from service.holder import install_sighup
from service.state import state
from service_util import CORRUPTIONS, make_root, publish_corrupt, serving_app, version_of

pytestmark = pytest.mark.integration

GENRE_OF = {t: g for g, ts in GENRES.items() for t in ts}


@pytest.fixture
def root(tmp_path, tiny_model_dir) -> Path:
    make_root(tmp_path / "root", tiny_model_dir)
    return tmp_path / "root"


@pytest.fixture
def app(root):
    with serving_app(root) as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


def get_json(client, url, status=200):
    r = client.get(url)
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "application/json"
    return r.get_json()


# ---------------------------------------------------------------------- contract
def test_related_known_title(client, tiny_model_dir):
    model = load_model(tiny_model_dir)
    body = get_json(client, "/v1/related?title=Football%20Weekly&k=5")
    q = body["query"]
    assert q["known"] is True and model.catalog.shows[q["id"]].title == "Football Weekly"
    assert q["title"] == "Football Weekly" and body["model"]["version"] == model.version
    hits = body["related"]
    assert len(hits) == 5 and q["id"] not in [h["id"] for h in hits]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    for h in hits:    # score = cosine of the stored unit vectors; title/categories from the catalog
        assert h["score"] == pytest.approx(float(np.dot(model.vectors[q["id"]], model.vectors[h["id"]])), abs=1e-4)
        assert h["title"] == model.catalog.shows[h["id"]].title
        assert h["categories"] == model.catalog.shows[h["id"]].category_list()
    assert sum(GENRE_OF.get(h["title"]) == "sport" for h in hits) >= 3


def test_related_unseen_title_is_embedded(client):
    body = get_json(client, "/v1/related?title=Saturday%20Football%20Tonight&k=5")
    assert body["query"] == {"title": "Saturday Football Tonight", "known": False, "id": None}
    assert sum(GENRE_OF.get(h["title"]) == "sport" for h in body["related"]) >= 3


def test_options_include_self_offset_category_min_score(client):
    base = "/v1/related?title=Football%20Weekly"
    own = get_json(client, base + "&k=3&include_self=true")
    assert own["related"][0]["id"] == own["query"]["id"] and own["related"][0]["score"] == pytest.approx(1, abs=1e-4)
    full = get_json(client, base + "&k=6")["related"]
    assert get_json(client, base + "&k=3&offset=2")["related"] == full[2:5]
    news = get_json(client, base + "&k=5&category=NEWS")["related"]
    assert news and all("news" in h["categories"] for h in news)
    cut = full[2]["score"]
    assert all(h["score"] >= cut for h in get_json(client, base + f"&k=10&min_score={cut}")["related"])


def test_same_series_and_schedule_context(client, tiny_model_dir):
    """Issue 16: own episodes only on request; a never-seen title may carry its slot."""
    model = load_model(tiny_model_dir)
    for same in (False, True):
        got = get_json(client, f"/v1/related?title=Football+Weekly&k=8&same_series={str(same).lower()}")
        want = model.related("Football Weekly", Options(k=8, same_series=same))
        assert [h["id"] for h in got["related"]] == [h.id for h in want.related]
    params = {p["name"] for p in get_json(client, "/openapi.json")["paths"]["/v1/related"]["get"]["parameters"]}
    assert params >= {"same_series", "channel", "start", "minutes"}
    unseen = "/v1/related?title=Saturday+Puppy+Party&k=5"
    ctx = get_json(client, unseen + "&channel=ch2&start=202601010600&minutes=30")
    assert ctx["query"]["known"] is False and len(ctx["related"]) == 5
    want = model.related("Saturday Puppy Party", Options(k=5),
                         context=Context(channel="ch2", start="202601010600", minutes=30.0))
    assert [h["id"] for h in ctx["related"]] == [h.id for h in want.related]
    err = get_json(client, unseen + "&start=tomorrow", status=400)["error"]
    assert "is not a time YYYYmmddHHMM" in err["message"]


def test_related_by_id_matches_model(client, tiny_model_dir):
    model = load_model(tiny_model_dir)
    body = get_json(client, "/v1/titles/3/related?k=4")
    assert body["query"] == {"title": model.catalog.shows[3].title, "known": True, "id": 3}
    assert body["related"] == msgspec.to_builtins(model.related_to_id(3, Options(k=4)))["related"]


def test_batch_answers_in_order_like_single_queries(client):
    titles = ["Football Weekly", "Unseen Cartoon Puppy Show", "\u200b", "Morning News"]
    r = client.post("/v1/related", json={"titles": titles, "k": 3})
    assert r.status_code == 200
    results = r.get_json()["results"]
    assert [x["query"]["title"] for x in results] == titles
    for t, x in zip(titles, results):
        if t == "\u200b":     # no tokens after normalization: an error entry, the batch still answers
            assert x["related"] == [] and x["error"]["status"] == 400
            continue
        single = get_json(client, f"/v1/related?title={t}&k=3")
        assert x["related"] == single["related"] and x["query"] == single["query"]


def test_title_search_prefix_word_substring(client):
    found = get_json(client, "/v1/titles?q=FOOT")["titles"]
    assert {t["title"] for t in found} >= {"Football Weekly", "Football Tonight", "Football Highlights"}
    assert all(t["match"] == "prefix" for t in found[:3])
    assert found[-1]["title"] == "Unlabelled Football Special" and found[-1]["match"] == "word"
    word = get_json(client, "/v1/titles?q=tonight")["titles"]
    assert {t["title"] for t in word} >= {"Football Tonight", "Tennis Tonight", "Boxing Tonight"}
    inner = get_json(client, "/v1/titles?q=ball")["titles"]
    assert inner and all("ball" in t["title"].lower() and t["match"] == "substring" for t in inner)
    assert len(get_json(client, "/v1/titles?q=o&limit=4")["titles"]) == 4
    assert get_json(client, "/v1/titles?q=zzzqqq")["titles"] == []


def test_model_health_ready(client, tiny_model_dir):
    m = get_json(client, "/v1/model")
    assert m["version"] == version_of(tiny_model_dir) and m["shows"] == 49 and m["dim"] == 32
    assert m["counts"]["shows"] == 49 and m["reload"]["mode"] == "models_root"
    assert get_json(client, "/healthz") == {"status": "ok"}
    assert get_json(client, "/readyz")["model"]["version"] == m["version"]
    assert client.get("/v1/related?title=News").headers["X-Model-Version"] == m["version"]


def test_no_model_is_503_json(tmp_path):
    app = create_app(ServiceConfig(models=tmp_path, poll_seconds=0))   # an empty root: nothing published
    c = app.test_client()
    ready = get_json(c, "/readyz", 503)
    assert "no model published" in ready["reason"]
    for url in ["/v1/related?title=News", "/v1/titles/1/related", "/v1/titles?q=n", "/v1/model"]:
        assert get_json(c, url, 503)["error"]["code"] == "no_model"
    assert get_json(c, "/healthz") == {"status": "ok"}
    state(app).holder.stop()


# ---------------------------------------------------------------------- errors
LONG = "x" * (MAX_TITLE_CHARS + 1)
ERRORS = [
    ("GET", "/v1/related", {}, 400, "title is required"),
    ("GET", "/v1/related?title=", {}, 400, "title is empty"),
    ("GET", "/v1/related?title=%20%20", {}, 400, "title is empty"),
    ("GET", f"/v1/related?title={LONG}", {}, 400, f"longer than {MAX_TITLE_CHARS}"),
    ("GET", "/v1/related?title=a&k=0", {}, 400, "k must be between 1 and 100"),
    ("GET", "/v1/related?title=a&k=101", {}, 400, "k must be between"),
    ("GET", "/v1/related?title=a&k=abc", {}, 400, "k must be an integer"),
    ("GET", "/v1/related?title=a&k=1.5", {}, 400, "k must be an integer"),
    ("GET", "/v1/related?title=a&min_score=2", {}, 400, "min_score must be between"),
    ("GET", "/v1/related?title=a&min_score=nan", {}, 400, "finite"),
    ("GET", "/v1/related?title=a&offset=-1", {}, 400, "offset must be between"),
    ("GET", "/v1/related?title=a&include_self=maybe", {}, 400, "include_self must be true or false"),
    ("GET", "/v1/related?title=a&kk=3", {}, 400, "unknown parameter(s): kk"),
    ("GET", "/v1/related?title=a&title=b", {}, 400, "more than once"),
    ("GET", "/v1/related?title=%E2%80%8B", {}, 400, "no letter or digit"),
    ("GET", "/v1/related?title=!!!", {}, 400, "no letter or digit"),
    ("GET", "/v1/titles/1/related?k=1000", {}, 400, "k must be between"),
    ("GET", "/v1/titles/49/related", {}, 404, "unknown id 49"),
    ("GET", "/v1/titles/abc/related", {}, 400, "id must be a non-negative integer, got 'abc'"),
    ("GET", "/v1/titles/-1/related", {}, 400, "id must be a non-negative integer"),
    ("GET", "/v1/titles", {}, 400, "q is required"),
    ("GET", "/v1/titles?q=a&limit=0", {}, 400, "limit must be between 1 and 50"),
    ("GET", "/nowhere", {}, 404, "no route /nowhere"),
    ("PUT", "/v1/related", {}, 405, "PUT is not allowed"),
    ("POST", "/healthz", {}, 405, "not allowed"),
    ("DELETE", "/v1/titles", {}, 405, "not allowed"),
    ("POST", "/v1/related", {"data": "x" * (Limits().max_body_bytes + 1000), "content_type": "application/json"}, 413,
     f"larger than {Limits().max_body_bytes}"),
    ("POST", "/v1/related", {"data": "titles=a", "content_type": "text/plain"}, 415, "application/json"),
    ("POST", "/v1/related", {"data": "{}"}, 415, "application/json"),
    ("POST", "/v1/related", {"data": "{not json", "content_type": "application/json"}, 400, "not valid JSON"),
    ("POST", "/v1/related", {"json": ["a"]}, 400, "JSON object"),
    ("POST", "/v1/related", {"json": {}}, 400, "exactly one of titles or programmes"),
    ("POST", "/v1/related", {"json": {"titles": "a"}}, 400, "non-empty array"),
    ("POST", "/v1/related", {"json": {"titles": []}}, 400, "non-empty array"),
    ("POST", "/v1/related", {"json": {"titles": ["a"] * 65}}, 400, "at most 64 items"),
    ("POST", "/v1/related", {"json": {"titles": ["a", 3]}}, 400, "titles[1] must be a string"),
    ("POST", "/v1/related", {"json": {"titles": ["a", " "]}}, 400, "titles[1] is empty"),
    ("POST", "/v1/related", {"json": {"titles": [LONG]}}, 400, f"titles[0] is longer than {MAX_TITLE_CHARS}"),
    ("POST", "/v1/related", {"json": {"titles": ["a"], "k": True}}, 400, "k must be an integer"),
    ("POST", "/v1/related", {"json": {"titles": ["a"], "k": 0}}, 400, "k must be between"),
    ("POST", "/v1/related", {"json": {"titles": ["a"], "path": "/etc"}}, 400, "unknown parameter(s): path"),
]


@pytest.mark.parametrize("method,url,kw,status,message", ERRORS, ids=[f"{e[3]}-{i}" for i, e in enumerate(ERRORS)])
def test_errors_are_json(client, method, url, kw, status, message):
    r = client.open(url, method=method, **kw)
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "application/json"
    err = r.get_json()["error"]
    assert err["status"] == status and message in err["message"]
    if status == 405:
        assert "GET" in r.headers["Allow"] or "POST" in r.headers["Allow"]


def test_unexpected_exception_is_json_500(app, client, monkeypatch):
    monkeypatch.setattr(state(app).holder.get().model, "related", lambda *a, **k: 1 / 0)
    r = client.get("/v1/related?title=News")
    assert r.status_code == 500 and r.get_json()["error"]["code"] == "internal_error"


# ---------------------------------------------------------------------- openapi, metrics, logs
def test_metrics_count_requests_by_endpoint_and_status(client):
    for _ in range(3):
        client.get("/v1/related?title=News")
    client.get("/v1/related?k=0")
    client.get("/v1/titles/2/related")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'epgembed_http_requests_total{endpoint="/v1/related",method="GET",status="200"} 3.0' in text
    assert 'epgembed_http_requests_total{endpoint="/v1/related",method="GET",status="400"} 1.0' in text
    assert 'endpoint="/v1/titles/{id}/related",method="GET",status="200"} 1.0' in text
    assert 'epgembed_http_request_duration_seconds_count{endpoint="/v1/related"} 4.0' in text
    assert 'epgembed_model_reloads_total{result="ok"} 1.0' in text
    assert "epgembed_model_info{version=" in text


def test_one_structured_access_line_per_request(client, caplog):
    with caplog.at_level(logging.INFO, logger="epgembed.access"):
        client.get("/v1/related?title=News&k=2")
        client.get("/nowhere")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "epgembed.access"]
    assert [(x["path"], x["status"]) for x in lines] == [("/v1/related", 200), ("/nowhere", 404)]
    assert lines[0]["endpoint"] == "/v1/related" and lines[0]["ms"] > 0 and lines[0]["model"]
    assert lines[1]["endpoint"] == "unmatched" and lines[1]["model"] is None


# ---------------------------------------------------------------------- hot reload
def test_reload_while_clients_send_requests(tmp_path, tiny_model_dir, tiny_model_b):
    root = tmp_path / "root"
    a, b = make_root(root, tiny_model_dir), version_of(tiny_model_b)
    app = create_app(ServiceConfig(models=root, poll_seconds=0.05))
    stop, failures, seen = threading.Event(), [], [[] for _ in range(3)]

    def loop(mine):
        c = app.test_client()
        urls = ["/v1/related?title=Football%20Weekly&k=3", "/v1/titles/5/related?k=3", "/v1/titles?q=news"]
        while not stop.is_set():
            for url in urls:
                r = c.get(url)
                (mine.append(r.get_json()["model"]["version"]) if r.status_code == 200
                 else failures.append((url, r.status_code)))

    threads = [threading.Thread(target=loop, args=(s,)) for s in seen]
    for t in threads:
        t.start()
    wait_until(lambda: all(len(s) > 20 for s in seen), what="20 answers per client")
    publish(root, tiny_model_b, move=False)
    wait_until(lambda: all(s[-1] == b for s in seen), what="every client on the new version")
    n = [len(s) for s in seen]
    wait_until(lambda: all(len(s) > k + 20 for s, k in zip(seen, n)), what="20 more answers per client")
    stop.set()
    for t in threads:
        t.join()
    state(app).holder.stop()
    assert failures == []
    for s in seen:          # each client: the old version, then the new one, never back
        switch = s.index(b)
        assert switch > 0 and set(s[:switch]) == {a} and set(s[switch:]) == {b}


def test_request_in_flight_finishes_on_its_model(app, root, tiny_model_b):
    holder = state(app).holder
    old = holder.get()
    entered, release, result = threading.Event(), threading.Event(), {}
    original = old.model.related

    def slow_related(*args, **kw):
        entered.set()
        release.wait(5)
        return original(*args, **kw)

    old.model.related = slow_related
    t = threading.Thread(target=lambda: result.update(r=app.test_client().get("/v1/related?title=News&k=3")))
    t.start()
    assert entered.wait(5)
    publish(root, tiny_model_b, move=False)
    assert holder.check() is True and holder.get().version == version_of(tiny_model_b)
    release.set()
    t.join()
    r = result["r"]
    assert r.status_code == 200 and r.get_json()["model"]["version"] == old.version
    assert r.get_json()["related"] == msgspec.to_builtins(original("News", Options(k=3)))["related"]
    assert app.test_client().get("/v1/related?title=News").get_json()["model"]["version"] == version_of(tiny_model_b)


def test_old_model_is_released_after_the_swap(app, client, root, tiny_model_b):
    import gc
    import weakref
    client.get("/v1/related?title=News")
    old = weakref.ref(state(app).holder.get().model)
    publish(root, tiny_model_b, move=False)
    assert state(app).holder.check() is True
    gc.collect()
    assert old() is None          # nothing keeps the old model (and its index mmap) alive


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_corrupt_model_is_refused_and_old_keeps_serving(app, client, root, tiny_model_dir, tiny_model_b,
                                                        how, caplog):
    holder = state(app).holder
    a = holder.get().version
    name = publish_corrupt(root, tiny_model_dir, how)
    with caplog.at_level(logging.ERROR, logger="epgembed.service"):
        assert holder.check() is False
    refused = [json.loads(r.getMessage()) for r in caplog.records if "model_refused" in r.getMessage()]
    assert len(refused) == 1 and refused[0]["name"] == name and refused[0]["serving"] == a
    assert get_json(client, "/v1/related?title=News")["model"]["version"] == a
    assert get_json(client, "/readyz")["status"] == "ready"
    assert get_json(client, "/v1/model")["reload"]["refused"]["name"] == name
    assert holder.check() is False                       # the same broken version is not retried
    assert 'epgembed_model_reloads_total{result="refused"} 1.0' in client.get("/metrics").get_data(as_text=True)
    publish(root, tiny_model_b, move=False)              # the next good version is picked up
    assert holder.check() is True
    assert get_json(client, "/v1/related?title=News")["model"]["version"] == version_of(tiny_model_b)


def test_sighup_triggers_a_reload(app, root, tiny_model_b):
    holder = state(app).holder            # poll_seconds=0: the watcher only wakes on request
    previous = signal.getsignal(signal.SIGHUP)
    install_sighup(holder)
    try:
        b = publish(root, tiny_model_b, move=False)
        holds_for(lambda: holder.get().version != b, 0.3, what="no reload before the signal")
        os.kill(os.getpid(), signal.SIGHUP)
        wait_until(lambda: holder.get().version == b, what="the reload after SIGHUP")
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_start_falls_back_when_current_is_broken(tmp_path, tiny_model_dir):
    root = tmp_path / "root"
    a = make_root(root, tiny_model_dir)
    name = publish_corrupt(root, tiny_model_dir, "truncated_index")
    app = create_app(ServiceConfig(models=root, poll_seconds=0))
    c = app.test_client()
    assert get_json(c, "/readyz")["model"]["version"] == a
    assert get_json(c, "/v1/model")["reload"]["refused"]["name"] == name
    state(app).holder.stop()


def test_broken_single_directory_is_not_ready(tmp_path, tiny_model_dir):
    import shutil
    shutil.copytree(tiny_model_dir, tmp_path / "m")
    CORRUPTIONS["missing_file"](tmp_path / "m")
    c = create_app(ServiceConfig(models=tmp_path / "m")).test_client()
    assert "missing file tokenizer.json" in get_json(c, "/readyz", 503)["reason"]


def test_single_model_directory_has_no_reload(tiny_model_dir):
    def watchers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "epgembed-model-watcher"}
    before = watchers()
    app = create_app(ServiceConfig(models=tiny_model_dir, poll_seconds=0.05))
    holder = state(app).holder
    assert holder.mode == "model_dir" and watchers() <= before          # no watcher thread started
    assert holder.status()["poll_seconds"] is None and holder.check(force=True) is False
    assert get_json(app.test_client(), "/v1/model")["version"] == version_of(tiny_model_dir)


def test_every_metric_label_is_the_routes_openapi_path(app, client):
    """One label style for every route: the path as /openapi.json writes it ({id}, not
    <id>); "/" and the explorer's files are the page, not the API."""
    for rule in (r for r in app.url_map.iter_rules() if r.endpoint != "static"):   # Flask's own
        url = rule.rule.replace("<id>", "0").replace("<path:filename>", "explorer.js")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            client.open(url + ("?neighbor=1" if "explain" in url else ""), method=method, json={})
    client.get("/nowhere")
    text = client.get("/metrics").get_data(as_text=True)
    labels = set(re.findall(r'endpoint="([^"]*)"', text))
    paths = set(client.get("/openapi.json").get_json()["paths"])
    assert labels == paths | {"/", "/explorer/{filename}", "unmatched"}
    assert "/v1/titles/{id}/related" in labels and "/v1/titles/{id}/explain" in labels
    assert not any("<" in x or ">" in x for x in labels)
