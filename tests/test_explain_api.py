"""The explain endpoints and the explorer page, through the service's app factory (Flask test client)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from typing import get_args

from epgembed.query.load import load_model
from epgembed.config import TokenizerConfig
from epgembed.inspect.explain import PARTS, explain_pair, side_of, token_parts
from epgembed.query.shapes import FeatureKind
from epgembed.text.features import KINDS
from epgembed.text.tokenize import Tokenizer
from handmade import PLANTED, RARE, build_handmade_model, make_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_handmade_model(tmp_path_factory.mktemp("handmade-api") / "m")


@pytest.fixture(scope="module")
def client(model_dir):
    return make_app(model_dir).test_client()


@pytest.fixture(scope="module")
def ids(model_dir) -> tuple[int, int]:
    model = load_model(model_dir)
    return model.resolve(PLANTED[0]), model.resolve(PLANTED[1])


def test_explain_by_ids_equals_the_cli(client, model_dir, ids):
    x, y = ids
    r = client.get(f"/v1/titles/{x}/explain?neighbor={y}")
    assert r.status_code == 200 and r.headers["X-Model-Version"]
    body = r.get_json()
    cli = subprocess.run([str(Path(sys.executable).parent / "epgembed"), "inspect", str(model_dir),
                          "--title", PLANTED[0], "-k", "5", "--json"], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    from_cli = next(e for e in json.loads(cli.stdout)["neighbors"] if e["neighbor"]["id"] == y)
    for key in ("score", "collapse", "carried", "flags", "carrier", "tokens", "shared_categories"):
        assert body[key] == from_cli[key], key
    assert body["carrier"]["token"] == f"[{RARE}]" and "rare_token_match" in body["flags"]
    assert body["model"]["version"] == load_model(model_dir).version


def test_explain_text_and_mixed(client, model_dir, ids):
    model = load_model(model_dir)
    r = client.get("/v1/explain", query_string={"title": PLANTED[0], "neighbor_title": PLANTED[1]})
    assert r.status_code == 200
    body = r.get_json()
    assert body["score"] == explain_pair(model, PLANTED[0], PLANTED[1])["score"]
    r = client.get("/v1/explain", query_string={"title": "Zorblax Dragon Night", "neighbor": ids[1]})
    unseen = r.get_json()
    assert r.status_code == 200 and not unseen["title"]["known"] and unseen["neighbor"]["id"] == ids[1]
    assert unseen == {"model": body["model"], **explain_pair(model, "Zorblax Dragon Night", ids[1])}
    def rare_puppy(**extra):
        r = client.get(f"/v1/titles/{ids[0]}/explain", query_string={"neighbor": ids[1], **extra})
        return {t["token"]: t["rare"] for t in r.get_json()["tokens"]["title"]}["[puppy]"]

    assert not rare_puppy() and rare_puppy(rare_max_count=5)         # tuning reaches the math


@pytest.mark.parametrize("url, status", [
    ("/v1/titles/0/explain", 400),                          # neighbor missing
    ("/v1/titles/0/explain?neighbor=abc", 400),
    ("/v1/titles/0/explain?neighbor=-1", 400),
    ("/v1/titles/x/explain?neighbor=1", 400),
    ("/v1/titles/%C2%B2/explain?neighbor=1", 400),          # a unicode digit
    ("/v1/titles/0/explain?neighbor=1&rare_max_count=-2", 400),
    ("/v1/titles/0/explain?neighbor=1&collapse_share=7", 400),
    ("/v1/titles/0/explain?neighbor=1&bogus=1", 400),
    ("/v1/titles/99999/explain?neighbor=1", 404),
    ("/v1/titles/0/explain?neighbor=99999", 404),
    ("/v1/explain?title=Puppy+Club", 400),                  # no neighbour
    ("/v1/explain?title=Puppy+Club&neighbor=1&neighbor_title=x", 400),
    ("/v1/explain?neighbor_title=Puppy+Club", 400),         # no title
    ("/v1/explain?title=%20%20&neighbor_title=Puppy+Club", 400),
    ("/v1/explain?title=qqq+xyzzy&neighbor_title=Puppy+Club", 400),   # no known token
    ("/v1/explain?title=" + "a" * 600 + "&neighbor_title=Puppy+Club", 400),
])
def test_bad_input_is_a_json_4xx(client, url, status):
    r = client.get(url)
    assert r.status_code == status and r.is_json
    err = r.get_json()["error"]
    assert err["status"] == status and err["message"] and err["code"]


def test_explorer_page_is_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and r.mimetype == "text/html"
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "http" not in csp
    html = r.get_data(as_text=True)
    assert 'src="explorer/explorer.js"' in html and "http" not in html.replace("http-equiv", "")
    assert 'src="explorer/explorer-why.js"' in html
    for asset, kind in (("explorer.js", "javascript"), ("explorer-why.js", "javascript"), ("explorer.css", "css")):
        a = client.get(f"/explorer/{asset}")
        assert a.status_code == 200 and kind in a.mimetype
        assert "http:" not in a.get_data(as_text=True) and "https:" not in a.get_data(as_text=True)


def test_openapi_paths_describe_the_endpoints(client):
    spec = client.get("/openapi.json").get_json()
    params = {p["name"]: p for p in spec["paths"]["/v1/explain"]["get"]["parameters"]}
    assert set(params) == {"title", "neighbor_or_neighbor_title", "rare_max_count", "collapse_share"}
    one_of = params["neighbor_or_neighbor_title"]        # exactly one, each a query parameter of its own
    assert one_of["style"] == "form" and one_of["explode"] and one_of["required"]
    assert set(one_of["schema"]["properties"]) == {"neighbor", "neighbor_title"}
    assert [b["required"] for b in one_of["schema"]["oneOf"]] == [["neighbor"], ["neighbor_title"]]
    token = spec["components"]["schemas"]["ExplainToken"]
    assert token["additionalProperties"] is False and set(token["required"]) == set(token["properties"])
    assert {"kind", "word", "feature"} <= set(token["properties"])
    assert "words" in spec["components"]["schemas"]["ExplainSide"]["required"]
    assert spec["components"]["schemas"]["PartShare"]["additionalProperties"] is False


# ---------------------------------------------------------------- tokens -> words, parts
def test_token_parts_by_hand():
    """Whole words, then description words, then guide features, as Tokenizer.item_tokens
    builds a catalog title's bag."""
    tok = Tokenizer(None, ["club", "dragon", "puppy", "tales"], TokenizerConfig(pieces=False, min_word_count=1),
                    context_words=["dragon", "tales"], features=["channel=ch1", "slot=2"])
    bag = tok.item_tokens("Puppy Club", "Dragon tales, puppy!", {"channel=ch1": 1.0, "slot=2": 0.5})
    assert [s for _, s, _ in bag] == ["[puppy]", "[club]", "[dragon]", "[tales]", "<channel=ch1>", "<slot=2>"]
    words, parts = token_parts(tok, "puppy club", [i for i, _, _ in bag])
    assert words == ["puppy", "club"]
    assert parts == [("word", 0, None), ("word", 1, None), ("context", None, None), ("context", None, None),
                     ("feature", None, "channel"), ("feature", None, "slot")]
    assert set(get_args(FeatureKind)) == set(KINDS) and PARTS == ("text", "context", *KINDS)


def test_pieces_belong_to_their_words(tiny_model_dir):
    """A word's pieces decode to the word (with the punctuation after it in its chunk); the
    whole-word tokens point at their words."""
    model = load_model(tiny_model_dir)
    side = side_of(model, "Kitchen: Puppy-Club", set())
    assert side.words == ["kitchen", "puppy", "club"]
    pieces = [(i, p[1]) for i, p in zip(side.ids, side.parts) if p[0] == "piece"]
    spelled = [model.tokenizer.sp.DecodeIds([i - 1 for i, w in pieces if w == k]) for k in range(3)]
    assert spelled == ["kitchen:", "puppy-", "club"]
    assert [(s, p[1]) for s, p in zip(side.surfaces, side.parts) if p[0] == "word"] == \
        [("[kitchen]", 0), ("[puppy]", 1), ("[club]", 2)]


def check_parts(e: dict) -> None:
    """carried_by sums the tokens' shares by part; a side's parts + its center = the score."""
    for side in ("title", "neighbor"):
        toks = e["tokens"][side]
        for p in e["carried_by"]:
            mine = [t for t in toks if (t["feature"] if t["kind"] == "feature" else
                                         "context" if t["kind"] == "context" else "text") == p["part"]]
            assert p[side] == pytest.approx(sum(t["share"] for t in mine), abs=1e-5)
        total = sum(p[side] for p in e["carried_by"]) + e["center_share"][side]
        assert total == pytest.approx(e["score"], abs=1e-4)
    assert [p["part"] for p in e["carried_by"]] == [p for p in PARTS if p in {q["part"] for q in e["carried_by"]}]


def test_handmade_tokens_are_whole_words(client, ids):
    e = client.get(f"/v1/titles/{ids[0]}/explain?neighbor={ids[1]}").get_json()
    assert e["title"]["words"] == [RARE, "puppy"] and e["neighbor"]["words"] == [RARE, "kitchen"]
    assert [(t["token"], t["kind"], t["word"], t["feature"]) for t in e["tokens"]["title"]] == \
        [(f"[{RARE}]", "word", 0, None), ("[puppy]", "word", 1, None)]
    assert [p["part"] for p in e["carried_by"]] == ["text"]          # no description, no features
    check_parts(e)


def test_feature_tokens_and_their_parts(tiny_model_dir):
    client = make_app(tiny_model_dir).test_client()
    found = client.get("/v1/titles?q=baking&limit=2").get_json()["titles"]
    e = client.get(f"/v1/titles/{found[0]['id']}/explain?neighbor={found[1]['id']}").get_json()
    assert e["title"]["words"][0] == "baking"
    for t in e["tokens"]["title"] + e["tokens"]["neighbor"]:
        is_feature = t["token"].startswith("<") and "=" in t["token"]   # "<channel=ch1>"
        assert (t["kind"] == "feature") == is_feature
        if is_feature:
            assert t["feature"] == t["token"][1:].split("=")[0] and t["word"] is None
        else:
            assert t["feature"] is None and t["kind"] in ("piece", "word")
            assert e["title"]["words"] or e["neighbor"]["words"]
    parts = {p["part"] for p in e["carried_by"]}
    assert {"text", "channel", "slot"} <= parts and "context" not in parts     # the dump has no descriptions
    check_parts(e)
