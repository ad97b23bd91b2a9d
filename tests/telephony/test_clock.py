"""Virtual time: a manual clock for tests, a scaled clock with its own thread."""

from __future__ import annotations

import threading
import time

import pytest

from core.telephony.simulator import ManualClock, ScaledClock, create_simulator_app, simulator_of
from core.telephony.simulator.clock import Scheduler
from tests.telephony.conftest import ACCOUNT_SID, AUTH_TOKEN


def test_manual_clock_runs_due_events_in_time_order_including_new_ones() -> None:
    clock = ManualClock(start=1000.0)
    scheduler = Scheduler(clock)
    clock.attach(scheduler)
    ran: list[tuple[str, float]] = []

    def record(name: str) -> None:
        ran.append((name, clock.now()))

    def first() -> None:
        record("a")
        # Scheduled while time is moving: still runs within this advance.
        scheduler.after(2, lambda: record("a+2"))

    scheduler.after(5, lambda: record("b"))
    scheduler.after(1, first)
    scheduler.after(5, lambda: record("b2"))
    scheduler.after(30, lambda: record("late"))

    assert clock.advance(10) == 4
    assert ran == [("a", 1001.0), ("a+2", 1003.0), ("b", 1005.0), ("b2", 1005.0)]
    assert clock.now() == 1010.0
    assert scheduler.pending() == 1
    assert clock.run_until_idle() == 20.0
    assert ran[-1] == ("late", 1030.0)
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_a_failing_event_does_not_stop_the_others() -> None:
    clock = ManualClock()
    scheduler = Scheduler(clock)
    clock.attach(scheduler)
    ran: list[str] = []
    scheduler.after(1, lambda: print(1 / 0))
    scheduler.after(2, lambda: ran.append("after"))
    clock.advance(3)
    assert ran == ["after"]


def test_scaled_clock_runs_events_on_its_thread_and_stops_cleanly() -> None:
    clock = ScaledClock(speed=100.0)
    scheduler = Scheduler(clock)
    done = threading.Event()
    started = time.monotonic()
    scheduler.after(20.0, done.set)  # 20 virtual seconds = 0.2 s
    clock.attach(scheduler)
    assert done.wait(5)
    assert 0.15 < time.monotonic() - started < 2
    clock.detach()
    assert not any(t.name == "telephony-simulator-clock" and t.is_alive() for t in threading.enumerate())


def test_simulator_stop_ends_its_clock_thread() -> None:
    app = create_simulator_app(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, speed=60)
    before = sum(t.name == "telephony-simulator-clock" and t.is_alive() for t in threading.enumerate())
    assert before >= 1
    simulator_of(app).stop()
    after = sum(t.name == "telephony-simulator-clock" and t.is_alive() for t in threading.enumerate())
    assert after == before - 1
