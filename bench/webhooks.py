"""3. Webhooks under gunicorn: answer recording and status callbacks vs a minimal Flask endpoint.

The application (``wsgi:app``, real signature check, idempotency, database write) and ``bench.minimal_app`` (same
paths, same TwiML, nothing else) are both served by gunicorn with the same options (``bench.web.GUNICORN``) and
loaded by the same generator from a separate process:

* throughput: as many requests as the server answers over a fixed window, 16 keep-alive connections;
* latency: 500 requests/s at a fixed arrival rate, p99 measured from when each request was due;
* afterwards every answer that got a 2xx is looked for in the database (one current answer per person).

Every request goes to a different call (a different attempt and person), so each one is a real write.
"""

from __future__ import annotations

from typing import Any

from bench.harness import Context, Figure, free_port, make_app, seed_directory
from bench.web import gunicorn, load, signed

NAME = "webhooks"
USES_DATABASE = True
MIN_SHARE = 0.5
RATE = 500
P99_MS = 50.0
CONNECTIONS = 16


def placed_calls(ctx: Context, people: int) -> tuple[int, list[tuple[int, str]]]:
    """A voice broadcast whose calls are all in progress: (broadcast id, [(attempt id, call SID)])."""
    from sqlalchemy import bindparam, select, update

    from core import db
    from core.time import utcnow
    from ivr import dispatch, service
    from ivr.models import Attempt, AttemptState

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
        ids = list(db.session.scalars(select(Attempt.id).where(Attempt.broadcast_id == broadcast.id)))
        db.session.execute(
            update(Attempt)
            .where(Attempt.broadcast_id == broadcast.id)
            .values(state=AttemptState.IN_PROGRESS, provider_status="queued", placed_at=now)
        )
        calls = [(attempt_id, f"CA{attempt_id:032x}") for attempt_id in ids]
        # A SID per call, as the dispatcher would have recorded it.
        db.session.execute(
            update(Attempt.__table__)
            .where(Attempt.__table__.c.id == bindparam("b_id"))
            .values(provider_sid=bindparam("b_sid")),
            [{"b_id": a, "b_sid": sid} for a, sid in calls],
        )
        db.session.commit()
        broadcast_id = broadcast.id
        db.session.remove()
        db.get_engine().dispose()
    return broadcast_id, calls


def _params(sid: str, **extra: str) -> dict[str, str]:
    base = {
        "AccountSid": "AC00000000000000000000000000000000",
        "ApiVersion": "2010-04-01",
        "CallSid": sid,
        "Called": "+819000000001",
        "Caller": "+15550100100",
        "Direction": "outbound-api",
        "From": "+15550100100",
        "To": "+819000000001",
    }
    base.update(extra)
    return base


def answer_request(base_url: str, call: tuple[int, str]) -> dict[str, Any]:
    attempt_id, sid = call
    return signed(
        base_url,
        f"/hooks/ivr/voice/{attempt_id}/q/0/confirm/1",
        _params(sid, CallStatus="in-progress", Digits="1", AnsweredBy="human"),
    )


def status_request(base_url: str, call: tuple[int, str]) -> dict[str, Any]:
    attempt_id, sid = call
    return signed(
        base_url,
        f"/hooks/ivr/voice/{attempt_id}/status",
        _params(sid, CallStatus="ringing", CallbackSource="call-progress-events", SequenceNumber="1"),
    )


def answers_in_database(ctx: Context, broadcast_id: int, attempt_ids: set[int]) -> int:
    from sqlalchemy import func, select

    from core import db
    from ivr.models import Answer

    engine = db.make_engine(ctx.url)
    with engine.connect() as conn:
        found = set(
            conn.execute(
                select(Answer.attempt_id)
                .where(
                    Answer.broadcast_id == broadcast_id, Answer.current.is_(True), Answer.question_key != ""
                )
                .group_by(Answer.attempt_id)
                .having(func.count() >= 1)
            ).scalars()
        )
    engine.dispose()
    return len(attempt_ids & found)


def run(ctx: Context) -> list[Figure]:
    import json

    window = ctx.size(2, 10)
    latency_window = ctx.size(2, 20)
    people = ctx.size(4_000, 30_000)
    broadcast_id, calls = placed_calls(ctx, people)

    port = free_port()
    # Signatures are checked against the public URL: here, the address gunicorn listens on.
    app_url = gunicorn(
        ctx, "gunicorn-app", "wsgi:app", ctx.env(public_base_url=f"http://127.0.0.1:{port}"), port
    )

    # The TwiML the application answers a confirmed key press with, for the minimal app to return verbatim.
    import requests

    first, calls = calls[0], calls[1:]
    sample = answer_request(app_url, first)
    response = requests.post(
        app_url + sample["path"], data=sample["body"], headers=sample["headers"], timeout=30
    )
    response.raise_for_status()
    bodies = ctx.scratch / "twiml.json"
    bodies.write_text(json.dumps({"confirm": response.text}))
    minimal_url = gunicorn(ctx, "gunicorn-minimal", "bench.minimal_app:app", {"BENCH_TWIML": str(bodies)})

    figures: list[Figure] = []
    answered_ok: set[int] = set()
    cursor = 0

    def take(n: int) -> list[tuple[int, str]]:
        nonlocal cursor
        chunk = calls[cursor : cursor + n]
        cursor += n
        return chunk

    for label, build, item in (
        ("answer recording", answer_request, "3a"),
        ("status callback", status_request, "3b"),
    ):
        closed = {"mode": "closed", "connections": CONNECTIONS, "seconds": window, "warmup_s": 1}
        # The minimal app keeps nothing, so its requests may repeat: enough for 8,000 req/s over the window.
        repeated = (calls * (1 + 8000 * (window + 1) // len(calls)))[: 8000 * (window + 1)]
        baseline = load(ctx, minimal_url, [build(minimal_url, c) for c in repeated], **closed)
        batch = calls[cursor:] if build is answer_request else calls
        measured = load(ctx, app_url, [build(app_url, c) for c in batch[: 3000 * (window + 1)]], **closed)
        if build is answer_request:
            answered_ok |= {batch[i][0] for i in measured["ok_indexes"]}
            cursor += measured["issued"]
        share = measured["rps"] / baseline["rps"] if baseline["rps"] else 0.0
        figures.append(
            Figure(
                item=item,
                name=f"webhook throughput, {label} (gunicorn, {CONNECTIONS} connections)",
                database=ctx.database,
                measured=measured["rps"],
                unit="req/s",
                baseline=baseline["rps"],
                baseline_label="minimal Flask endpoint",
                ratio=share,
                ratio_label="measured ÷ baseline",
                target=f"≥ {MIN_SHARE:.0%}, 0 errors",
                passed=share >= MIN_SHARE and measured["errors"] == 0,
                note=f"{measured['requests']} requests in {measured['seconds']:.1f} s, errors {measured['errors']}, "
                f"p50 {measured['p50_ms']:.1f} ms, p99 {measured['p99_ms']:.1f} ms",
                extra={
                    "measured": measured | {"ok_indexes": None},
                    "baseline": baseline | {"ok_indexes": None},
                },
            )
        )
        opened = {"mode": "open", "rate": RATE, "seconds": latency_window, "grace_s": ctx.size(3, 30)}
        need = RATE * latency_window
        base_open = load(ctx, minimal_url, [build(minimal_url, c) for c in calls[:need]], **opened)
        batch = take(need) if build is answer_request else calls[-need:]
        if len(batch) < need:
            raise RuntimeError(f"not enough calls for {need} distinct answers; raise the number of people")
        at_rate = load(ctx, app_url, [build(app_url, c) for c in batch], **opened)
        if build is answer_request:
            answered_ok |= {batch[i][0] for i in at_rate["ok_indexes"]}
        figures.append(
            Figure(
                item=item,
                name=f"webhook p99 at {RATE} req/s, {label}",
                database=ctx.database,
                measured=at_rate["p99_ms"],
                unit="ms",
                baseline=base_open["p99_ms"],
                baseline_label="minimal endpoint at the same rate",
                ratio=at_rate["p99_ms"] / base_open["p99_ms"] if base_open["p99_ms"] else None,
                ratio_label="measured ÷ baseline",
                target=f"p99 < {P99_MS:g} ms, 0 errors",
                passed=at_rate["p99_ms"] < P99_MS and at_rate["errors"] == 0,
                note=f"{at_rate['requests']} requests over {at_rate['seconds']:.1f} s, errors {at_rate['errors']}, "
                f"p50 {at_rate['p50_ms']:.1f} ms, max {at_rate['max_ms']:.0f} ms",
                extra={
                    "measured": at_rate | {"ok_indexes": None},
                    "baseline": base_open | {"ok_indexes": None},
                },
            )
        )
    found = answers_in_database(ctx, broadcast_id, answered_ok)
    figures.append(
        Figure(
            item="3c",
            name="answers acknowledged (2xx) and found in the database afterwards",
            database=ctx.database,
            measured=found,
            unit="answers",
            baseline=len(answered_ok),
            baseline_label="acknowledged",
            ratio=found / len(answered_ok) if answered_ok else None,
            ratio_label="found ÷ acknowledged",
            target="0 lost",
            passed=found == len(answered_ok) and bool(answered_ok),
            note=f"{len(answered_ok) - found} lost",
        )
    )
    return figures
