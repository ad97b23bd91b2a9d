"""How often one client may get something wrong — guess an answer link, fail to sign in — across every web process.

A token bucket per (rule, client): ``capacity`` tries, refilled at ``capacity / per_seconds`` a second. Kept where
every web process sees it: in Redis (one Lua step) when ``LIFELINE_REDIS_URL`` is set, otherwise in the database,
as rows ``rl:<digest>`` of the pacing table (:mod:`core.pacing`), so the embedded default needs nothing more.

Only failures spend a try, and a client with none left is refused *before* anything is looked up: otherwise the
difference between "429" and "200" would itself tell a guesser which links are real.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from flask import abort, current_app, request
from sqlalchemy import delete, insert, select, update

from core import db
from core.i18n import gettext
from core.kv import redis_client
from core.pacing import pacing_buckets

log = logging.getLogger(__name__)

KEY_PREFIX = "rl:"  # fits pacing_buckets.channel (20 characters) with a 16-hex digest
STALE_AFTER_S = 24 * 3600


@dataclass(frozen=True)
class Rule:
    name: str
    capacity: int
    per_seconds: float

    @property
    def refill_per_second(self) -> float:
        return self.capacity / self.per_seconds


# An answer, self-service or invitation link that does not exist. People mistype one now and then; a scanner
# guessing 128-bit tokens tries thousands.
LINK_MISSES = Rule("link-miss", capacity=20, per_seconds=60.0)
# Wrong passwords from one address (each account also locks itself after 5, see core.auth.service).
LOGIN_FAILURES = Rule("login-fail", capacity=20, per_seconds=600.0)


def _now() -> float:
    """The limiter's clock (wall time, shared by every process); tests freeze it."""
    return time.time()


def _key(rule: Rule, client: str) -> str:
    return KEY_PREFIX + hashlib.sha256(f"{rule.name}:{client}".encode()).hexdigest()[:16]


_LUA = """
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local spend = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or cap
local ts = tonumber(state[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
local granted = 0
if spend > 0 and tokens >= 1 then
  tokens = tokens - 1
  granted = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(math.max(ts, now)))
redis.call('EXPIRE', KEYS[1], math.ceil(cap / rate) + 60)
if spend > 0 then return granted end
if tokens >= 1 then return 1 end
return 0
"""


def _redis_step(settings: Any, rule: Rule, client: str, spend: bool) -> bool:
    script = redis_client(settings.redis_url).register_script(_LUA)
    return bool(
        script(
            keys=[_key(rule, client)],
            args=[rule.capacity, rule.refill_per_second, repr(_now()), 1 if spend else 0],
        )
    )


def _database_step(rule: Rule, client: str, spend: bool) -> bool:
    """In the caller's transaction (the edge commits it); on PostgreSQL the row is locked for the update."""
    key = _key(rule, client)
    now = _now()
    t = pacing_buckets.c
    query = select(t.tokens, t.updated_at).where(t.channel == key)
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = db.session.execute(query).first()
    tokens = float(rule.capacity) if row is None else row.tokens
    updated = now if row is None else row.updated_at
    tokens = min(float(rule.capacity), tokens + max(0.0, now - updated) * rule.refill_per_second)
    allowed = tokens >= 1.0
    if not spend:
        return allowed
    if allowed:
        tokens -= 1.0
    values = {"tokens": tokens, "updated_at": max(updated, now)}
    if row is None:
        with db.session.begin_nested():
            db.session.execute(insert(pacing_buckets).values(channel=key, **values))
    else:
        db.session.execute(update(pacing_buckets).where(t.channel == key).values(**values))
    if random.random() < 0.01:  # now and then, forget clients that have been quiet for a day
        db.session.execute(
            delete(pacing_buckets).where(t.channel.startswith(KEY_PREFIX), t.updated_at < now - STALE_AFTER_S)
        )
    return allowed


def _step(rule: Rule, client: str, spend: bool) -> bool:
    settings = current_app.extensions["lifeline.settings"]
    if settings.redis_url:
        try:
            return _redis_step(settings, rule, client, spend)
        except Exception:
            # A limiter that cannot count must not lock everyone out of their safety check.
            log.warning("rate limiter: Redis unreachable, not limiting %s", rule.name, exc_info=True)
            return True
    return _database_step(rule, client, spend)


def has_tries_left(rule: Rule, client: str) -> bool:
    return _step(rule, client, spend=False)


def spend_try(rule: Rule, client: str) -> bool:
    """One failure of ``client``; False when it had none left. The caller commits (database variant)."""
    return _step(rule, client, spend=True)


def client_address() -> str:
    # Behind a proxy ProxyFix has already put the client's own address here.
    return request.remote_addr or "unknown"


def refuse_if_exhausted(rule: Rule) -> None:
    """Abort with 429 when this client has used up its tries (checked before anything is looked up)."""
    if not has_tries_left(rule, client_address()):
        abort(
            429,
            description=gettext("Too many attempts from your address. Please wait a minute and try again."),
        )


def note_failure(rule: Rule) -> None:
    """Spend one try of this client and commit it, so it counts even though the response is an error."""
    spend_try(rule, client_address())
    db.session.commit()
