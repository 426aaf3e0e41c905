"""A worker's compute slots (service/slots.py): at most n at once, first come first served,
a wait that runs out takes nothing; and the service holding its requests to them."""
from __future__ import annotations

import threading

import pytest

from polling import wait_until
from service.slots import Slots
from service_util import make_root, serving_app


@pytest.mark.unit
def test_n_at_once_then_a_wait_that_runs_out_takes_nothing():
    slots = Slots(2)
    assert slots.acquire(0) and slots.acquire(0)
    assert slots.acquire(0.01) is False and slots.waiting() == 0      # gave up: not left queued
    slots.release()
    assert slots.acquire(0) and not slots.acquire(0)
    from service import ServiceConfig
    with pytest.raises(ValueError, match="compute_slots"):
        ServiceConfig(models="m", compute_slots=0)


@pytest.mark.unit
def test_a_release_hands_the_slot_to_the_oldest_waiter_not_to_the_releaser():
    slots = Slots(1)
    assert slots.acquire()
    order: list[int] = []

    hold = threading.Event()

    def waiter(i: int) -> None:
        assert slots.acquire(10)
        order.append(i)
        hold.wait(10)                   # waiter 0 keeps the slot until the test has looked
        slots.release()

    threads = []
    for i in range(4):                  # queued one after another, in this order
        threads.append(threading.Thread(target=waiter, args=(i,)))
        threads[-1].start()
        wait_until(lambda: slots.waiting() == i + 1, what=f"waiter {i} queued")
    slots.release()
    wait_until(lambda: order == [0], what="waiter 0 served")
    assert slots.acquire(0) is False    # the released slot went to waiter 0, not back to us
    hold.set()
    for t in threads:
        t.join(10)
    assert order == [0, 1, 2, 3]
    assert slots.acquire(0)             # and came back free at the end


@pytest.mark.unit
def test_a_slot_handed_over_as_the_wait_runs_out_is_kept(monkeypatch):
    class LateTurn(threading.Event):
        """A wait that reports running out although the slot was handed over meanwhile."""
        def wait(self, timeout=None):
            super().wait(10)
            return False

    import service.slots
    monkeypatch.setattr(service.slots.threading, "Event", LateTurn)
    slots = Slots(1)
    assert slots.acquire()
    got: list[bool] = []
    t = threading.Thread(target=lambda: got.append(slots.acquire(0.2)))
    t.start()
    wait_until(lambda: slots.waiting() == 1, what="the waiter queued")
    slots.release()
    t.join(10)
    assert got == [True] and slots.acquire(0) is False     # held by the waiter, not lost or doubled


@pytest.mark.integration
def test_a_query_waits_for_a_slot_within_its_budget_and_probes_need_none(tmp_path, tiny_model_dir):
    from service import Limits
    from service.state import state
    make_root(tmp_path / "root", tiny_model_dir)
    with serving_app(tmp_path / "root", limits=Limits(request_seconds=0.2)) as app:
        client, slots = app.test_client(), state(app).slots
        assert client.get("/v1/titles/1/related?k=3").status_code == 200
        assert slots.acquire(0)                         # the worker's one slot, held elsewhere
        r = client.get("/v1/titles/1/related?k=3")
        assert r.status_code == 504 and r.get_json()["error"]["code"] == "deadline_exceeded"
        assert "waiting for a compute slot" in r.get_json()["error"]["message"]
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
        assert client.get("/v1/related?title=").status_code == 400     # refused before any slot
        slots.release()
        assert client.get("/v1/titles/1/related?k=3").status_code == 200
        assert slots.acquire(0)                         # and the 504 left none taken
