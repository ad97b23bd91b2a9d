"""Global pacing: workers sharing one bucket never spend more than the rate allows (injected clock)."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from core import db
from core.pacing import DatabaseTokenBucket, MemoryTokenBucket, RedisTokenBucket, pacing_buckets

ROUNDS = 20
STEP_S = 0.5


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def hammer(buckets, clock: Clock, channel: str) -> list[int]:
    """Each round: move the clock, then every worker asks for more tokens than can exist. Returns grants."""
    granted = [0] * len(buckets)
    barrier = threading.Barrier(len(buckets) + 1)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            for _ in range(ROUNDS):
                barrier.wait()
                for _ in range(4):
                    granted[index] += buckets[index].take(channel)
                granted[index] += buckets[index].take(channel, 3)
                barrier.wait()
        except BaseException as exc:  # surfaced below; a dead thread would otherwise hang the barrier
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(buckets))]
    for t in threads:
        t.start()
    for round_ in range(ROUNDS):
        if round_:
            clock.t += STEP_S
        barrier.wait()
        barrier.wait()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    return granted


def expected(rate: float) -> int:
    # A full bucket (one second's worth) at the start, then the rate over the elapsed virtual time.
    return int(max(1.0, rate) + rate * (ROUNDS - 1) * STEP_S)


@pytest.mark.parametrize("rate", [1.0, 10.0])
def test_database_bucket_shared_by_two_workers_holds_the_rate(tmp_path, rate):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'pacing.db'}")
    pacing_buckets.create(engine)
    clock = Clock()
    workers = [DatabaseTokenBucket(engine, {"voice": rate}, clock=clock) for _ in range(2)]
    granted = hammer(workers, clock, "voice")
    assert sum(granted) == expected(rate)
    engine.dispose()


def test_memory_bucket_holds_the_rate():
    clock = Clock()
    bucket = MemoryTokenBucket({"sms": 10.0}, clock=clock)
    assert sum(hammer([bucket, bucket], clock, "sms")) == expected(10.0)


def test_an_idle_pause_does_not_become_a_burst(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'pacing.db'}")
    pacing_buckets.create(engine)
    clock = Clock()
    bucket = DatabaseTokenBucket(engine, {"voice": 1.0}, clock=clock)
    assert bucket.take("voice", 5) == 1
    clock.t += 3600
    assert bucket.take("voice", 5) == 1
    engine.dispose()


@pytest.mark.redis
@pytest.mark.skipif(
    not os.environ.get("LIFELINE_TEST_REDIS_URL"), reason="LIFELINE_TEST_REDIS_URL is not set"
)
@pytest.mark.parametrize("rate", [1.0, 10.0])
def test_redis_bucket_shared_by_two_workers_holds_the_rate(rate):
    import redis

    url = os.environ["LIFELINE_TEST_REDIS_URL"]
    prefix = f"lifeline-test:{uuid.uuid4().hex}:"
    clock = Clock()
    workers = [
        RedisTokenBucket(redis.Redis.from_url(url), {"voice": rate}, clock=clock, prefix=prefix)
        for _ in range(2)
    ]
    try:
        assert sum(hammer(workers, clock, "voice")) == expected(rate)
    finally:
        workers[0].client.delete(prefix + "voice")
