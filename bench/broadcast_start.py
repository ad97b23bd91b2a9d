"""1. Broadcast start: recipient rows and first attempts for N people vs a bare Core bulk insert of the same rows.

Measured: ``ivr.service.start_broadcast`` (the broadcast, one recipient per person and each person's first ladder
step — SMS and e-mail for the earthquake template — committed together) followed by whatever ladder work the
dispatcher still finds due at that moment (``ivr.dispatch.advance_ladders`` until nobody is due: since the first
step is taken by ``start_broadcast``, normally none). Baseline: the very same rows, read back, inserted again
under new ids with ``connection.execute(insert(table), rows)`` in one transaction.
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import Context, Figure, analyze, make_app, seed_directory

NAME = "broadcast_start"
USES_DATABASE = True
TARGET_RATIO = 2.0


def _copy_rows(table: Any, where: Any) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from core import db

    return [dict(row._mapping) for row in db.session.execute(select(table).where(where))]


def run(ctx: Context) -> list[Figure]:
    from sqlalchemy import func, insert, select

    from core import db
    from core.time import utcnow
    from ivr import dispatch, service
    from ivr.models import Attempt, Broadcast, Recipient

    people = ctx.size(5_000, 100_000)
    app = make_app(ctx)
    with app.app_context():
        directory = seed_directory(people)
        analyze(ctx.url)
        now = utcnow()

        started = time.perf_counter()
        broadcast = service.start_broadcast(
            organization_id=directory.organization_id,
            template="earthquake",
            audience={"everyone": True},
            mode="drill",
            actor="bench",
            now=now,
        )
        db.session.commit()
        recipients_done = time.perf_counter()
        rounds = 0
        while dispatch.advance_ladders(now=now):
            rounds += 1
        measured = time.perf_counter() - started
        recipients_s = recipients_done - started
        ladder_s = measured - recipients_s

        recipients = _copy_rows(Recipient.__table__, Recipient.broadcast_id == broadcast.id)
        attempts = _copy_rows(Attempt.__table__, Attempt.broadcast_id == broadcast.id)
        broadcast_row = _copy_rows(Broadcast.__table__, Broadcast.id == broadcast.id)[0]
        db.session.commit()
        assert len(recipients) == people, (len(recipients), people)
        assert len(attempts) == 2 * people, (len(attempts), people)  # everyone has a work phone and e-mail

        # The same rows again under fresh ids (tokens must stay unique); only the insert itself is timed.
        offset_r = int(db.session.scalar(select(func.max(Recipient.id))) or 0) + 1
        offset_a = int(db.session.scalar(select(func.max(Attempt.id))) or 0) + 1
        new_broadcast = int(db.session.scalar(select(func.max(Broadcast.id))) or 0) + 1
        db.session.commit()
        broadcast_row["id"] = new_broadcast
        for row in recipients:
            row["id"] += offset_r
            row["broadcast_id"] = new_broadcast
            row["token"] += "~"
        for row in attempts:
            row["id"] += offset_a
            row["recipient_id"] += offset_r
            row["broadcast_id"] = new_broadcast
        engine = db.get_engine()
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(insert(Broadcast.__table__), [broadcast_row])
            conn.execute(insert(Recipient.__table__), recipients)
            conn.execute(insert(Attempt.__table__), attempts)
        baseline = time.perf_counter() - started
    ratio = measured / baseline
    return [
        Figure(
            item="1",
            name=f"broadcast start: {people:,} recipients + {len(attempts):,} first attempts",
            database=ctx.database,
            measured=measured,
            unit="s",
            baseline=baseline,
            baseline_label="Core bulk insert of the same rows",
            ratio=ratio,
            ratio_label="measured ÷ baseline",
            target=f"≤ {TARGET_RATIO:g}×",
            passed=ratio <= TARGET_RATIO,
            note=(
                f"start_broadcast (recipients + first attempts) {recipients_s:.2f} s"
                f" + remaining ladder work {ladder_s:.2f} s ({rounds} dispatcher rounds)"
            ),
            extra={
                "people": people,
                "attempts": len(attempts),
                "recipients_s": recipients_s,
                "ladder_s": ladder_s,
                "ladder_rounds": rounds,
            },
        )
    ]
