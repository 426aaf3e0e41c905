"""Hostile requests: each must get a 4xx JSON error (never a 5xx, never HTML), through Flask's
test client and, where the WSGI server decides (request line and header limits, chunked
bodies), through real gunicorn with the repo's config. Plus the security properties of
the service: default bind, no debug pages, security headers, a per-request time budget,
no request body in the logs, and no filesystem path taken from a request.
(The ordinary error cases are in test_service.py; generated ones in test_service_schema_fuzz.py.)
"""
from __future__ import annotations

import json
import logging
import mimetypes
import runpy
import socket
import sys
import time
from pathlib import Path

import pytest

from service import Limits, ServiceConfig, create_app
from service.state import state
from service_util import make_root, serving_app

pytestmark = pytest.mark.system

REPO = Path(__file__).resolve().parents[1]
STATIC = REPO / "service" / "static"
MARKER = "Zq7xMARKERx7qZ"


@pytest.fixture(scope="module")
def root(tmp_path_factory, tiny_model_dir) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "root"
    make_root(root, tiny_model_dir)
    return root


@pytest.fixture(scope="module")
def client(root):
    with serving_app(root) as app:
        yield app.test_client()      # no cookies or sessions: one client serves the module


@pytest.fixture
def app(client):
    return client.application


def get_raw(client, path: str, query: bytes):
    """GET with exactly these query-string bytes (the test client would re-quote a str)."""
    return client.get(path, environ_overrides={"QUERY_STRING": query.decode("latin-1")})


def assert_json_4xx(r, status: int | None = None) -> dict:
    body = r.get_data()
    assert 400 <= r.status_code < 500, (r.status_code, body[:300])
    assert status is None or r.status_code == status, (r.status_code, body[:300])
    assert r.mimetype == "application/json" and b"<html" not in body.lower()
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    err = json.loads(body)["error"]
    assert err["status"] == r.status_code and err["code"] and err["message"]
    return err


# ---------------------------------------------------------------------- query strings
BAD_QUERIES = [
    # huge query strings (over Limits.max_query_bytes = gunicorn's request line limit)
    (b"title=" + b"a" * 20_000, 414),
    (b"&".join(b"p%d=1" % i for i in range(5000)), 414),
    (b"title=a&" + b"&".join(b"x%d=1" % i for i in range(500)), 400),        # many unknown parameters
    # invalid percent-encoding
    (b"title=abc%zz", 400), (b"title=abc%", 400), (b"title=abc%4", 400), (b"title=%%41", 400),
    # percent-encoded bytes that are not UTF-8: lone continuation, truncated, overlong, surrogate, 0xff
    (b"title=%ff%fe", 400), (b"title=%80", 400), (b"title=%c3", 400), (b"title=%c0%af", 400),
    (b"title=%ed%a0%80", 400), (b"title=%f8%88%80%80%80", 400),
    # raw bytes that are not UTF-8
    (b"title=a\xff", 400), (b"title=\xc3\x28", 400),
    # k: negative, zero, huge, a float, a list, empty, not a number
    (b"title=a&k=-1", 400), (b"title=a&k=0", 400), (b"title=a&k=101", 400),
    (b"title=a&k=" + b"9" * 5000, 400), (b"title=a&k=1e3", 400), (b"title=a&k=1.5", 400),
    (b"title=a&k=1.0", 400), (b"title=a&k=1&k=2", 400), (b"title=a&k[]=1", 400), (b"title=a&k=[1,2]", 400),
    (b"title=a&k=", 400), (b"title=a&k=inf", 400), (b"title=a&k=NaN", 400), (b"title=a&k=0x10", 400),
    (b"title=a&offset=-5", 400), (b"title=a&offset=99999999999999999999", 400),
    (b"title=a&min_score=-1e308", 400), (b"title=a&min_score=1e999", 400),
    # NUL and control characters only, an over-long title
    (b"title=%00", 400), (b"title=%00%01%02", 400), (b"title=" + b"%C3%A9" * 501, 400),
]


@pytest.mark.parametrize("query,status", BAD_QUERIES, ids=[f"{s}-{i}" for i, (q, s) in enumerate(BAD_QUERIES)])
def test_bad_query_strings_are_json_4xx(client, query, status):
    for path in ("/v1/related", "/v1/titles/1/related", "/v1/explain"):
        q = query if path == "/v1/related" else query.replace(b"title=", b"title=a&neighbor=2&x=", 1) \
            if path == "/v1/explain" else query.replace(b"title=", b"x=", 1)
        assert_json_4xx(get_raw(client, path, q), status if path == "/v1/related" else None)


def test_bad_query_strings_on_routes_without_parameters(client):
    for path in ("/healthz", "/v1/model", "/openapi.json", "/nowhere"):
        assert_json_4xx(get_raw(client, path, b"a=%ff"), 400)
        assert_json_4xx(get_raw(client, path, b"a=" + b"b" * 9000), 414)


def test_valid_utf8_and_plus_still_work(client):
    r = get_raw(client, "/v1/related", b"title=Caf%C3%A9+Football+%E2%9A%BD&k=2")
    assert r.status_code == 200 and r.get_json()["query"]["title"] == "Café Football ⚽"
    assert get_raw(client, "/v1/related", "title=Café Football".encode()).status_code == 200   # raw UTF-8


# ---------------------------------------------------------------------- bodies
def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


JSON_BOMBS = [
    nested(30_000),                                            # 60 kB of brackets (RecursionError)
    '{"titles": ' + nested(20_000) + "}",
    '{"titles": ["a"], "k": ' + nested(10_000, '{"a":', "}") + "}",
    nested(10_000, '{"a":', "}").replace("}", "1}", 1),
    '{"titles": [' + ",".join(['"a"'] * 15_000) + "]}",        # 15,000 titles
    '{"titles": ["a"], ' + ",".join(f'"k{i}": 1' for i in range(5000)) + "}",   # 5,000 keys
    '{"titles": ["' + "x" * 60_000 + '"]}',                    # one 60 kB title
    '{"titles": ["a"], "k": ' + "9" * 20_000 + "}",            # 20,000-digit number
    '{"titles": ["a"], "k": 1e999}', '{"titles": ["a"], "min_score": NaN}',
    '{"titles": ["a"], "k": -1}', '{"titles": ["a"], "k": 1.5}', '{"titles": ["a"], "k": [5]}',
    '{"titles": ["a"], "k": "5"}', '{"titles": ["a"], "k": {"$gt": 1}}', '{"titles": [["a"]]}',
    '{"titles": [null]}', '{"titles": ["\\ud800"]}', '{"titles": ["a"], "\\udfff": 1}',
    '{"titles": ["a"], "category": "\\ud800x"}', '{"titles": ["a"], "category": ""}',  
    '{"titles": ["a"]} trailing', "", " ", "null", "[]", '"titles"', "\ufeff{",
]


@pytest.mark.parametrize("body", JSON_BOMBS, ids=[f"bomb-{i}" for i in range(len(JSON_BOMBS))])
def test_json_bombs_and_bad_bodies_are_json_4xx(client, body):
    data = body.encode("utf-8", "surrogatepass")
    assert len(data) <= Limits().max_body_bytes, len(data)
    assert_json_4xx(client.post("/v1/related", data=data, content_type="application/json"), 400)


@pytest.mark.parametrize("headers,data,status", [
    ({"Content-Type": "text/plain"}, b'{"titles": ["a"]}', 415),
    ({"Content-Type": "application/x-www-form-urlencoded"}, b"titles=a", 415),
    ({"Content-Type": "multipart/form-data; boundary=x"}, b'--x\r\n\r\n{"titles": ["a"]}\r\n--x--', 415),
    ({"Content-Type": "application/xml"}, b"<titles/>", 415),
    ({"Content-Type": "application/jsonx"}, b'{"titles": ["a"]}', 415),
    ({}, b'{"titles": ["a"]}', 415),
    ({"Content-Type": "application/json"}, b'{"titles": ["a\xff"]}', 400),          # invalid UTF-8
    ({"Content-Type": "application/json; charset=latin-1"}, b'{"titles": ["caf\xe9"]}', 400),
    ({"Content-Type": "application/json"}, b"\x00\x00\x00{", 400),
    ({"Content-Type": "application/json"}, b"x" * (Limits().max_body_bytes + 1000), 413),
], ids=lambda v: str(v)[:30] if not isinstance(v, bytes) else None)
def test_wrong_content_types_and_sizes(client, headers, data, status):
    assert_json_4xx(client.post("/v1/related", data=data, headers=headers), status)


def test_a_good_batch_still_works(client):
    r = client.post("/v1/related", json={"titles": ["Football Weekly", "Café ⚽"], "k": 2, "min_score": None})
    assert r.status_code == 200 and len(r.get_json()["results"]) == 2


# ---------------------------------------------------------------------- paths taken from requests
TRAVERSALS = [
    "/v1/titles/../../../../etc/passwd/related", "/v1/titles/..%2F..%2Fetc%2Fpasswd/related",
    "/v1/titles/%2e%2e%2f%2e%2e%2fetc%2fpasswd/explain?neighbor=1",
    f"/v1/titles/..%2f..%2f{MARKER}/explain?neighbor=1", "/v1/titles/1%00/related",
    f"/v1/titles/{MARKER}/related", "/v1/titles/1/explain?neighbor=..%2F..%2Fetc%2Fpasswd",
    "/explorer/../app.py", "/explorer/..%2fapp.py", "/explorer/%2e%2e/app.py", "/explorer/..%5capp.py",
    "/explorer//etc/passwd", "/explorer/%2Fetc%2Fpasswd", f"/explorer/../../{MARKER}",
    f"/explorer/{MARKER}", "/explorer/explorer.js%00.html", "/explorer/", "/explorer/.",
    "/static/../service/app.py", "/..%2f..%2fetc%2fpasswd", "/v1/../../etc/passwd",
]


@pytest.fixture
def opened():
    """Paths opened (builtins.open, os.open, ...) while the test runs, through an audit hook."""
    paths: list[str] = []
    active = [True]

    def hook(event, args):
        if active[0] and event == "open" and args and isinstance(args[0], (str, bytes, Path)):
            paths.append(str(args[0]))
    sys.addaudithook(hook)            # cannot be removed: switched off instead
    yield paths
    active[0] = False


@pytest.mark.parametrize("url", TRAVERSALS)
def test_path_traversal_in_ids_and_static_files(client, opened, url):
    r = client.get(url, follow_redirects=True)      # "//" is first redirected to "/" (308)
    assert r.status_code in (400, 404), (url, r.status_code)
    assert_json_4xx(r)
    assert opened == [], opened                     # nothing is opened for these


def test_titles_that_look_like_paths_are_only_text(client, opened):
    for title in (f"../../../../tmp/{MARKER}", f"/etc/{MARKER}", f"file:///{MARKER}", f"..\\..\\{MARKER}"):
        assert client.get("/v1/related", query_string={"title": title, "k": 2}).status_code == 200
        assert client.post("/v1/related", json={"titles": [title], "category": title}).status_code == 200
        assert client.get("/v1/explain", query_string={"title": title, "neighbor_title": title}).status_code == 200
        assert client.get("/v1/titles", query_string={"q": title}).status_code == 200
    assert opened == []
    assert client.get("/explorer/explorer.js").status_code == 200       # the one file a request names
    assert [Path(p).resolve().parent for p in opened if p not in mimetypes.knownfiles] == [STATIC]


# ---------------------------------------------------------------------- security headers, debug
def test_explorer_page_security_headers(client):
    r = client.get("/")
    assert r.status_code == 200 and r.mimetype == "text/html"
    csp = dict(part.strip().split(" ", 1) for part in r.headers["Content-Security-Policy"].split(";"))
    assert csp["default-src"] in ("'none'", "'self'") and csp["frame-ancestors"] == "'none'"
    for directive, sources in csp.items():      # no external source, no inline code, no eval
        assert set(sources.split()) <= {"'self'", "'none'"}, (directive, sources)
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    for path in ("/explorer/explorer.js", "/explorer/explorer.css", "/healthz", "/v1/related?title=a",
                 "/metrics", "/openapi.json", "/nowhere"):
        assert client.get(path).headers["X-Content-Type-Options"] == "nosniff", path


def test_no_debug_pages(app, client, monkeypatch):
    assert app.debug is False and not app.config["PROPAGATE_EXCEPTIONS"]
    for path in ("/console", "/__debug__", "/v1/related?__debugger__=yes&cmd=resource&f=debugger.js"):
        assert client.get(path).status_code in (400, 404)
    page = client.get("/?__debugger__=yes&cmd=resource&f=debugger.js")      # "/" is the explorer page
    assert b"explorer/explorer.js" in page.get_data() and b"debugger" not in page.get_data()
    monkeypatch.setattr(state(app).holder.get().model, "related",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError(f"secret {MARKER}")))
    r = client.get("/v1/related?title=News")
    assert r.status_code == 500 and r.mimetype == "application/json"
    assert MARKER not in r.get_data(as_text=True) and "Traceback" not in r.get_data(as_text=True)


def test_binds_to_loopback_unless_configured(tmp_path, monkeypatch):
    for name in ("EPGEMBED_BIND", "EPGEMBED_LOG_LEVEL", "EPGEMBED_ACCESS_LOG", "EPGEMBED_FORWARDED_ALLOW_IPS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("EPGEMBED_MODELS", str(tmp_path))       # the master reads every setting, and checks it
    conf = runpy.run_path(str(REPO / "service" / "gunicorn.conf.py"))
    assert conf["bind"] == ["127.0.0.1:8000"] and conf.get("reload", False) is False
    assert conf["forwarded_allow_ips"] == "127.0.0.1"          # trusts only a proxy on this host
    monkeypatch.setenv("EPGEMBED_FORWARDED_ALLOW_IPS", "10.0.0.5")   # nginx on another host
    assert runpy.run_path(str(REPO / "service" / "gunicorn.conf.py"))["forwarded_allow_ips"] == "10.0.0.5"
    assert conf["timeout"] == 30 and conf["limit_request_line"] == Limits().max_query_bytes
    from epgembed.cli.main import build_parser
    args = build_parser().parse_args(["serve", "--models", str(tmp_path)])
    from epgembed.cli.serve import serve_env
    assert serve_env(args, {})["EPGEMBED_BIND"] == "127.0.0.1:8000"


# ---------------------------------------------------------------------- time budget, logs
def test_a_batch_past_its_time_budget_is_a_json_504(root, monkeypatch):
    from service.settings import load
    config = load({"EPGEMBED_MODELS": str(root), "EPGEMBED_REQUEST_SECONDS": "0.2"}).service
    assert config.limits.request_seconds == 0.2 and Limits().request_seconds < 30     # < gunicorn's timeout
    app = create_app(ServiceConfig(models=root, poll_seconds=0, limits=config.limits))
    try:
        model = state(app).holder.get().model
        slow = model.related

        def related(*a, **k):
            time.sleep(0.05)
            return slow(*a, **k)
        monkeypatch.setattr(model, "related", related)
        client = app.test_client()
        t0 = time.perf_counter()
        r = client.post("/v1/related", json={"titles": ["Football Weekly"] * 64})
        assert time.perf_counter() - t0 < 1.0               # stopped near the budget, not after 3.2 s
        assert r.status_code == 504 and r.get_json()["error"]["code"] == "deadline_exceeded"
        assert "queries answered" in r.get_json()["error"]["message"]
        assert client.post("/v1/related", json={"titles": ["Football Weekly"] * 2}).status_code == 200
    finally:
        state(app).holder.stop()


def test_logs_never_hold_request_bodies(app, client, caplog, monkeypatch):
    with caplog.at_level(logging.DEBUG):
        client.post("/v1/related", json={"titles": [f"{MARKER} one", f"two {MARKER}"], "k": 2})
        client.post("/v1/related", json={"titles": [f"{MARKER}"], "bogus": MARKER})          # 400
        client.post("/v1/related", data=f'{{"titles": ["{MARKER}"', content_type="application/json")
        client.post("/v1/related", data=MARKER * (Limits().max_body_bytes // len(MARKER) + 1),
                    content_type="application/json")                                       # 413
        monkeypatch.setattr(state(app).holder.get().model, "related", lambda *a, **k: 1 / 0)
        client.post("/v1/related", json={"titles": [MARKER]})                               # 500, logged
        client.get("/v1/related", query_string={"title": "x" * 400 + MARKER})             # long query
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "unhandled error on POST /v1/related" in text        # the 500 was logged ...
    assert MARKER not in text                                    # ... without the body; the query cut
    assert sum(r.name == "epgembed.access" for r in caplog.records) == 6


# ---------------------------------------------------------------------- over real HTTP (gunicorn)
def http(port: int, data: bytes, timeout: float = 10, half_close: bool = False) -> tuple[int, dict, bytes]:
    """Send `data` on a new connection (then shut its writing side, with `half_close`: for a
    body the server would otherwise wait to see the end of) and read the answer to the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):      # answered and closed before the body was read
            pass
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:] if ":" in x)}
    return int(lines[0].split()[1]), headers, body


def http_json_error(port: int, data: bytes, status: int, half_close: bool = False) -> dict:
    """The error of the answer to `data`, which must be a JSON `status` with the security headers."""
    got, headers, body = http(port, data, half_close=half_close)
    assert got == status, (data[:60], got, body[:200])
    assert headers["content-type"].startswith("application/json"), (data[:60], headers)
    assert b"<html" not in body.lower() and json.loads(body)["error"]["status"] == status
    assert headers["x-content-type-options"] == "nosniff"
    return json.loads(body)["error"]


def request(target: bytes, method: bytes = b"GET", headers: bytes = b"", body: bytes = b"") -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + headers + b"\r\n" + body


def chunk(body: bytes) -> bytes:
    return b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"


def test_hostile_requests_over_gunicorn(tmp_path, root):
    from test_service_gunicorn import start
    server = start(tmp_path, root)
    port = int(server.url.rsplit(":", 1)[1])
    chunked = b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n"
    big_chunk = chunk(b"[" * (Limits().max_body_bytes + 1000))
    cases = [
        (request(b"/v1/related?title=" + b"a" * 20_000), 414),                     # gunicorn's request line limit
        (request(b"/v1/related?title=" + b"a" * 8100), 400),                       # under it: title too long
        (request(b"/v1/related?title=a", headers=b"X-Big: " + b"b" * 10_000 + b"\r\n"), 431),
        (request(b"/v1/related?title=a", headers=b"".join(b"X-%d: 1\r\n" % i for i in range(60))), 431),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n", 400),   # TLS hello
        (b"GET /v1/related?title=a\r\n\r\n", 400),                                # HTTP/0.9-style line
        (request(b"/v1/related?title=a\xff"), 400), (request(b"/v1/related?title=%ff"), 400),
        (request(b"/v1/related?title=a&k=1.5"), 400), (request(b"/../../etc/passwd"), 404),
        (request(b"/v1/related", b"POST", chunked, big_chunk), 413),
        (request(b"/v1/related", b"POST", chunked, chunk(b'{"titles": ["a"]}' + b" " * (Limits().max_body_bytes + 1000))), 413),  # not cut
        (request(b"/v1/related", b"POST", chunked, chunk(b'{"titles": ["a"], "k": 1.5}')), 400),
        (request(b"/v1/related", b"POST", b"Content-Type: application/json\r\nContent-Length: 1000000000000\r\n",
                 b'{"titles": ["a"]}'), 413),
        (request(b"/v1/related", b"POST", b"Content-Type: application/json\r\nContent-Length: 60000\r\n",
                 b"[" * 30_000 + b"]" * 30_000), 400),
        (request(b"/v1/related", b"POST", b"Content-Type: text/plain\r\nContent-Length: 2\r\n", b"{}"), 415),
    ]
    try:
        for data, status in cases:
            http_json_error(port, data, status)
        over = Limits().max_body_bytes + 1000
        keep_alive = b"POST /v1/related HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n" \
                     b"Content-Length: %d\r\n\r\n" % over + b" " * over
        got, headers, _ = http(port, keep_alive)     # gunicorn will not drain the body: it must say so
        assert got == 413 and headers["connection"] == "close"
        got, _, body = http(port, request(b"/v1/related", b"POST", chunked, chunk(b'{"titles": ["Football"]}')))
        assert got == 200 and json.loads(body)["results"][0]["related"]       # chunked bodies work
        got, headers, body = http(port, request(b"/"))
        assert got == 200 and "frame-ancestors 'none'" in headers["content-security-policy"]
        assert server.get("/readyz").status_code == 200                   # still serving
    finally:
        server.stop()
    assert "Traceback" not in server.stderr.read_text()


# ---------------------------------------------------------------------- regressions found here
def test_a_parameter_with_one_bound_is_a_400_not_a_500():
    from epgembed.query.contract import violation
    from epgembed.query.errors import QueryError
    from service.errors import status_of
    for schema, value, message in (({"type": "integer", "minimum": 0}, -1, "n must be at least 0"),
                                   ({"type": "number", "maximum": 1.5}, 2, "n must be at most 1.5")):
        assert violation("n", value, schema) == message and status_of(QueryError(message)) == 400


def test_model_description_is_strict_json(client):
    """A model trained without a validation split has no val_p_at_10: null in its manifest and
    in /v1/model, never a bare NaN, which no strict JSON parser reads."""
    def no_constants(name):
        raise ValueError(f"not JSON: {name}")
    body = json.loads(client.get("/v1/model").get_data(), parse_constant=no_constants)
    assert body["training"]["val_p_at_10"] is None
    folder = client.application.extensions["epgembed"].holder.get().model.path
    for name in ("manifest.json", "history.json"):
        json.loads((folder / name).read_text(encoding="utf-8"), parse_constant=no_constants)
