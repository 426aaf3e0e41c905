"""Schemathesis with every check against a live gunicorn: `st run URL/openapi.json --checks all`
(positive_data_acceptance too) on service/gunicorn.conf.py serving the tiny model, every
phase (examples, coverage, fuzzing, stateful), a fixed seed. Every request the document
calls valid must be answered, every invalid one refused with a 4xx, every answer conform,
but for the known refusals below: what no JSON Schema can say, each named in its operation's
description (or, for sizes in bytes, in the document's info) and recognised here from the
request as it was sent, never from the answer's message. Anything else fails the test with
schemathesis' own report of it.

    make test-slow        (about a minute: gunicorn, then schemathesis' phases)

The in-process run (tests/test_service_schema_fuzz.py, `make test`) checks all but
positive_data_acceptance, which needs this list.
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from epgembed.query.requests import Options
from epgembed.text.features import parse_time
from epgembed.text.normalize import title_forms
from service import Limits
from service_util import make_root
from test_service_gunicorn import start

pytestmark = pytest.mark.slow

LIMITS = Limits()          # the server's: gunicorn below runs with the default settings
SEED = 20261207


@dataclass(frozen=True)
class Sent:
    """One request as schemathesis sent it, and the status it got."""
    method: str             # "GET"
    path: str               # "/v1/titles/3/related"
    params: dict[str, str]  # the query string (first values)
    body: Any               # the JSON body, or None
    body_bytes: int
    query_bytes: int
    status: int

    def value(self, name: str) -> Any:
        return (self.body or {}).get(name) if self.body is not None else self.params.get(name)

    def rows(self) -> int:
        k, offset = self.value("k"), self.value("offset")
        return (Options().k if k is None else int(k)) + (Options().offset if offset is None else int(offset))

    def queries(self) -> int:
        body = self.body if isinstance(self.body, dict) else {}
        return len(body.get("titles") or body.get("programmes") or [])

    def starts(self) -> list[str]:
        body = self.body if isinstance(self.body, dict) else {}
        programmes = body.get("programmes") if isinstance(body.get("programmes"), list) else []
        found = [self.value("start")] + [p.get("start") for p in programmes if isinstance(p, dict)]
        return [s for s in found if isinstance(s, str)]


def _empty_key(text: Any) -> bool:
    return isinstance(text, str) and not any(c.isalnum() for c in title_forms(text).key)


@dataclass(frozen=True)
class Known:
    phrase: str                       # how the document names it
    where: str                        # "operation" (its description) or "info"
    status: int
    applies: Callable[[Sent], bool]


KNOWN = (
    Known(f"k + offset over max_answer_rows ({LIMITS.max_answer_rows})", "operation", 400,
          lambda s: s.rows() > LIMITS.max_answer_rows),
    Known(f"titles x (k + offset) over max_batch_rows ({LIMITS.max_batch_rows})", "operation", 400,
          lambda s: s.queries() * s.rows() > LIMITS.max_batch_rows),
    Known("a title with no letter or digit left once normalized", "operation", 400,
          lambda s: _empty_key(s.value("title")) or _empty_key(s.value("neighbor_title"))),
    Known("a start time on a day its month lacks", "operation", 400,
          lambda s: any(parse_time(x) is None for x in s.starts())),
    Known(f"body <= {LIMITS.max_body_bytes} (413 above)", "info", 413,
          lambda s: s.body_bytes > LIMITS.max_body_bytes),
    Known(f"query string <= {LIMITS.max_query_bytes} (414 above)", "info", 414,
          lambda s: s.query_bytes > LIMITS.max_query_bytes),
)


def _sent(interaction: dict) -> Sent:
    request = interaction["request"]
    uri = urlsplit(request["uri"])
    raw = base64.b64decode(request["body"]["$base64"]) if request.get("body") else b""
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    return Sent(request["method"], uri.path, {k: v[0] for k, v in parse_qs(uri.query, keep_blank_values=True).items()},
                body, len(raw), len(uri.query.encode()), interaction["response"]["status_code"])


def operation(spec: dict, sent: Sent) -> dict:
    """The document's operation a request was sent to (stateful runs label none)."""
    for template, ops in spec["paths"].items():
        if re.fullmatch(re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)), sent.path):
            return ops.get(sent.method.lower(), {})
    return {}


def scenarios(report: Path) -> list[dict]:
    """The recorders of schemathesis' event stream: one per operation and phase, and the stateful runs."""
    events = (json.loads(line) for line in report.read_text().splitlines())
    return [e["ScenarioFinished"]["recorder"] for e in events if "ScenarioFinished" in e]


def failures(report: Path) -> list[tuple[str, Sent]]:
    """(check, request) of every failed check in schemathesis' event stream."""
    out = []
    for recorder in scenarios(report):
        for case, checks in recorder.get("checks", {}).items():
            for check in checks:
                if check["status"] == "failure" and case in recorder["interactions"]:
                    out.append((check["name"], _sent(recorder["interactions"][case])))
    return out


def known(check: str, sent: Sent, spec: dict) -> Known | None:
    """The known refusal that explains a failed check, or None."""
    if check != "positive_data_acceptance":
        return None
    description = operation(spec, sent).get("description", "")
    for k in KNOWN:
        named = k.phrase in (description if k.where == "operation" else spec["info"]["description"])
        if sent.status == k.status and k.applies(sent) and named:
            return k
    return None


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("live-schema")
    make_root(tmp / "root", tiny_model_dir)
    s = start(tmp, tmp / "root", poll="0")
    yield s
    s.stop()


def test_every_refusal_the_document_names_is_known_here(server):
    """The other direction: what an operation says it refuses is on this list."""
    spec = requests.get(server.url + "/openapi.json", timeout=5).json()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            text = op.get("description", "")
            if "Refused although the schema allows it" not in text:
                continue
            named = text.split("(no JSON Schema says so): ", 1)[1].rstrip(".").split("; ")
            for refusal in named:
                assert any(k.phrase in refusal for k in KNOWN if k.where == "operation"), (method, path, refusal)


def test_schemathesis_finds_nothing_but_the_known_refusals(server, tmp_path):
    report = tmp_path / "events.ndjson"
    st = Path(sys.executable).with_name("st")
    run = subprocess.run([str(st), "run", server.url + "/openapi.json", "--checks", "all", "--workers", "1",
                          "--seed", str(SEED), "--report", "ndjson", "--report-ndjson-path", str(report),
                          "--request-timeout", "10"],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "NO_COLOR": "1"},
                         cwd=tmp_path)       # its cache of failures (.schemathesis/) goes there, not the repo
    assert report.is_file(), run.stdout[-3000:] + run.stderr[-2000:]
    spec = requests.get(server.url + "/openapi.json", timeout=5).json()
    found = failures(report)
    unexplained = [(check, sent) for check, sent in found if known(check, sent, spec) is None]
    assert not unexplained, "\n".join(f"{c}: {s}" for c, s in unexplained[:10]) + "\n" + run.stdout[-6000:]
    if not found:
        assert run.returncode == 0, run.stdout[-3000:]
    operations = {f"{method.upper()} {path}" for path, ops in spec["paths"].items() for method in ops}
    tested = {r["label"] for r in scenarios(report) if r.get("checks")}
    assert tested >= operations - {"GET /openapi.json"}, run.stdout[-3000:]   # every one but the document itself
