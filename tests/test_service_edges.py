"""Small holes of issue 26, through Flask's test client:

- 26.9: the work of one request is bounded in answer rows: k + offset per title
  (Limits.max_answer_rows) and titles x (k + offset) per batch (Limits.max_batch_rows);
  past either a 400 naming the bound; both stated in /openapi.json;
- 26.15: a method token a client makes up is counted under one metric label, "other";
- 26.17: a title with no letter or digit gets the same 400 from /v1/related, from a batch
  entry and from /v1/explain (on either side);
- 26.18: /v1//related and other doubled slashes are a JSON 404, never a redirect with a
  Location built from the client's Host; every answer, the explorer page under any of its
  paths included, carries the CSP with frame-ancestors 'none' and X-Frame-Options: DENY.
"""
from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from service.metrics import METHODS
from service.state import state
from service_util import make_root, serving_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("edges") / "root"
    make_root(root, tiny_model_dir)
    with serving_app(root) as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


def error(r, status: int) -> str:
    assert r.status_code == status and r.mimetype == "application/json", r.get_data(as_text=True)
    return r.get_json()["error"]["message"]


# ---------------------------------------------------------------- 26.9 the work of one request
def test_k_plus_offset_is_bounded_in_answer_rows(app, client):
    lim = state(app).config.limits
    k = lim.max_k
    ok = f"k={k}&offset={lim.max_answer_rows - k}"
    over = f"k={k}&offset={lim.max_answer_rows - k + 1}"
    for path in ("/v1/related?title=Football%20Weekly&", "/v1/titles/3/related?"):
        assert client.get(path + ok).status_code == 200
        assert f"at most {lim.max_answer_rows}" in error(client.get(path + over), 400)
    assert "offset must be between 0" in error(client.get(f"/v1/titles/3/related?offset={lim.max_answer_rows}"), 400)


def test_a_batch_is_bounded_in_titles_times_answer_rows(app, client):
    lim = state(app).config.limits
    rows = lim.max_answer_rows
    fits = lim.max_batch_rows // rows
    assert 1 <= fits < lim.max_batch
    body = {"titles": ["Football Weekly"] * fits, "k": lim.max_k, "offset": rows - lim.max_k}
    assert client.post("/v1/related", json=body).status_code == 200
    body["titles"].append("Evening News")
    message = error(client.post("/v1/related", json=body), 400)
    assert f"{fits + 1} titles" in message and f"at most {lim.max_batch_rows}" in message
    full = {"titles": ["Football Weekly"] * lim.max_batch}      # a full batch at the default k
    assert client.post("/v1/related", json=full).status_code == 200


def test_openapi_states_the_work_bounds(app, client):
    lim = state(app).config.limits
    spec = client.get("/openapi.json").get_json()
    info = spec["info"]
    assert info["x-limits"]["max_answer_rows"] == lim.max_answer_rows
    assert info["x-limits"]["max_batch_rows"] == lim.max_batch_rows
    assert f"k + offset <= {lim.max_answer_rows} answer rows" in info["description"]
    assert f"titles x (k + offset) <= {lim.max_batch_rows}" in info["description"]
    params = {p["name"]: p for p in spec["paths"]["/v1/related"]["get"]["parameters"]}
    assert params["offset"]["schema"]["maximum"] == lim.max_answer_rows - 1
    for path, method in (("/v1/related", "get"), ("/v1/titles/{id}/related", "get"), ("/v1/related", "post")):
        assert f"k + offset over max_answer_rows ({lim.max_answer_rows})" in spec["paths"][path][method]["description"]
    assert f"over max_batch_rows ({lim.max_batch_rows})" in spec["paths"]["/v1/related"]["post"]["description"]


# ---------------------------------------------------------------- 26.15 the method label
def test_made_up_methods_share_one_metric_label(client):
    for i in range(40):
        assert client.open("/v1/related?title=News", method=f"X{i}").status_code == 405
    text = client.get("/metrics").get_data(as_text=True)
    labels = set(re.findall(r'^epgembed_http_requests_total\{[^}]*method="([^"]+)"', text, re.M))
    assert "other" in labels and labels <= METHODS | {"other"}, labels


# ---------------------------------------------------------------- 26.17 titles without letters
@pytest.mark.parametrize("title", ["!!!", "???", "\u200b", "-- / --"])
def test_a_title_without_letters_is_refused_alike_everywhere(client, title):
    q = quote(title)
    expected = error(client.get(f"/v1/related?title={q}"), 400)
    assert "no letter or digit" in expected
    for path in (f"/v1/explain?title={q}&neighbor_title=Football%20Weekly",
                 f"/v1/explain?title=Football%20Weekly&neighbor_title={q}",
                 f"/v1/explain?title={q}&neighbor=0"):
        assert error(client.get(path), 400) == expected, path
    batch = client.post("/v1/related", json={"titles": [title, "Football Weekly"]}).get_json()
    assert batch["results"][0]["error"]["message"] == expected and batch["results"][1]["related"]


# ---------------------------------------------------------------- 26.18 redirects and framing
@pytest.mark.parametrize("path", ["/v1//related?title=News", "//v1/related?title=News",
                                  "/v1/titles//related", "/v1//titles/0/related", "/v1/titles/0//related"])
def test_doubled_slashes_are_a_json_404_not_a_redirect(client, path):
    r = client.get(path, headers={"Host": "attacker.example"})
    assert "no route" in error(r, 404) and "Location" not in r.headers


@pytest.mark.parametrize("path", ["/", "/explorer/explorer.html", "/explorer/explorer.js", "/healthz",
                                  "/v1/related?title=News", "/nowhere"])
def test_every_answer_forbids_framing(client, path):
    r = client.get(path)
    csp = r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp and "script-src 'self'" in csp
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"
