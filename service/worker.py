"""The gunicorn worker of the service (service/gunicorn.conf.py: `worker_class = Worker`):
gunicorn's gthread worker with what issue 26 found missing, each under its own heading:

- a deadline for reading one request (head and body): REQUEST_READ_SECONDS;
- a chunk-size line ending in a bare LF is refused at once;
- /healthz and /readyz on threads of their own: queries cannot starve them;
- a closing connection lingers on the poller, not in the worker's main loop;
- a worker dies with its master (`die_with_master`, the post_fork hook).

Importing this module patches gunicorn's request reading in the process (the master imports
it through the config, so its workers inherit the patches).
"""
from __future__ import annotations

import ctypes
import os
import selectors
import signal
import socket
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from gunicorn import util
from gunicorn.http.body import ChunkedReader
from gunicorn.http.errors import InvalidChunkSize, NoMoreData
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import ThreadWorker

# ---- a deadline for reading one request (issue 26.8) ------------------------------------
# gthread reads a request with blocking reads and no timeout: a request head or chunked body
# that never ends (a TLS hello on the plain port, CR-only line ends, a chunk size of 2^80)
# held a thread for good. Each read now waits at most until the request's deadline,
# REQUEST_READ_SECONDS after its first byte arrived (nginx in front: client_header_timeout
# and client_body_timeout, 5 s each): an unfinished head closes the connection without an
# answer, as nginx does; a body still missing is the app's 408 (service/api.py).
REQUEST_READ_SECONDS = 5.0
_request = threading.local()        # .deadline of the request this thread reads (time.monotonic())


class RequestReadTimeout(NoMoreData, TimeoutError):
    """The request was not received within REQUEST_READ_SECONDS."""

    def __str__(self) -> str:
        return f"the request was not received within {REQUEST_READ_SECONDS:g} s"


_read_chunk = SocketUnreader.chunk


def _chunk_by_deadline(self, size_hint=None):
    deadline = getattr(_request, "deadline", None)
    if deadline is None:
        return _read_chunk(self, size_hint)
    left = deadline - time.monotonic()
    if left <= 0:
        raise RequestReadTimeout()
    prior = self.sock.gettimeout()      # gunicorn's own drain of an unread body may have set one
    self.sock.settimeout(left if prior is None else min(prior, left))
    try:
        return _read_chunk(self, size_hint)
    except TimeoutError:
        raise RequestReadTimeout() from None
    finally:
        self.sock.settimeout(prior)


SocketUnreader.chunk = _chunk_by_deadline

# ---- a bare LF in a chunk-size line (issue 26.8) ----------------------------------------
# gunicorn refuses a bare LF in the head and in trailers (RFC 9112 section 2.2) but waited for
# the CRLF of a chunk-size line: an LF-only chunked body was held until the client gave up.
# It is an InvalidChunkSize now, before any further read: the app's 400.
_read_into = ChunkedReader.read_into


def _bare_lf(buf) -> None:
    end = buf.find(b"\r\n")
    if buf.find(b"\n", 0, end if end >= 0 else len(buf)) >= 0:
        raise InvalidChunkSize(b"bare LF as line terminator")


def _read_into_crlf_only(self, unreader, buf):
    _bare_lf(buf)
    _read_into(self, unreader, buf)
    _bare_lf(buf)


ChunkedReader.read_into = _read_into_crlf_only

# ---- probes on threads of their own (issue 26.9) ----------------------------------------
# With every request thread busy with queries, /healthz waited behind them in the thread
# pool's queue (16 clients sending the largest batch: /healthz p50 2.9 s). Here a readable
# connection's next request is peeked at (MSG_PEEK) before it goes to a pool: a complete
# GET/HEAD of /healthz or /readyz without a body goes to PROBE_THREADS threads of its own.
# Nothing else can hold those: a request not whole yet, with a body, or anything else goes
# to the query pool, and a connection with nothing to read waits on the poller, not in a
# thread. (A semaphore in the app cannot do this: a probe would first wait in the pool's
# queue, behind the queries, before the app sees it.)
PROBE_THREADS = 2
PROBES = (b"GET /healthz ", b"GET /readyz ", b"HEAD /healthz ", b"HEAD /readyz ")
PEEK_BYTES = 4096
LINGER_SECONDS = 2.0                # as gunicorn's util.close_graceful


def is_probe(head: bytes) -> bool:
    """A whole probe request without a body (it cannot hold a probe thread by trickling)."""
    if not head.startswith(PROBES) or b"\r\n\r\n" not in head:
        return False
    fields = head.split(b"\r\n\r\n", 1)[0].lower()
    return b"\ncontent-length:" not in fields and b"\ntransfer-encoding:" not in fields


def _head(conn) -> bytes | None:
    """The start of the next request: read-ahead already buffered, else peeked at on the
    socket; None when nothing has arrived yet (b"": closed, or an error the thread will see)."""
    unreader = getattr(conn.parser, "unreader", None)
    buffered = unreader.buf.getvalue() if unreader is not None else b""
    if buffered:
        return buffered[:PEEK_BYTES]
    try:
        return conn.sock.recv(PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""


class Worker(ThreadWorker):
    """gthread with probe threads, a read deadline per request and lingering closes on the poller."""

    def init_process(self):
        self.probe_pool = ThreadPoolExecutor(PROBE_THREADS, thread_name_prefix="epgembed-probe")
        self.lingering: deque = deque()     # (deadline, socket), oldest first
        super().init_process()

    def enqueue_req(self, conn):
        head = _head(conn)
        if head is None:                # nothing to read yet: wait on the poller, not in a thread
            conn.sock.setblocking(False)
            conn.timeout = time.monotonic() + max(self.cfg.keepalive, REQUEST_READ_SECONDS)
            self.pending_conns.append(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))
            return
        conn.data_ready = True
        pool = self.probe_pool if is_probe(head) else self.tpool
        fs = pool.submit(self.handle, conn)
        fs.add_done_callback(lambda fut: self.method_queue.defer(self.finish_request, conn, fut))

    def handle(self, conn):
        _request.deadline = time.monotonic() + REQUEST_READ_SECONDS
        try:
            return super().handle(conn)
        finally:
            _request.deadline = None

    # ---- closing without blocking the main loop ---------------------------------------
    # gthread closes a connection it does not keep alive with util.close_graceful on its main
    # thread: FIN, then up to 2 s of reading until the client closes. A client that does not
    # close (every malformed request above) stopped the worker's accepts and probes for those
    # 2 s each. The same lingering now runs on the poller.
    def finish_request(self, conn, fs):
        if fs.cancelled() or fs.exception() is not None or fs.result():
            return super().finish_request(conn, fs)
        self.nr_conns -= 1
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
            self.poller.register(conn.sock, selectors.EVENT_READ, self._drain)
        except (OSError, ValueError, KeyError):
            util.close(conn.sock)
            return
        self.lingering.append((time.monotonic() + LINGER_SECONDS, conn.sock))

    def _drain(self, sock):
        try:
            if sock.recv(65536):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._unlinger(sock)

    def _unlinger(self, sock):
        try:
            self.poller.unregister(sock)
        except (KeyError, ValueError, OSError):
            pass                        # closed already (fd -1: never someone else's registration)
        util.close(sock)

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        while self.lingering and self.lingering[0][0] <= now:
            self._unlinger(self.lingering.popleft()[1])


# ---- a worker dies with its master (issue 26.7) -----------------------------------------
# gthread notices a dead master within a second, but then finishes gracefully for up to
# graceful_timeout with its SO_REUSEPORT socket still bound: after a kill -9 of the master
# under keep-alive load, new connections hung, then were refused, and a restart found the
# port taken (on_starting refuses that on purpose: joining orphans would mix versions). The
# kernel now sends each worker SIGKILL when its master dies (Linux prctl PR_SET_PDEATHSIG).
PR_SET_PDEATHSIG = 1


def die_with_master(server, worker) -> None:
    """The post_fork hook (in the new worker)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    except (OSError, AttributeError) as e:  # not Linux: gthread's own check of its parent remains
        server.log.warning("worker %s will not die with its master: %s", os.getpid(), e)
    if os.getppid() != worker.ppid:     # the master died before the prctl
        os._exit(1)
