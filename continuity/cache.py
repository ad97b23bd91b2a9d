"""A per-process cache of the routing state supervisors change, so the inbound webhook does not rebuild it from the
database on every request.

What is cached, per organization, for at most :data:`TTL_S` (1 s): the sites with their state and agents, the
home agents who are available, the emergencies not yet ended and the line overrides (see
``service.RoutingState``). Queue sizes are not: every call changes them and a queue's capacity depends on the
exact count, so they are counted for each call whose line-up has a queue (and only then).

When a change takes effect:

* In the process that made it, at once: a flush that inserts, updates or deletes one of the watched models
  (:data:`WATCHED`, and a deleted member of staff, who leaves the home-agent pool with the row) drops the
  organization's entry immediately, and again when the transaction ends, so that an entry built by another
  thread from the state before the commit cannot outlive it. Until its transaction ends, a session that has
  flushed such a change reads the state from the database and never stores it (it must see its own, not yet
  committed, writes, and nobody else may see them before they are committed).
* In every other process (another gunicorn worker, the Celery worker, the CLI), or after a write that bypasses
  the unit of work (a bulk ``update()``/``delete()`` statement or raw SQL; the code has none on these tables), within
  the TTL. A session-wide ``do_orm_execute`` hook could catch bulk statements too, but it runs for every statement
  of every request and cost about 0.8 ms per answer webhook, for writes nobody makes.

An entry is only stored if no invalidation of its organization happened while it was being built, so a build
that raced with a commit is used once and then thrown away. The expiry counts from the start of the build.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, object_session

from continuity.models import Agent, Emergency, HomeAgent, InboundLine, LineOverride, RoutingPlan, SiteStatus
from core.directory.models import Site, Staff

TTL_S = 1.0
T = TypeVar("T")

# Models whose rows make up the routing state (a line and its plan are read per call, but a plan moved to by an
# override is part of the cached overrides).
WATCHED: tuple[type[Any], ...] = (
    Site,
    SiteStatus,
    Agent,
    HomeAgent,
    Emergency,
    LineOverride,
    RoutingPlan,
    InboundLine,
)
_EVERY_ORGANIZATION = -1
_SESSION_KEY = "continuity.routing_changed"


@dataclass(frozen=True)
class _Entry(Generic[T]):
    value: T
    expires_at: float


class RoutingStateCache:
    """Organization id → routing state, each entry kept ``ttl_s`` seconds of ``clock`` (a seam for tests)."""

    def __init__(self, ttl_s: float = TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry[Any]] = {}
        self._generations: dict[int, int] = {}
        self._epoch = 0  # bumped when every organization is invalidated at once

    def get(self, organization_id: int, build: Callable[[], T]) -> T:
        """The cached state of the organization, or a fresh one from ``build()`` (stored unless invalidated
        meanwhile)."""
        started = self.clock()
        entry = self._entries.get(organization_id)
        if entry is not None and started < entry.expires_at:
            value: T = entry.value
            return value
        with self._lock:
            token = (self._epoch, self._generations.get(organization_id, 0))
        value = build()
        with self._lock:
            if token == (self._epoch, self._generations.get(organization_id, 0)):
                self._entries[organization_id] = _Entry(value, started + self.ttl_s)
        return value

    def invalidate(self, organization_ids: Iterable[int]) -> None:
        with self._lock:
            for organization_id in organization_ids:
                if organization_id == _EVERY_ORGANIZATION:
                    self._epoch += 1
                    self._entries.clear()
                    continue
                self._generations[organization_id] = self._generations.get(organization_id, 0) + 1
                self._entries.pop(organization_id, None)

    def clear(self) -> None:
        """Forget everything (tests call this between tests)."""
        self.invalidate([_EVERY_ORGANIZATION])


routing_states = RoutingStateCache()


def cached_state(session: Session, organization_id: int, build: Callable[[], T]) -> T:
    """The organization's routing state for ``session``: from the cache, unless this session has flushed a change
    to routing state that is not committed yet (then straight from ``build()``, not stored)."""
    changed: set[int] | None = session.info.get(_SESSION_KEY)
    if changed and (organization_id in changed or _EVERY_ORGANIZATION in changed):
        return build()
    return routing_states.get(organization_id, build)


# --- invalidation ------------------------------------------------------------------------------------------------


def _changed(session: Session | None, organization_id: int | None) -> None:
    key = _EVERY_ORGANIZATION if organization_id is None else organization_id
    routing_states.invalidate([key])
    if session is not None:
        session.info.setdefault(_SESSION_KEY, set()).add(key)


def _on_row_change(_mapper: Any, _connection: Any, target: Any) -> None:
    _changed(object_session(target), getattr(target, "organization_id", None))


for _model in WATCHED:
    for _what in ("after_insert", "after_update", "after_delete"):
        event.listen(_model, _what, _on_row_change)
# A member of staff who is deleted leaves the home-agent pool with the row (ON DELETE CASCADE, unseen by the ORM).
event.listen(Staff, "after_delete", _on_row_change)


@event.listens_for(Session, "after_transaction_end")
def _on_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    """Committed or rolled back: drop what was built meanwhile from the state before, and read from the cache
    again."""
    if transaction.parent is not None:
        return
    changed = session.info.pop(_SESSION_KEY, None)
    if changed:
        routing_states.invalidate(changed)
