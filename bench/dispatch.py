"""2. Dispatch: calls handed to the simulator through the real Twilio client, unpaced and paced.

"2 workers" are two OS processes, each running the dispatcher loop a Celery worker runs (``ivr.dispatch.run``, the
body of the ``ivr.dispatch`` task) against the shared database. Celery itself is left out on purpose: the broker
only wakes the dispatcher, the database is its work queue, and leaving the broker out keeps the figure about the
dispatcher and not about beat's 5-second cadence (see docs/PERFORMANCE.md for what that cadence costs).

* 2a, pacing off (``UnlimitedTokenBucket``): calls per second placed by two dispatcher processes, against the
  baseline of two processes each running a bare loop of ``twilio.rest.Client().calls.create`` with the same
  parameters to the same simulator.
* 2b, pacing at R per second (the real shared bucket: the database bucket on SQLite, Redis on PostgreSQL, as in
  production): the rate over the window, from the simulator's own record of when each call arrived, and the largest
  number of calls in any one-second window.

The simulator's people never pick up (the call rings out after 30 s), and its status callbacks go to a sink, so
the carrier does identical work for the baseline and the measured run.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import requests

from bench.harness import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PYTHON,
    REDIS_URL,
    Context,
    Figure,
    free_port,
    make_app,
    seed_directory,
    wait_for_port,
)

NAME = "dispatch"
USES_DATABASE = True
MIN_SHARE = 0.8
RATE_TOLERANCE = 0.02
WORKERS = 2


def start_carrier(ctx: Context) -> tuple[str, str]:
    """The simulator (people who never pick up, no CPS limit of its own) and a sink for its callbacks."""
    sink_port, sim_port = free_port(), free_port()
    scenario = ctx.scratch / "never.json"
    scenario.write_text(json.dumps({"seed": 1, "default": "never"}))
    sink = ctx.children.start("sink", [PYTHON, "-m", "bench.procs", "sink", "--port", str(sink_port)])
    sim = ctx.children.start(
        "simulator",
        [
            PYTHON,
            "-m",
            "bench.procs",
            "simulator",
            "--port",
            str(sim_port),
            "--account-sid",
            ACCOUNT_SID,
            "--auth-token",
            AUTH_TOKEN,
            "--scenario",
            str(scenario),
        ],
    )
    wait_for_port(sink_port, proc=sink)
    wait_for_port(sim_port, proc=sim)
    return f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{sink_port}"


def queue_voice_attempts(ctx: Context, people: int) -> None:
    """A voice-only broadcast whose first ladder step has run: ``people`` calls waiting to leave."""
    from sqlalchemy import func, select

    from core import db
    from core.time import utcnow
    from ivr import dispatch, service
    from ivr.models import Attempt

    app = make_app(ctx)
    with app.app_context():
        directory = seed_directory(people)
        now = utcnow()
        broadcast = service.start_broadcast(
            organization_id=directory.organization_id,
            template="earthquake",
            audience={"everyone": True},
            channels=["voice"],
            mode="drill",
            actor="bench",
            now=now,
        )
        db.session.commit()
        while dispatch.advance_ladders(now=now):
            pass
        waiting = db.session.scalar(
            select(func.count()).select_from(Attempt).where(Attempt.broadcast_id == broadcast.id)
        )
        assert waiting == people, (waiting, people)
        db.session.commit()
        db.session.remove()
        db.get_engine().dispose()


def _dispatchers(
    ctx: Context, sim: str, sink: str, *, unpaced: bool, seconds: float, rate: float, start_in: float
):
    backend = "redis" if ctx.database == "postgresql" else "database"
    env = ctx.env(
        twilio_api_base=sim,
        simulator_url=sim,
        public_base_url=sink,
        calls_per_second=str(rate),
        pacing_backend=backend,
        redis_url=REDIS_URL,
    )
    start_at = time.time() + start_in
    args = ["--start-at", str(start_at)] + (["--unpaced"] if unpaced else ["--seconds", str(seconds)])
    procs = [
        ctx.children.start(f"dispatcher{n}", [PYTHON, "-m", "bench.procs", "dispatcher", *args], env)
        for n in range(WORKERS)
    ]
    return start_at, procs


def unpaced(ctx: Context, sim: str, sink: str) -> Figure:
    calls = ctx.size(500, 10_000)
    queue_voice_attempts(ctx, calls)
    # Baseline: the same number of calls from two bare client loops.
    start_at = time.time() + 4.0
    per = calls // WORKERS
    procs = [
        ctx.children.start(
            f"bare{n}",
            [
                PYTHON,
                "-m",
                "bench.procs",
                "bare-calls",
                "--simulator",
                sim,
                "--hooks",
                sink,
                "--account-sid",
                ACCOUNT_SID,
                "--auth-token",
                AUTH_TOKEN,
                "--count",
                str(per if n < WORKERS - 1 else calls - per * (WORKERS - 1)),
                "--first",
                str(1 + n * per),
                "--start-at",
                str(start_at),
            ],
        )
        for n in range(WORKERS)
    ]
    results = [ctx.children.wait_json(p, timeout_s=600) for p in procs]
    # From the first process's start (each waits for start_at, later if its imports took longer) to the last end.
    baseline_rate = calls / (max(r["ended"] for r in results) - min(r["started"] for r in results))
    requests.post(f"{sim}/_sim/reset", timeout=30).raise_for_status()

    start_at, procs = _dispatchers(ctx, sim, sink, unpaced=True, seconds=0, rate=1e9, start_in=4.0)
    results = [ctx.children.wait_json(p, timeout_s=900) for p in procs]
    placed = sum(r["placed"] for r in results)
    measured_rate = placed / (max(r["ended"] for r in results) - min(r["started"] for r in results))
    carrier = requests.get(f"{sim}/_sim/health", timeout=30).json()["calls"]
    requests.post(f"{sim}/_sim/reset", timeout=30).raise_for_status()
    share = measured_rate / baseline_rate
    ok = share >= MIN_SHARE and placed == calls and carrier == calls
    return Figure(
        item="2a",
        name=f"dispatch, pacing off: {calls:,} calls, {WORKERS} worker processes",
        database=ctx.database,
        measured=measured_rate,
        unit="calls/s",
        baseline=baseline_rate,
        baseline_label="bare twilio.rest.Client loops",
        ratio=share,
        ratio_label="measured ÷ baseline",
        target=f"≥ {MIN_SHARE:.0%}",
        passed=ok,
        note=f"placed {placed} (per worker {[r['placed'] for r in results]}), retried "
        f"{sum(r['retried'] for r in results)}, failed {sum(r['failed'] for r in results)}; simulator saw {carrier}",
        extra={"calls": calls, "placed": placed, "carrier_calls": carrier},
    )


def _timestamps(sim: str) -> list[float]:
    calls = requests.get(f"{sim}/_sim/calls", timeout=60).json()
    return sorted(datetime.fromisoformat(c["created_at"].replace("Z", "+00:00")).timestamp() for c in calls)


def max_in_window(times: list[float], width: float = 1.0) -> int:
    """The most calls in any half-open window [t, t + width)."""
    best = 0
    first = 0
    for last, t in enumerate(times):
        while times[first] <= t - width:
            first += 1
        best = max(best, last - first + 1)
    return best


def paced(ctx: Context, sim: str, sink: str, rate: float, window: float) -> Figure:
    from core import db

    waiting = int(rate * (window + 10)) + 20
    queue_voice_attempts(ctx, waiting)
    if ctx.database == "postgresql":
        import redis

        redis.Redis.from_url(REDIS_URL).delete("lifeline:pacing:voice")
    else:
        from sqlalchemy import delete

        from core.pacing import pacing_buckets

        engine = db.make_engine(ctx.url)
        with engine.begin() as conn:
            conn.execute(delete(pacing_buckets))
        engine.dispose()
    _, procs = _dispatchers(ctx, sim, sink, unpaced=False, seconds=window + 3.0, rate=rate, start_in=4.0)
    results = [ctx.children.wait_json(p, timeout_s=window + 120) for p in procs]
    times = _timestamps(sim)
    requests.post(f"{sim}/_sim/reset", timeout=30).raise_for_status()
    start = times[0]
    in_window = [t for t in times if t < start + window]
    measured = len(in_window) / window
    # The carrier sees each call a few milliseconds early or late (HTTP, scheduling), so two calls a token apart
    # can land 0.99 s apart: the burst is counted over a window shortened by the same 2 % as the rate's tolerance.
    # The exact one-second count is reported as well.
    burst = max_in_window(in_window, 1.0 - RATE_TOLERANCE)
    exact = max_in_window(in_window, 1.0)
    allowed_burst = max(1, int(rate))
    off = abs(measured - rate) / rate
    return Figure(
        item="2b",
        name=f"dispatch, paced at {rate:g}/s over {window:g} s, {WORKERS} workers ({'Redis' if ctx.database == 'postgresql' else 'database'} bucket)",
        database=ctx.database,
        measured=measured,
        unit="calls/s",
        baseline=rate,
        baseline_label="R",
        ratio=measured / rate,
        ratio_label="measured ÷ R",
        target=f"within {RATE_TOLERANCE:.0%} of R; ≤ {allowed_burst} in any {1 - RATE_TOLERANCE:g} s",
        passed=off <= RATE_TOLERANCE and burst <= allowed_burst,
        note=f"{len(in_window)} calls in the window, most in any {1 - RATE_TOLERANCE:g} s window: {burst} "
        f"(in any 1 s window: {exact}); "
        f"{len(times)} calls in all; per worker {[r['placed'] for r in results]}",
        extra={
            "calls_in_window": len(in_window),
            "max_per_window": burst,
            "max_per_second": exact,
            "arrivals_s": [round(t - start, 4) for t in times],
        },
    )


def run(ctx: Context) -> list[Figure]:
    sim, sink = start_carrier(ctx)
    figures = [unpaced(ctx, sim, sink)]
    rates: list[Any] = [10.0] if ctx.quick else [1.0, 10.0]
    for rate in rates:
        figures.append(paced(ctx, sim, sink, rate, ctx.size(5, 60)))
    return figures
