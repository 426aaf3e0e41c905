"""Schemathesis against the service's own /openapi.json, in-process (WSGI, create_app on the
tiny model): every operation, generated valid and invalid inputs (positive + negative
modes; the examples, coverage and fuzzing phases). Every response must be no 5xx, a status
the spec lists for that operation, the media type it declares, and a body matching its
(closed) schema; invalid input must be rejected with a 4xx.

    make test    derandomized, EPGEMBED_SCHEMA_FUZZ_EXAMPLES=25 per operation (~10 s)
    make fuzz    EPGEMBED_SCHEMA_FUZZ_EXAMPLES=1000, random seeds (minutes)

Not checked here: positive_data_acceptance (a valid request must not be refused), which
needs the named list of what no schema can say (k + offset together, a title empty once
normalized, ...): tests/test_service_live_schema.py runs every check against a live gunicorn
with that list. The explicit hostile cases are in test_service_hostile.py.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config._checks import NegativeDataRejectionConfig
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_schema_conformance, status_code_conformance)

from service import ServiceConfig, create_app
from service.state import state
from service_util import make_root

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("EPGEMBED_SCHEMA_FUZZ_EXAMPLES", "25"))   # read here only (make fuzz)
LONG = EXAMPLES > 100
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CASES: Counter = Counter()


@pytest.fixture(scope="module")
def served_app(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("schema-fuzz") / "root"
    make_root(root, tiny_model_dir)
    app = create_app(ServiceConfig(models=root, poll_seconds=0))
    yield app
    state(app).holder.stop()
    ARTIFACTS.mkdir(exist_ok=True)
    summary = {"examples_per_operation": EXAMPLES, "derandomized": not LONG,
               "cases": sum(CASES.values()), "by_operation": dict(sorted(CASES.items()))}
    (ARTIFACTS / "schema-fuzz.json").write_text(json.dumps(summary, indent=1))
    print(f"\nschemathesis: {summary['cases']} cases over {len(CASES)} operations")


# Loaded at import (pytest parametrizes one test per operation at collection): the document of
# an app with the default limits, not started (no model: the document needs none), which
# test_spec_is_what_the_app_serves compares with the one the served app answers.
SPEC = state(create_app(ServiceConfig(models=Path("no-model-needed")), start=False)).spec
schema = schemathesis.openapi.from_dict(SPEC)
schema.config.generation.update(modes=["positive", "negative"], max_examples=EXAMPLES,
                                deterministic=not LONG, database="none")
# invalid input must be a 4xx we define (schemathesis' default list lacks 413/414 and allows 5xx):
# 414 is the answer to a query string over 8190 bytes, however it is invalid
schema.config.checks.negative_data_rejection = NegativeDataRejectionConfig.from_dict(
    {"expected-statuses": ["400", "404", "405", "413", "414", "415"]})


def test_spec_is_what_the_app_serves(served_app):
    assert served_app.test_client().get("/openapi.json").get_json() == json.loads(json.dumps(SPEC))


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=not LONG, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_its_spec(case, served_app):
    CASES[case.operation.label] += 1
    response = case.call_and_validate(checks=CHECKS, app=served_app)
    assert response.status_code < 500
    if response.status_code >= 400:      # every error is the JSON error body, never HTML
        assert response.headers["content-type"][0].startswith("application/json")
        assert set(response.json()) <= {"error", "status", "reason"}
