"""What keeps "reached exactly once per ladder step" true when workers die or sends are held up: a step is not over
before its own messages have left, a late message keeps its step's full wait, a dead worker's rows go out again
once its lease runs out (and only then), and a long batch renews its lease so the sweeper never hands a row it is
about to place to someone else."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any
from unittest import mock

from sqlalchemy import select, update

from core import db
from core.pacing import UnlimitedTokenBucket
from ivr import dispatch, service
from ivr.models import Attempt, AttemptChannel, AttemptState, Recipient
from tests.ivr.conftest import NOW


class Closed:
    """A pacing bucket that grants nothing."""

    def take(self, channel: str, wanted: int = 1) -> int:
        return 0


def start(world: Any, **kw: Any) -> int:
    kw.setdefault("audience", {"staff_ids": [world.staff[0].id]})
    return service.start_broadcast(
        organization_id=world.org.id, template="earthquake", actor="t", now=NOW, **kw
    ).id


def attempts() -> list[Attempt]:
    return list(
        db.session.scalars(select(Attempt).order_by(Attempt.id).execution_options(populate_existing=True))
    )


def recipient(broadcast_id: int) -> Recipient:
    row = db.session.scalar(
        select(Recipient)
        .where(Recipient.broadcast_id == broadcast_id)
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


def test_the_next_step_waits_for_the_messages_of_this_one_and_keeps_its_wait(
    world: Any, outbound: Any, backend: Any
) -> None:
    broadcast_id = start(world, channels=["sms", "voice"])
    outbound.bucket = Closed()  # nothing may leave yet (a backlog, a carrier limit)
    dispatch.run(out=outbound, now=lambda: NOW)
    (sms,) = attempts()
    assert sms.state is AttemptState.PENDING
    # Five minutes on the SMS has still not left: the call (step 2) does not overtake it.
    dispatch.run(out=outbound, now=lambda: NOW + timedelta(minutes=6))
    assert [a.channel for a in attempts()] == [AttemptChannel.SMS] and backend.calls == []
    # It leaves late; the person then has the step's full five minutes to answer it.
    outbound.bucket = UnlimitedTokenBucket()
    dispatch.run(out=outbound, now=lambda: NOW + timedelta(minutes=7))
    assert len(backend.messages) == 1
    assert recipient(broadcast_id).next_action_at == NOW + timedelta(minutes=12)
    dispatch.run(out=outbound, now=lambda: NOW + timedelta(minutes=11))
    assert backend.calls == []
    dispatch.run(out=outbound, now=lambda: NOW + timedelta(minutes=12))
    assert len(backend.calls) == 1


def test_an_answer_while_the_message_waits_means_it_never_leaves(
    world: Any, outbound: Any, backend: Any
) -> None:
    broadcast_id = start(world, channels=["sms", "voice"])
    outbound.bucket = Closed()
    dispatch.run(out=outbound, now=lambda: NOW)
    service.record_answers(recipient=recipient(broadcast_id), answers={"safety": "1"}, channel="web", now=NOW)
    db.session.commit()
    outbound.bucket = UnlimitedTokenBucket()
    dispatch.run(out=outbound, now=lambda: NOW + timedelta(minutes=10))
    assert backend.messages == [] and backend.calls == []
    assert [a.state for a in attempts()] == [AttemptState.CANCELLED]


def test_a_dead_workers_rows_go_out_once_when_its_lease_runs_out(
    app: Any, world: Any, outbound: Any, backend: Any
) -> None:
    outbound.settings = replace(app.extensions["lifeline.settings"], dispatch_lease_seconds=20)
    start(world, channels=["sms"])
    dispatch.advance_ladders(now=NOW)
    (claimed,) = dispatch._claim_due(
        AttemptChannel.SMS,
        limit=10,
        worker="dead-worker",
        now=NOW,
        lease=dispatch.lease_of(outbound.settings),
    )
    # The worker died right there. Before its lease runs out nobody touches the row…
    assert dispatch.sweep(now=NOW + timedelta(seconds=19)) == (0, 0)
    dispatch.run(out=outbound, now=lambda: NOW + timedelta(seconds=19))
    assert backend.messages == []
    # …then it goes back in the queue, once, and leaves.
    assert dispatch.sweep(now=NOW + timedelta(seconds=21)) == (1, 0)
    dispatch.run(out=outbound, now=lambda: NOW + timedelta(seconds=21))
    assert len(backend.messages) == 1
    assert attempts()[0].id == claimed and attempts()[0].state is AttemptState.IN_PROGRESS


def test_a_row_taken_back_from_a_slow_batch_is_not_placed_by_it(
    app: Any, world: Any, outbound: Any, backend: Any
) -> None:
    lease = 30.0
    outbound.settings = replace(app.extensions["lifeline.settings"], dispatch_lease_seconds=lease)
    start(world, audience={"staff_ids": [p.id for p in world.staff[:3]]}, channels=["sms"])
    dispatch.advance_ladders(now=NOW)
    clock = [1000.0]
    sent: list[str] = []
    place = backend.send_sms

    def slow_send(**kw: Any) -> Any:
        sent.append(kw["to"])
        if len(sent) == 1:
            # The carrier took its time; meanwhile the sweeper gave the last row to another worker.
            clock[0] += lease
            last = max(a.id for a in attempts())
            db.session.execute(update(Attempt).where(Attempt.id == last).values(lease_owner="other-worker"))
            db.session.commit()
        return place(**kw)

    backend.send_sms = slow_send
    with mock.patch.object(dispatch.time, "monotonic", lambda: clock[0]):
        report = dispatch.place_due(out=outbound, now=NOW)
    assert (report.placed, report.cancelled) == (2, 1)
    assert len(sent) == 2
    # The rows still its own had their lease renewed before the next call to the carrier.
    kept = [a for a in attempts() if a.lease_owner == "other-worker"]
    assert len(kept) == 1 and kept[0].state is AttemptState.DIALING
