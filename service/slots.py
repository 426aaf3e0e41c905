"""A worker's compute slots (ServiceConfig.compute_slots): at most `n` requests computing at
once, the others served first come, first served. threading.Semaphore lets a thread that
releases take its slot straight back before a woken waiter runs: under steady load one
client's thread kept the only slot while the others starved. Here a release hands the slot
to the oldest waiter."""
from __future__ import annotations

import threading
from collections import deque


class Slots:
    def __init__(self, n: int):         # n >= 1: ServiceConfig checks it
        self._lock = threading.Lock()
        self._free = n
        self._waiting: deque[threading.Event] = deque()

    def acquire(self, timeout: float | None = None) -> bool:
        """A slot, waiting at most `timeout` seconds (None: for good); False when none came."""
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return True
            turn = threading.Event()
            self._waiting.append(turn)
        if turn.wait(timeout):
            return True
        with self._lock:
            if turn.is_set():           # handed over just as the wait ran out: it is ours
                return True
            self._waiting.remove(turn)
            return False

    def release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()       # the slot passes straight to the oldest waiter
            else:
                self._free += 1

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)
