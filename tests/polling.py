"""Waiting in tests without fixed sleeps: poll what the test is waiting for.

    wait_until(lambda: server.ready(), timeout=40, what="gunicorn ready")   # -> the truthy value
    holds_for(lambda: version() == a, seconds=0.5, what="no reload without SIGHUP")

`wait_until` returns as soon as the condition holds (so a fast machine waits less and a slow
one up to `timeout`); `holds_for` is the negative check ("nothing changes without a
trigger"), which can only be watched for a while: it checks the condition over the whole
period instead of sleeping once and looking at the end.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.02,
               what: str = "the condition") -> T:
    """Call `condition` every `interval` s until it returns something truthy, and return that;
    AssertionError naming `what` after `timeout` s."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def holds_for(condition: Callable[[], object], seconds: float, interval: float = 0.02,
              what: str = "the condition") -> None:
    """Assert that `condition` stays truthy for `seconds`, checked every `interval` s."""
    end = time.monotonic() + seconds
    while True:
        assert condition(), f"{what} stopped holding"
        if time.monotonic() >= end:
            return
        time.sleep(interval)
