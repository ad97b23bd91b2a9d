"""Virtual time for the simulator.

Everything the simulated network does (a phone ringing for 20 s, a person opening a link after 5 min) is an event
on a heap keyed by *virtual* time. Two clocks drive it:

* :class:`ScaledClock` — virtual time runs ``speed`` times faster than the wall clock and a background thread
  runs events as they fall due (``speed=60`` plays a 10-minute drill in 10 s).
* :class:`ManualClock` — time stands still until a test calls :meth:`ManualClock.advance`, which runs every event
  due in that window synchronously, in order, in the caller's thread. No sleeps, fully deterministic.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

# 2026-01-01T00:00:00Z: a fixed start makes manual-clock timelines identical from run to run.
DEFAULT_EPOCH = 1_767_225_600.0


class Clock(Protocol):
    """Where virtual time comes from, and who runs the scheduler's events."""

    def now(self) -> float:
        """Virtual seconds since the Unix epoch."""
        ...

    def attach(self, scheduler: Scheduler) -> None:
        """Start running ``scheduler``'s events (a thread for real clocks, nothing for a manual one)."""
        ...

    def detach(self) -> None:
        """Stop running events; joins any thread :meth:`attach` started."""
        ...


@dataclass(order=True)
class _Event:
    when: float
    seq: int
    action: Callable[[], None] = field(compare=False)
    label: str = field(compare=False, default="")


class Scheduler:
    """A heap of events in virtual time. Thread-safe; runs nothing itself (a clock does)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._heap: list[_Event] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._generation = 0

    def at(self, when: float, action: Callable[[], None], label: str = "") -> None:
        with self._cond:
            heapq.heappush(self._heap, _Event(when, next(self._seq), action, label))
            self._cond.notify_all()

    def after(self, delay_s: float, action: Callable[[], None], label: str = "") -> None:
        self.at(self.clock.now() + max(0.0, delay_s), action, label)

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def next_due(self) -> float | None:
        with self._cond:
            return self._heap[0].when if self._heap else None

    def pop_due(self, until: float) -> _Event | None:
        with self._cond:
            if self._heap and self._heap[0].when <= until:
                return heapq.heappop(self._heap)
            return None

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()
            self._generation += 1
            self._cond.notify_all()

    def run(self, event: _Event) -> None:
        try:
            event.action()
        except Exception:
            # One broken event (a bug, an unexpected reply) must not stop the whole network.
            log.exception("simulator event %r failed", event.label)

    def wait_for_change(self, timeout_s: float | None) -> None:
        """Block until an event is added/cleared or ``timeout_s`` passes (used by the clock thread)."""
        with self._cond:
            self._cond.wait(timeout_s)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class ManualClock:
    """A clock that moves only when told to; events run synchronously inside :meth:`advance`."""

    def __init__(self, start: float = DEFAULT_EPOCH) -> None:
        self._now = start
        self._scheduler: Scheduler | None = None
        self._lock = threading.RLock()

    def now(self) -> float:
        return self._now

    def attach(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    def detach(self) -> None:
        self._scheduler = None

    def advance(self, seconds: float) -> int:
        """Move time forward by ``seconds``, running every event that falls due on the way. Returns how many ran."""
        if seconds < 0:
            raise ValueError("time does not run backwards")
        with self._lock:
            target = self._now + seconds
            ran = 0
            while self._scheduler is not None:
                event = self._scheduler.pop_due(target)
                if event is None:
                    break
                self._now = max(self._now, event.when)
                self._scheduler.run(event)
                ran += 1
            self._now = max(self._now, target)
            return ran

    def run_until_idle(self, max_seconds: float = 7 * 24 * 3600.0) -> float:
        """Advance from event to event until nothing is pending (or ``max_seconds`` passed); returns time advanced."""
        with self._lock:
            start = self._now
            while self._scheduler is not None:
                due = self._scheduler.next_due()
                if due is None or due - start > max_seconds:
                    break
                self.advance(max(0.0, due - self._now))
            return self._now - start


class ScaledClock:
    """Virtual time = start + elapsed wall time × ``speed``; a daemon thread runs events as they fall due."""

    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._start = time.time() if start is None else start
        self._mono0 = time.monotonic()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._scheduler: Scheduler | None = None

    def now(self) -> float:
        return self._start + (time.monotonic() - self._mono0) * self.speed

    def attach(self, scheduler: Scheduler) -> None:
        if self._thread is not None:
            return
        self._scheduler = scheduler
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="telephony-simulator-clock", daemon=True)
        self._thread.start()

    def detach(self) -> None:
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._thread = None

    def _loop(self) -> None:
        scheduler = self._scheduler
        assert scheduler is not None
        while not self._stop.is_set():
            due = scheduler.next_due()
            if due is None:
                scheduler.wait_for_change(1.0)
                continue
            wall_wait = (due - self.now()) / self.speed
            if wall_wait > 0:
                # Re-check at least every second so a stop() or an earlier new event is noticed promptly.
                scheduler.wait_for_change(min(wall_wait, 1.0))
                continue
            event = scheduler.pop_due(self.now())
            if event is not None:
                scheduler.run(event)
