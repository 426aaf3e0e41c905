"""Every error answer of the service, declared once: its status, code and what it means.

The app's error handlers (app.py), /openapi.json (its components.responses) and gunicorn's
own refusals (gunicorn.conf.py, before the app sees a request) all answer from ERRORS. A
refusal of the query side is a type (epgembed.query.errors), mapped to its status here and
nowhere else (`status_of`); a condition of the web layer itself is an ApiError with its status.
"""
from __future__ import annotations

import json

import msgspec

from epgembed.query.errors import NotFound, QueryError
from epgembed.query.shapes import Error, ErrorBody

# status -> (code, what it means)
ERRORS = {
    400: ("bad_request", "invalid input (message says which), including a query string that is not "
                         "percent-encoded UTF-8"),
    403: ("forbidden", "refused by the server before the app (gunicorn)"),
    404: ("not_found", "unknown id, series (expand) or route"),
    405: ("method_not_allowed", "method not allowed on this route"),
    408: ("request_timeout", "the request body did not arrive in time (worker.REQUEST_READ_SECONDS)"),
    413: ("payload_too_large", "request body too large"),
    414: ("uri_too_long", "query string too long"),
    415: ("unsupported_media_type", "body is not application/json"),
    417: ("expectation_failed", "an Expect header the server does not meet (gunicorn)"),
    431: ("headers_too_large", "request headers too large (gunicorn)"),
    500: ("internal_error", "internal error"),
    501: ("not_implemented", "a request the server does not implement (gunicorn)"),
    503: ("no_model", "no valid model loaded"),
    504: ("deadline_exceeded", "the request ran past its time budget"),
}
ANY_ROUTE = (400, 414)       # any route: a malformed or over-long query string
STATUS_OF = ((NotFound, 404), (QueryError, 400))    # the query side's refusals, most specific first


def code_of(status: int, otherwise: str = "error") -> str:
    return ERRORS[status][0] if status in ERRORS else otherwise


def status_of(e: QueryError) -> int:
    return next(status for kind, status in STATUS_OF if isinstance(e, kind))


class ApiError(Exception):
    """A condition of the web layer answered as JSON: {"error": {"status", "code", "message"}}."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code_of(status)


def error_body(status: int, message: str, code: str | None = None) -> ErrorBody:
    return ErrorBody(status, code or code_of(status), message)


def error_json(status: int, message: str, code: str | None = None) -> bytes:
    """The body of an error answer, with ASCII escapes: a message may quote request text, which
    can hold a lone surrogate (gunicorn.conf.py writes it too, without the app)."""
    return json.dumps(msgspec.to_builtins(Error(error_body(status, message, code)))).encode()
