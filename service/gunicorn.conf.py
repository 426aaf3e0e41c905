"""gunicorn configuration for the epgembed service (production server).

    EPGEMBED_MODELS=models/root .venv/bin/gunicorn -c service/gunicorn.conf.py
    epgembed serve --models models/root            (sets the variables and execs this)

Settings: the environment, read once by service/settings.py `load` (the table SETTINGS:
EPGEMBED_BIND, EPGEMBED_WORKERS, ...); the workers, forked from this master, answer from
its reading. PROMETHEUS_MULTIPROC_DIR and EPGEMBED_RUN_DIR (the workers' shared version
decision, service/shared.py) are each a fresh temporary folder when unset.

Signals: SIGHUP to the master is forwarded to every worker, which checks `current` at once
(in place, no restart; gunicorn's own "reload config + replace workers" on HUP is not used).
SIGTERM: graceful shutdown (requests in flight finish, up to graceful_timeout). A worker
dies with its master (a kill -9 of the master frees the port at once, for a restart).

The worker is gunicorn's gthread worker with a few changes (service/worker.py): /healthz
and /readyz are answered by threads of their own, so queries cannot starve them; reading one
request (head and body) has a deadline; a closing connection lingers on the poller, not in
the worker's main loop; and a worker dies with its master.
"""
import os
import shutil
import signal
import socket
import tempfile

from gunicorn import util as _gunicorn_util
from gunicorn.http import wsgi as _gunicorn_wsgi


def _folder(variable, prefix):
    """The folder named by $variable, or a fresh temporary one (then exported, and ours to
    remove at exit): (path, ours)."""
    path = os.environ.get(variable)
    if path:
        os.makedirs(path, exist_ok=True)
        return path, False
    path = os.environ[variable] = tempfile.mkdtemp(prefix=prefix)
    return path, True


# Must happen before anything imports prometheus_client (workers import the app after this).
# One BLAS thread per worker thread (set before any worker imports numpy; an operator's own
# OPENBLAS_NUM_THREADS wins). Requests already run on 2 workers x 4 threads; OpenBLAS's own
# threads on top oversubscribe the cores and spin: make bench-serve, one run each, unseen
# titles (an exact search, a BLAS product) 134 req/s with the default, 1,145 with one thread.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

_metrics_dir, _own_metrics_dir = _folder("PROMETHEUS_MULTIPROC_DIR", "epgembed-metrics-")
# The version decision all workers follow (service/shared.py): one per instance.
_run_dir, _own_run_dir = _folder("EPGEMBED_RUN_DIR", "epgembed-run-")

# After the variables above: this imports the service's modules (not a model, no thread) into
# the master, and the workers start with them already imported.
from service.errors import error_json  # noqa: E402
from service.settings import load  # noqa: E402
from service.worker import Worker, die_with_master  # noqa: E402

_all = load(os.environ)
_settings = _all.server
wsgi_app = "service.wsgi:app_from_env()"
bind = [_settings.bind]
workers = _settings.workers
worker_class = Worker        # gthread: Annoy lookups release the GIL; threads share one mmapped index
threads = _settings.threads
worker_connections = 1000
# Each worker listens on its own SO_REUSEPORT socket and the kernel spreads connections over
# them. With one shared socket, long-lived keep-alive connections all landed on whichever
# worker woke first (measured: 16 of 16 wrk connections on one worker, the other idle).
# on_starting refuses to start when the address is already taken, so a second instance can
# never silently join this one's port.
reuse_port = True
backlog = 2048
keepalive = 5
timeout = _settings.timeout
graceful_timeout = 20         # SIGTERM: in-flight requests get this long to finish
preload_app = False           # each worker loads the model itself (threads do not survive fork)
max_requests = 0              # no recycling: a fresh worker would have to load the model again
proc_name = "epgembed"
control_socket_disable = True  # gunicorn's runtime control socket: one fixed path shared by all
                               # instances on the host; signals are the interface here
limit_request_line = _all.service.limits.max_query_bytes   # a title of MAX_TITLE_CHARS, percent-encoded
limit_request_fields = 50
limit_request_field_size = 8190
forwarded_allow_ips = _settings.forwarded_allow_ips
loglevel = _settings.log_level


class _ListeningAddress:
    """gunicorn's master logs "Listening at: %s (%s)" with the address of its own sockets;
    with reuse_port it has none (each worker binds its own), so the line came out as
    "Listening at:  (pid)". Fill in the configured addresses, written as gunicorn writes them."""

    def filter(self, record):
        if record.msg == "Listening at: %s (%s)" and record.args and not record.args[0]:
            where = ",".join(b if b.startswith(("unix:", "fd://")) else f"http://{b}" for b in bind)
            record.args = (where, *record.args[1:])
        return True


# The access log: the app writes one JSON line per request to the "epgembed.access" logger
# (method, path, endpoint, status, ms, bytes, model version, pid); gunicorn's own text access
# line is switched off so there is exactly one line per request.
_access = _settings.access_log
_access_handler = ({"class": "logging.StreamHandler", "formatter": "raw", "stream": "ext://sys.stdout"}
                   if _access == "-" else
                   {"class": "logging.FileHandler", "formatter": "raw", "filename": _access}
                   if _access != "off" else {"class": "logging.NullHandler"})
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": ["error_console"]},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["error_console"], "propagate": False,
                           "filters": ["listening_address"]},
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        "epgembed.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        "epgembed.service": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
    },
    "filters": {"listening_address": {"()": _ListeningAddress}},
    "handlers": {
        "access": _access_handler,
        "error_console": {"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stderr"},
    },
    "formatters": {
        "raw": {"format": "%(message)s"},
        "generic": {"format": "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s",
                    "datefmt": "[%Y-%m-%d %H:%M:%S %z]"},
    },
}


# Requests gunicorn refuses before the app sees them (request line over limit_request_line:
# 414, headers over the limits: 431, a malformed request line: 400) get the app's JSON
# error body instead of gunicorn's HTML page: gunicorn.util.write_error is its one writer
# of those answers (workers/base.py handle_error); tests/test_service_hostile.py checks it.
# The codes are the app's (service/errors.py ERRORS).
def _json_error(sock, status_int, reason, mesg):
    body = error_json(status_int, (str(mesg) or reason)[:200])
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n")
    _gunicorn_util.write_nonblock(sock, head.encode("latin-1") + body)


_gunicorn_util.write_error = _json_error


# After an answer, gunicorn drains at most 64 KiB of a body the app did not read and closes
# the connection when more is left, yet it has already told the client "Connection:
# keep-alive", so the client's next request on it fails. Say "close" up front instead for
# every error answer that may leave such a body (a 413, or any 4xx/5xx to a request
# declaring more than 64 KiB or a chunked body). The app cannot: gunicorn drops a
# Connection header set by the app.
_DRAIN_LIMIT = 64 * 1024
_should_close = _gunicorn_wsgi.Response.should_close


def _body_may_be_left(req):
    for name, value in req.headers:
        if name == "TRANSFER-ENCODING" or (name == "CONTENT-LENGTH" and value.isdigit() and int(value) > _DRAIN_LIMIT):
            return True
    return False


def _should_close_after_error(self):
    status = getattr(self, "status_code", None) or 0
    return (_should_close(self) or status in (408, 413)
            or (status >= 400 and _body_may_be_left(self.req)))


_gunicorn_wsgi.Response.should_close = _should_close_after_error


def _refuse_taken_address(server):
    for addr in server.cfg.address:
        if not isinstance(addr, tuple):
            continue            # a unix socket path
        family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # but not SO_REUSEPORT
            try:
                probe.bind(addr)
            except OSError as e:
                server.log.error("cannot serve on %s:%s: %s", addr[0], addr[1], e)
                on_exit(server)
                raise SystemExit(1)


def post_fork(server, worker):
    die_with_master(server, worker)


def on_starting(server):
    _refuse_taken_address(server)
    # stale sample files from an earlier run would be summed into this run's counters
    for name in os.listdir(_metrics_dir):
        if name.endswith(".db"):
            os.remove(os.path.join(_metrics_dir, name))
    # an earlier run's decision and worker records: this run's first worker decides afresh
    _remove(os.path.join(_run_dir, "decision.json"))
    shutil.rmtree(os.path.join(_run_dir, "workers"), ignore_errors=True)


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def when_ready(server):
    def forward_hup():
        server.log.info("SIGHUP: asking %d worker(s) to check for a new model", len(server.WORKERS))
        for pid in list(server.WORKERS):
            try:
                os.kill(pid, signal.SIGHUP)
            except ProcessLookupError:
                pass
    server.handle_hup = forward_hup


def child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid, _metrics_dir)
    _remove(os.path.join(_run_dir, "workers", f"{worker.pid}.json"))   # what it served (shared.py)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
    if _own_run_dir:
        shutil.rmtree(_run_dir, ignore_errors=True)
