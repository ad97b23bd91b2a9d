"""8. Memory: one worker process dispatching a whole 100,000-person broadcast (voice) stays under 300 MB RSS.

The worker is ``bench.procs dispatcher`` (the dispatcher loop of the ``ivr.dispatch`` task) in its own process:
it runs every ladder step that is due (100,000 people) and places every call, pacing off. The carrier is a null
one inside the worker that takes each call at once and keeps nothing, so the run takes minutes rather than the
half hour the simulator would need for 100,000 calls, and what is measured is the worker, not the network.
RSS is sampled every 0.2 s (peak reported); baseline: the same worker's RSS once the app is built, before work.
"""

from __future__ import annotations

import time

from bench.harness import PYTHON, Context, Figure, make_app, seed_directory

NAME = "worker_memory"
USES_DATABASE = True
MAX_MB = 300.0


def run(ctx: Context) -> list[Figure]:
    from core import db
    from core.time import utcnow
    from ivr import service

    people = ctx.size(5_000, 100_000)
    app = make_app(ctx)
    with app.app_context():
        directory = seed_directory(people)
        service.start_broadcast(
            organization_id=directory.organization_id,
            template="earthquake",
            audience={"everyone": True},
            channels=["voice"],
            mode="drill",
            actor="bench",
            now=utcnow(),
        )
        db.session.commit()
        db.session.remove()
        db.get_engine().dispose()
    start_at = time.time() + 4.0
    proc = ctx.children.start(
        "worker",
        [
            PYTHON,
            "-m",
            "bench.procs",
            "dispatcher",
            "--unpaced",
            "--null-carrier",
            "--start-at",
            str(start_at),
        ],
        ctx.env(),
    )
    result = ctx.children.wait_json(proc, timeout_s=3600)
    peak, idle = result["peak_rss_mb"], result["idle_rss_mb"]
    return [
        Figure(
            item="8",
            name=f"worker RSS dispatching a {people:,}-person broadcast ({result['placed']:,} calls)",
            database=ctx.database,
            measured=peak,
            unit="MB",
            baseline=idle,
            baseline_label="the same worker before work",
            ratio=peak / idle,
            ratio_label="peak ÷ baseline",
            target=f"< {MAX_MB:g} MB",
            # Every person called at least once; a slow run may reach the ladder's second cycle (5 min later) too.
            passed=peak < MAX_MB and result["placed"] >= people,
            note=f"{result['placed']:,} calls placed, {result['advanced']:,} ladder steps in "
            f"{result['ended'] - result['started']:.0f} s",
        )
    ]
