"""Request framing and number syntax (issue 14, items 6 and 12), over real gunicorn with the
repo's config where gunicorn decides, else through Flask's test client:

- a malformed chunked body (bad chunk size or extension, data past its size, missing or
  bare-LF line ends, a bad trailer) is a JSON 400, never a 500 with a traceback in the log;
- an HTTP/1.1 request without a Host header is a JSON 400;
- ids and numbers are ASCII digits on every route: what int() / float() also take
  ("１２", "٥", "5_0", " 5") is a 400 everywhere, as the explain route always answered.
"""
from __future__ import annotations

import pytest

from service_util import make_root, serving_app
from test_service_hostile import assert_json_4xx, get_raw, http, http_json_error, request

pytestmark = pytest.mark.system

BODY = b'{"titles": ["Football"]}'          # 0x18 bytes
CHUNKED = b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n"
BAD_CHUNKED = {
    "size zz": b"zz\r\n" + BODY + b"\r\n0\r\n\r\n",
    "size -1": b"-1\r\n" + BODY + b"\r\n0\r\n\r\n",
    "size 0x18": b"0x18\r\n" + BODY + b"\r\n0\r\n\r\n",
    "size with a trailing space": b"18 \r\n" + BODY + b"\r\n0\r\n\r\n",
    "NUL chunk extension": b"18;\x00\r\n" + BODY + b"\r\n0\r\n\r\n",
    "60 kB chunk extension": b"18;" + b"e" * 60_000 + b"\r\n" + BODY + b"\r\n0\r\n\r\n",
    "data longer than its size": b"5\r\n" + BODY + b"\r\n0\r\n\r\n",
    "no CRLF after the data": b"18\r\n" + BODY + b"0\r\n\r\n",
    "LF-only line ends": b"18\n" + BODY + b"\n0\n\n",
    "forbidden trailer field": b"18\r\n" + BODY + b"\r\n0\r\nContent-Length: 5\r\n\r\n",
    "trailer without a colon": b"18\r\n" + BODY + b"\r\n0\r\nX-Trailer 1\r\n\r\n",
    "trailer with bare LF": b"18\r\n" + BODY + b"\r\n0\r\nX-Trailer: 1\n\n",
    "trailer never ended": b"18\r\n" + BODY + b"\r\n0\r\nX-Trailer: 1\r\n",
}


@pytest.fixture(scope="module")
def root(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("framing") / "root"
    make_root(root, tiny_model_dir)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, root):
    from test_service_gunicorn import start
    server = start(tmp_path_factory.mktemp("framing-server"), root)
    server.port = int(server.url.rsplit(":", 1)[1])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(root):
    with serving_app(root) as app:
        yield app.test_client()


def test_malformed_chunked_bodies_are_json_400s_without_a_traceback(server):
    for name, body in BAD_CHUNKED.items():
        data = request(b"/v1/related", b"POST", CHUNKED, body)
        err = http_json_error(server.port, data, 400, half_close=True)
        assert err["code"] == "bad_request", (name, err)
    got, _, answer = http(server.port, request(b"/v1/related", b"POST", CHUNKED,
                                               b"18\r\n" + BODY + b"\r\n0\r\nX-Trailer: 1\r\n\r\n"))
    assert got == 200 and b'"results"' in answer           # a well-formed trailer is fine
    assert server.get("/readyz").status_code == 200
    log = server.stderr.read_text()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]


def test_http11_without_a_host_header_is_a_json_400(server):
    for head in (b"GET /v1/related?title=Football HTTP/1.1\r\nConnection: close\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
                 b"GET /v1/related?title=Football HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n"):
        assert "Host header" in http_json_error(server.port, head, 400)["message"]
    got, _, _ = http(server.port, b"GET /healthz HTTP/1.0\r\n\r\n")      # HTTP/1.0 needs no Host
    assert got == 200
    got, _, _ = http(server.port, request(b"/healthz"))
    assert got == 200


def test_non_ascii_digits_in_a_path_over_http(server):
    http_json_error(server.port, request(b"/v1/titles/%EF%BC%91%EF%BC%92/related"), 400)
    got, _, _ = http(server.port, request(b"/v1/titles/12/related"))
    assert got == 200


ARABIC_FIVE, FULLWIDTH_TWELVE = "%D9%A5", "%EF%BC%91%EF%BC%92"
NOT_ASCII_NUMBERS = [   # (path, query): int() or float() would take every one of these values
    (f"/v1/titles/{FULLWIDTH_TWELVE}/related", ""), (f"/v1/titles/{ARABIC_FIVE}/related", ""),
    (f"/v1/titles/{FULLWIDTH_TWELVE}/explain", "neighbor=1"),
    ("/v1/titles/1/explain", f"neighbor={FULLWIDTH_TWELVE}"),
    ("/v1/titles/1/explain", f"neighbor=2&rare_max_count={ARABIC_FIVE}"),
    ("/v1/titles/1/explain", "neighbor=2&collapse_share=0_5"),
    ("/v1/explain", f"title=a&neighbor={ARABIC_FIVE}"),
    ("/v1/related", "title=a&k=5_0"), ("/v1/related", f"title=a&k={ARABIC_FIVE}"),
    ("/v1/related", "title=a&k=%205"), ("/v1/related", "title=a&k=+5"), ("/v1/related", "title=a&k=5%0A"),
    ("/v1/related", "title=a&offset=%EF%BC%91"), ("/v1/related", "title=a&min_score=%D9%A0.%D9%A5"),
    ("/v1/related", "title=a&min_score=0_5"), ("/v1/related", "title=a&min_score=%200.5"),
    ("/v1/titles/1/related", "k=%EF%BC%95"), ("/v1/titles", f"q=a&limit={ARABIC_FIVE}"),
]


@pytest.mark.parametrize("path,query", NOT_ASCII_NUMBERS)
def test_ids_and_numbers_are_ascii_digits_on_every_route(client, path, query):
    err = assert_json_4xx(get_raw(client, path, query.encode()), 400)
    assert "must be" in err["message"], err


def test_every_route_reads_a_path_id_alike(client):
    for raw, message in (("%EF%BC%91%EF%BC%92", "id must be a non-negative integer"),
                         ("abc", "id must be a non-negative integer"), ("-1", "id must be a non-negative integer"),
                         ("9" * 5000, "id must be at most 2147483647")):
        related = assert_json_4xx(client.get(f"/v1/titles/{raw}/related"), 400)["message"]
        explain = assert_json_4xx(client.get(f"/v1/titles/{raw}/explain?neighbor=1"), 400)["message"]
        assert related == explain and related.startswith(message), (raw[:20], related, explain)


@pytest.mark.parametrize("url", ["/v1/titles/0012/related?k=05", "/v1/related?title=a&min_score=-.5&k=3",
                                 "/v1/related?title=a&min_score=1e-1", "/v1/related?title=a&min_score=0.",
                                 "/v1/titles/3/explain?neighbor=007&collapse_share=0.25",
                                 "/v1/titles?q=foot&limit=2"])
def test_ascii_numbers_still_work(client, url):
    assert client.get(url).status_code == 200, client.get(url).get_json()
