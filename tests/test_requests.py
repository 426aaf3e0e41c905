"""The request types (epgembed.query.requests) and their one reading (query/contract.py): bounds
that hold for every caller, a server's limits applied by name, the patterns meaning the same in
Python and in JSON Schema's dialect, exactly-one choices, and the refusals mapped by type."""
from __future__ import annotations

import re

import pytest

from epgembed.query.contract import LETTER_OR_DIGIT, NOT_BLANK, TIME, fields, one_of, violation
from epgembed.query.errors import NotFound, QueryError
import epgembed.query.requests as request_types
from epgembed.query.limits import RequestLimits
from epgembed.query.requests import (BatchRequest, Context, ExplainTextRequest, Options, ProgrammeQuery,
                                     RelatedRequest, Tuning)
from epgembed.text.features import parse_time

pytestmark = pytest.mark.unit

CODE_POINTS = [chr(i) for i in range(0x110000) if not 0xD800 <= i < 0xE000]


def test_the_patterns_mean_what_python_checks():
    """NOT_BLANK spells out str.isspace()'s characters (\\s differs between Python's re and
    ECMA-262, the pattern dialect of JSON Schema: U+001C is a space to one, not the other);
    LETTER_OR_DIGIT is str.isalnum(); TIME is twelve digits of a month, day, hour, minute."""
    blank, alnum = re.compile(NOT_BLANK), re.compile(LETTER_OR_DIGIT)
    assert [c for c in CODE_POINTS if (blank.search(c) is None) != c.isspace()] == []
    assert [c for c in CODE_POINTS if (alnum.search(c) is None) == c.isalnum()] == []
    assert blank.search("\x1c \x1d") is None and blank.search(" \ufeff") is not None
    for good in ("202207252015", "202402292359"):
        assert re.search(TIME, good) and parse_time(good) is not None
    for bad in ("0", "000000000000", "202213010000", "202201320000", "202201012400", "2022010100601"):
        assert re.search(TIME, bad) is None


def test_bounds_hold_for_every_caller():
    for make, message in ((lambda: Options(k=0), "k must be at least 1"),
                          (lambda: Options(offset=-1), "offset must be at least 0"),
                          (lambda: Options(min_score=2.0), "min_score must be between -1 and 1"),
                          (lambda: Options(category=" "), "category is empty"),
                          (lambda: Context(start="tomorrow"), "start 'tomorrow' is not a time YYYYmmddHHMM"),
                          (lambda: Context(start="202302301200"), "is not a time YYYYmmddHHMM"),  # no such day
                          (lambda: Context(minutes=0.0), "minutes must be greater than 0"),
                          (lambda: RelatedRequest(title="!!!"), "the title has no letter or digit"),
                          (lambda: Tuning(collapse_share=7.0), "collapse_share must be between 0.01 and 1")):
        with pytest.raises(QueryError, match=re.escape(message)):
            make()
    assert Options(k=1000).k == 1000           # the library has no server's limits


def test_a_servers_limits_are_applied_by_name():
    flat = {f.name: f for f in fields(RelatedRequest)}
    assert list(flat) == ["title", "k", "min_score", "category", "offset", "include_self", "same_series",
                          "expand", "channel", "start", "minutes"]
    assert "maximum" not in flat["k"].schema and flat["k"].schema["x-limit"] == {"maximum": "max_k"}
    limits = RequestLimits(max_k=5, max_answer_rows=50, max_title_chars=40)
    bound = {f.name: f.schema for f in fields(RelatedRequest, limits)}
    assert bound["k"]["maximum"] == 5 and bound["offset"]["maximum"] == 49
    assert bound["title"]["maxLength"] == 40 and bound["expand"]["maxLength"] == 120
    assert violation("k", 6, bound["k"]) == "k must be between 1 and 5"
    with pytest.raises(QueryError, match="k \\+ offset is 51 answer rows: at most 50"):
        limits.check_work(Options(k=5, offset=46))
    with pytest.raises(QueryError, match="at most 1000 per request"):
        RequestLimits().check_work(Options(k=20), 51)


def test_exactly_one_of():
    with pytest.raises(QueryError, match="give exactly one of neighbor or neighbor_title"):
        ExplainTextRequest(title="a", neighbor=1, neighbor_title="b")
    with pytest.raises(QueryError, match="give exactly one of neighbor or neighbor_title"):
        ExplainTextRequest(title="a")
    with pytest.raises(QueryError, match="give exactly one of titles or programmes"):
        BatchRequest(titles=["a"], programmes=[ProgrammeQuery(title="a")])
    with pytest.raises(QueryError, match="channel, minutes: only with titles, not with programmes"):
        BatchRequest(programmes=[ProgrammeQuery(title="a")], context=Context(channel="c", minutes=3.0))
    assert BatchRequest(titles=["a"], context=Context(channel="c")).queries == 1
    one_of(BatchRequest, {"titles", "channel"})          # what the CLI checks its options with
    with pytest.raises(QueryError, match="start: only with titles"):
        one_of(BatchRequest, {"programmes", "start"})


def test_the_service_maps_refusals_by_type():
    from service.errors import ERRORS, status_of
    assert status_of(NotFound("unknown id 9")) == 404 and status_of(QueryError("k must be ...")) == 400
    assert {s: c for s, (c, _) in ERRORS.items() if s in (400, 404, 503)} == \
        {400: "bad_request", 404: "not_found", 503: "no_model"}


def test_every_request_type_is_an_operations(tmp_path):
    """Each request type is read by an operation of the service (none declared and unused),
    and every operation with parameters reads one of them."""
    from service import ServiceConfig, create_app
    from service.openapi import operations
    app = create_app(ServiceConfig(models=tmp_path), start=False)
    read = {op.request for _, _, op, _ in operations(app)}
    declared = {t for name, t in vars(request_types).items() if name.endswith("Request") and isinstance(t, type)}
    assert read - {None} == declared and len(declared) == 6
