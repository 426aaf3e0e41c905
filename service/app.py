"""create_app(config): the Flask application factory.

Nothing is loaded at import time: the factory builds the metrics, the model holder (which
loads the first model and, for a models root, starts its watcher thread) and registers the
blueprints, JSON error handlers and the per-request hooks (latency metric + one structured
access-log line per request).
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from urllib.parse import unquote_to_bytes

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from epgembed.query.errors import QueryError

from . import api, explain, ops
from .config import ServiceConfig
from .errors import ApiError, code_of, error_json, status_of
from .holder import ModelHolder
from .metrics import Metrics
from .openapi import build_spec, route_label
from .state import KEY, ServiceState, state

access_log = logging.getLogger("epgembed.access")
log = logging.getLogger("epgembed.service")


def create_app(config: ServiceConfig, *, start: bool = True) -> Flask:
    """The service for `config`; `start=False` leaves the holder unstarted (tests drive it)."""
    app = Flask("epgembed.service")
    app.url_map.merge_slashes = False     # /v1//related: a JSON 404, not a 308 to a Location built from Host
    app.config.update(MAX_CONTENT_LENGTH=config.limits.max_body_bytes)
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    metrics = Metrics(config.metrics_dir)
    holder = ModelHolder(config.models, poll_seconds=config.poll_seconds,
                         verify=config.verify_hashes, listener=metrics, run_dir=config.run_dir)
    app.extensions[KEY] = ServiceState(config, holder, metrics)
    app.register_blueprint(api.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(explain.bp)
    state(app).spec = build_spec(app, config.limits)
    _register_errors(app)
    app.before_request(_start_request)
    app.after_request(_finish)
    if start:
        holder.start()
    return app


def _error(status: int, message: str, code: str | None = None) -> Response:
    return Response(error_json(status, message, code), status=status, mimetype="application/json")


def _register_errors(app: Flask) -> None:
    @app.errorhandler(QueryError)
    def query_error(e: QueryError):
        return _error(status_of(e), str(e))

    @app.errorhandler(ApiError)
    def api_error(e: ApiError):
        return _error(e.status, e.message)

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        status = e.code or 500
        message = e.description or e.name
        if isinstance(e, NotFound) and request.url_rule is None:
            message = f"no route {request.path} (see /openapi.json)"
        elif isinstance(e, MethodNotAllowed):
            message = f"{request.method} is not allowed on {request.path} (allowed: {', '.join(sorted(e.valid_methods or []))})"
        elif isinstance(e, RequestEntityTooLarge):
            message = f"the body is larger than {state().config.limits.max_body_bytes} bytes"
        resp = _error(status, message, code_of(status, (e.name or "error").lower().replace(" ", "_")))
        for name, value in e.get_headers():
            if name.lower() == "allow":
                resp.headers["Allow"] = value
        return resp

    @app.errorhandler(Exception)
    def internal_error(e: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal error")


_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
# on every answer, the explorer's files too (/explorer/explorer.html is the page as well)
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "Content-Security-Policy": explain.CSP, "X-Frame-Options": "DENY"}


def _start_request() -> None:
    g.t0 = time.perf_counter()
    limits = state().config.limits
    g.deadline = g.t0 + limits.request_seconds
    _check_host(request.environ)
    _check_query_string(request.query_string, limits.max_query_bytes)


def _check_host(environ: dict) -> None:
    """RFC 9112 section 3.2: an HTTP/1.1 request without a Host header (or with an empty
    one: an http URI always names its host) MUST get a 400. gunicorn answers such requests
    (it refuses only a repeated Host), so the app does."""
    if environ.get("SERVER_PROTOCOL") == "HTTP/1.1" and not environ.get("HTTP_HOST", "").strip():
        raise ApiError(400, "an HTTP/1.1 request must carry a Host header")


def _check_query_string(raw: bytes, max_bytes: int) -> None:
    """Reject what werkzeug would quietly repair: a query string that is not percent-encoded
    UTF-8 (a bad escape like %zz, or bytes such as %ff that are no UTF-8) is a 400, not a
    title full of U+FFFD; an over-long one is a 414 whatever the WSGI server allows."""
    if not raw:
        return
    if len(raw) > max_bytes:
        raise ApiError(414, f"the query string is longer than {max_bytes} bytes")
    if _BAD_ESCAPE.search(raw):
        raise ApiError(400, "the query string has an invalid percent-escape (% must be followed by two hex digits)")
    try:
        unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the query string is not valid UTF-8 once percent-decoded") from None


def _finish(resp: Response) -> Response:
    seconds = time.perf_counter() - g.get("t0", time.perf_counter())
    endpoint = route_label(request.url_rule.rule) if request.url_rule is not None else "unmatched"
    state().metrics.observe(endpoint, request.method, resp.status_code, seconds)
    served = g.get("serving")
    if served is not None:
        resp.headers["X-Model-Version"] = served.version
    for name, value in SECURITY_HEADERS.items():
        resp.headers.setdefault(name, value)
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(json.dumps({
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "pid": os.getpid(),
            "remote": request.remote_addr, "method": request.method, "path": request.path,
            "query": request.query_string.decode("latin-1")[:300], "endpoint": endpoint,
            "status": resp.status_code, "ms": round(seconds * 1000, 3),
            "bytes": resp.calculate_content_length(), "model": served.version if served else None,
        }, ensure_ascii=False))
    return resp
