"""The service's contracts apart from any model: /openapi.json derived from the registered
routes and their request types, and the one settings loader of wsgi.py and gunicorn.conf.py
(`epgembed serve`'s options included)."""
from __future__ import annotations

import pytest

from epgembed.text.normalize import MAX_TITLE_CHARS
from service import Limits, ServiceConfig, create_app
from service.openapi import build_spec, route_label
from service.settings import load

pytestmark = pytest.mark.integration


@pytest.fixture
def app(tmp_path):
    """The app on an empty models root, not started: the document needs no model."""
    return create_app(ServiceConfig(models=tmp_path, poll_seconds=0), start=False)


def test_every_registered_route_is_in_the_document(app, tmp_path):
    """Derived, not listed: every method of every route the app registers is an operation of
    /openapi.json, but the explorer page and its files; a route without an operation cannot
    be built into a document at all."""
    spec = app.test_client().get("/openapi.json").get_json()
    left_out = set()
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if rule.endpoint.rsplit(".", 1)[-1] == "static" or getattr(view, "page", False):
            left_out.add(rule.rule)
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec["paths"][route_label(rule.rule)], (method, rule.rule)
    # the page (HTML, JS, CSS) and Flask's own static folder: not the API
    assert left_out == {"/", "/explorer/<path:filename>", "/static/<path:filename>"}
    undocumented = create_app(ServiceConfig(models=tmp_path, poll_seconds=0), start=False)
    undocumented.add_url_rule("/v1/extra", "extra", lambda: "x")
    with pytest.raises(RuntimeError, match="/v1/extra"):
        build_spec(undocumented, Limits())


def test_openapi_states_the_enforced_limits(app, tmp_path):
    spec = app.test_client().get("/openapi.json").get_json()
    params = {p["name"]: p["schema"] for p in spec["paths"]["/v1/related"]["get"]["parameters"]}
    assert set(params) == {"title", "k", "min_score", "category", "offset", "include_self", "same_series",
                           "expand", "channel", "start", "minutes"}
    assert params["k"]["maximum"] == Limits().max_k and params["title"]["maxLength"] == MAX_TITLE_CHARS
    body = spec["paths"]["/v1/related"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["titles"]["maxItems"] == 64 == body["properties"]["programmes"]["maxItems"]
    assert body["properties"]["programmes"]["items"] == {"$ref": "#/components/schemas/ProgrammeQuery"}
    for code in ("413", "415"):
        assert code in spec["paths"]["/v1/related"]["post"]["responses"]
    small = create_app(ServiceConfig(models=tmp_path, poll_seconds=0, limits=Limits(max_k=5)), start=False)
    small_spec = small.test_client().get("/openapi.json").get_json()
    k = next(p for p in small_spec["paths"]["/v1/related"]["get"]["parameters"] if p["name"] == "k")
    assert k["schema"]["maximum"] == 5
    assert small.test_client().get("/v1/related?title=a&k=6").status_code == 400


def test_config_is_built_from_the_environment_only_in_the_entry_layer(tmp_path):
    with pytest.raises(RuntimeError, match="EPGEMBED_MODELS"):
        load({})
    with pytest.raises(RuntimeError, match="no such directory"):
        load({"EPGEMBED_MODELS": str(tmp_path / "nope")})
    with pytest.raises(RuntimeError, match="EPGEMBED_WORKERS='two'"):
        load({"EPGEMBED_MODELS": str(tmp_path), "EPGEMBED_WORKERS": "two"})
    c = load({"EPGEMBED_MODELS": str(tmp_path), "EPGEMBED_MAX_K": "7", "EPGEMBED_POLL_SECONDS": "0.5"}).service
    assert c.limits.max_k == 7 and c.poll_seconds == 0.5 and c.metrics_dir is None and c.models == tmp_path
    with pytest.raises(RuntimeError, match="PROMETHEUS_MULTIPROC_DIR"):   # multiprocess needs the env first
        create_app(ServiceConfig(models=tmp_path, metrics_dir=tmp_path), start=False)


def test_serve_options_reach_the_one_loader(tmp_path):
    """`epgembed serve` passes what it was given as the variables service/settings.py reads;
    the defaults are the dataclasses' (the poll interval's once), and a process reads once."""
    from epgembed.cli.main import build_parser
    from epgembed.cli.serve import serve_env
    from service.settings import ServerConfig
    argv = ["serve", "--models", str(tmp_path), "--port", "8123", "--poll-seconds", "0.5", "--workers", "3"]
    env = serve_env(build_parser().parse_args(argv), {})
    settings = load(env)
    assert settings.server.bind == "127.0.0.1:8123" and settings.server.workers == 3
    assert settings.service.poll_seconds == 0.5 and settings.service.models == tmp_path.resolve()
    assert settings.server.threads == ServerConfig().threads and load(dict(env)) is settings
    plain = load(serve_env(build_parser().parse_args(["serve", "--models", str(tmp_path)]), {}))
    assert plain.service.poll_seconds == ServiceConfig(models=tmp_path).poll_seconds
    assert "EPGEMBED_POLL_SECONDS" not in serve_env(build_parser().parse_args(["serve", "--models", str(tmp_path)]), {})
