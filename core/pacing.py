"""Global pacing: calls and messages leave at the carrier account's rate, however many workers there are.

One token bucket per channel, shared by every worker process:

* :class:`DatabaseTokenBucket` — the embedded default. A row per channel (tokens, updated_at). On SQLite one
  guarded ``UPDATE … WHERE`` statement refills and spends atomically (SQLite serialises writers); on PostgreSQL
  the row is locked with ``SELECT … FOR UPDATE`` for the read-modify-write.
* :class:`RedisTokenBucket` — production. A Lua script refills and spends in one atomic step on the server.

A bucket holds at most ``max(1, rate)`` tokens (one second's worth), so an idle pause never turns into a burst
the carrier would queue or reject. Time comes from an injectable ``clock`` (seconds as a float), which lets
tests move it by hand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sqlalchemy import Column, Engine, Float, String, Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.db import Base

Clock = Callable[[], float]

pacing_buckets = Table(
    "pacing_buckets",
    Base.metadata,
    Column("channel", String(20), primary_key=True),
    Column("tokens", Float, nullable=False),
    # Seconds since the epoch as a float, so refilling is plain arithmetic inside one SQL statement.
    Column("updated_at", Float, nullable=False),
)


class TokenBucket(Protocol):
    def take(self, channel: str, wanted: int = 1) -> int:
        """Spend up to ``wanted`` tokens of ``channel`` now; returns how many were granted (0 = wait)."""
        ...


def capacity(rate: float) -> float:
    return max(1.0, rate)


class DatabaseTokenBucket:
    def __init__(self, engine: Engine, rates: Mapping[str, float], *, clock: Clock = time.time) -> None:
        self.engine = engine
        self.rates = dict(rates)
        self.clock = clock

    def _ensure_row(self, channel: str, now: float) -> None:
        with self.engine.connect() as conn:
            exists = conn.execute(
                select(pacing_buckets.c.channel).where(pacing_buckets.c.channel == channel)
            ).first()
        if exists:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(pacing_buckets).values(
                        channel=channel, tokens=capacity(self.rates[channel]), updated_at=now
                    )
                )
        except IntegrityError:
            pass  # another worker created it first

    def take(self, channel: str, wanted: int = 1) -> int:
        if wanted <= 0:
            return 0
        rate = self.rates[channel]
        now = self.clock()
        self._ensure_row(channel, now)
        if self.engine.dialect.name == "postgresql":
            return self._take_locked(channel, wanted, rate, now)
        granted = 0
        while granted < wanted and self._take_one_sqlite(channel, rate, now):
            granted += 1
        return granted

    def _take_one_sqlite(self, channel: str, rate: float, now: float) -> bool:
        t = pacing_buckets.c
        elapsed = func.max(0.0, now - t.updated_at)
        available = func.min(capacity(rate), t.tokens + elapsed * rate)
        with self.engine.begin() as conn:
            result = conn.execute(
                update(pacing_buckets)
                .where(t.channel == channel, available >= 1.0)
                .values(tokens=available - 1.0, updated_at=func.max(t.updated_at, now))
            )
        return bool(result.rowcount == 1)

    def _take_locked(self, channel: str, wanted: int, rate: float, now: float) -> int:
        t = pacing_buckets.c
        with self.engine.begin() as conn:
            row = conn.execute(
                select(t.tokens, t.updated_at).where(t.channel == channel).with_for_update()
            ).one()
            available = min(capacity(rate), row.tokens + max(0.0, now - row.updated_at) * rate)
            granted = min(wanted, int(available))
            conn.execute(
                update(pacing_buckets)
                .where(t.channel == channel)
                .values(tokens=available - granted, updated_at=max(row.updated_at, now))
            )
        return granted


_LUA_TAKE = """
local rate = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = cap
  ts = now
end
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
local granted = math.min(wanted, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(math.max(ts, now)))
redis.call('EXPIRE', KEYS[1], 86400)
return granted
"""


class RedisTokenBucket:
    def __init__(
        self,
        client: Any,
        rates: Mapping[str, float],
        *,
        clock: Clock = time.time,
        prefix: str = "lifeline:pacing:",
    ) -> None:
        self.client = client
        self.rates = dict(rates)
        self.clock = clock
        self.prefix = prefix
        self._script = client.register_script(_LUA_TAKE)

    def take(self, channel: str, wanted: int = 1) -> int:
        if wanted <= 0:
            return 0
        rate = self.rates[channel]
        granted = self._script(
            keys=[self.prefix + channel], args=[rate, capacity(rate), repr(self.clock()), wanted]
        )
        return int(granted)


class MemoryTokenBucket:
    """One process only (tests, benchmarks of a single worker)."""

    def __init__(self, rates: Mapping[str, float], *, clock: Clock = time.time) -> None:
        self.rates = dict(rates)
        self.clock = clock
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, channel: str, wanted: int = 1) -> int:
        rate = self.rates[channel]
        with self._lock:
            now = self.clock()
            tokens, ts = self._state.get(channel, (capacity(rate), now))
            tokens = min(capacity(rate), tokens + max(0.0, now - ts) * rate)
            granted = max(0, min(wanted, int(tokens)))
            self._state[channel] = (tokens - granted, max(ts, now))
            return granted


class UnlimitedTokenBucket:
    def take(self, channel: str, wanted: int = 1) -> int:
        return max(0, wanted)


def rates_from(settings: Any) -> dict[str, float]:
    return {
        "voice": float(settings.calls_per_second),
        "sms": float(settings.sms_per_second),
        "email": float(settings.emails_per_second),
    }


def make_bucket(settings: Any, engine: Engine, *, clock: Clock = time.time) -> TokenBucket:
    """The bucket chosen by ``settings.pacing_backend`` ("database" or "redis")."""
    rates = rates_from(settings)
    if settings.pacing_backend == "redis":
        import redis

        return RedisTokenBucket(
            redis.Redis.from_url(settings.redis_url or settings.broker_url), rates, clock=clock
        )
    return DatabaseTokenBucket(engine, rates, clock=clock)
