"""Starting a broadcast takes everyone's first ladder step itself: the same rows the dispatcher's first run wrote.

The reference is the path the dispatcher used to take for every new person, and still takes for people added to a
running broadcast: recipients written ``pending``, then ``advance_ladders`` runs their first step. Both are run
on the same organization and compared person by person.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from core import db
from core.crypto import encrypt
from core.directory.models import ContactKind, ContactPoint
from ivr import dispatch, service
from ivr.models import (
    Attempt,
    AttemptChannel,
    AttemptState,
    Broadcast,
    BroadcastState,
    Recipient,
    RecipientState,
)
from tests.factories import make_staff
from tests.ivr.conftest import NOW

# (kind, value) in the person's order; private and family values are stored encrypted, as in production.
PEOPLE: list[list[tuple[ContactKind, str]]] = [
    [(ContactKind.WORK_EMAIL, "only-mail@example.com")],
    [(ContactKind.PRIVATE_PHONE, "+819000000201")],
    [],  # nobody to reach
    [(ContactKind.FAMILY_PHONE, "+819000000203"), (ContactKind.FAMILY_EMAIL, "family203@example.com")],
    [(ContactKind.FAMILY_PHONE, "+819000000204"), (ContactKind.WORK_EMAIL, "p204@example.com")],
    # The e-mail first: "the first phone" is still the phone.
    [
        (ContactKind.WORK_EMAIL, "p205@example.com"),
        (ContactKind.WORK_PHONE, "+819000000205"),
        (ContactKind.PRIVATE_PHONE, "+819000000215"),
        (ContactKind.PRIVATE_EMAIL, "private205@example.com"),
    ],
    [(ContactKind.WORK_PHONE, "+819000000206"), (ContactKind.PRIVATE_PHONE, "+819000000216")],
]


@pytest.fixture()
def varied(world: Any, app: Any) -> Any:
    """The world's eight people (a work phone and e-mail each) plus people with every other kind of list."""
    key = app.extensions["lifeline.settings"].encryption_key
    for contacts in PEOPLE:
        person = make_staff(world.org, site=world.sites["TYO"], home_prefecture="13")
        for position, (kind, value) in enumerate(contacts):
            private = kind.is_private
            person.contacts.append(
                ContactPoint(
                    kind=kind,
                    position=position,
                    value=None if private else value,
                    value_encrypted=encrypt(value, key) if private else None,
                )
            )
        world.staff.append(person)
    db.session.flush()
    return world


def start(world: Any, **kw: Any) -> Broadcast:
    return service.start_broadcast(
        organization_id=world.org.id,
        template=kw.pop("template", "earthquake"),
        audience=kw.pop("audience", {"everyone": True}),
        actor="tester",
        now=kw.pop("now", NOW),
        **kw,
    )


def start_through_the_dispatcher(world: Any, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> Broadcast:
    """The old path: recipients written pending, the dispatcher's ladder step writes the first attempts."""
    real = service._insert_recipients

    def pending_only(*args: Any, first_steps: Any = None, **kwargs: Any) -> int:
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(service, "_insert_recipients", pending_only)
        broadcast = start(world, **kw)
    assert {r.state for r in recipients(broadcast)} == {RecipientState.PENDING}
    assert attempts_of(broadcast) == []
    db.session.commit()
    while dispatch.advance_ladders(now=NOW):
        pass
    return broadcast


def recipients(broadcast: Broadcast) -> list[Recipient]:
    db.session.expire_all()  # the dispatcher writes with Core statements: read what is in the database
    return list(db.session.scalars(select(Recipient).where(Recipient.broadcast_id == broadcast.id)))


def attempts_of(broadcast: Broadcast) -> list[Attempt]:
    return list(
        db.session.scalars(select(Attempt).where(Attempt.broadcast_id == broadcast.id).order_by(Attempt.id))
    )


def picture(broadcast: Broadcast) -> dict[int, tuple[Any, ...]]:
    """Per person: where their ladder stands and every attempt written for them (ids aside)."""
    by_recipient: dict[int, list[tuple[Any, ...]]] = {}
    for a in attempts_of(broadcast):
        by_recipient.setdefault(a.recipient_id, []).append(
            (
                a.channel,
                a.contact_point_id,
                a.cycle,
                a.step,
                a.purpose,
                a.state,
                a.due_at,
                a.tries,
                a.created_at,
                a.updated_at,
                a.to_masked,
                a.body,
                a.provider_sid,
            )
        )
    return {
        r.staff_id: (
            r.state,
            r.cycle,
            r.step,
            r.next_action_at,
            r.last_attempt_id,
            sorted(by_recipient.get(r.id, []), key=repr),
        )
        for r in recipients(broadcast)
    }


@pytest.mark.parametrize(
    "options",
    [
        {"mode": "drill"},  # earthquake drill: SMS + e-mail to the first phone / address; families left out
        {},  # a real emergency (the default) pages the families too
        {"mode": "drill", "include_family": True},
        # The SMS / e-mail step has nobody and the call step runs at once.
        {"mode": "drill", "channels": ["voice"]},
        {"channels": ["email"]},  # people with no address are over at once
        {"template": "contact_check", "mode": "drill"},  # every phone and address, a day to answer
        {"template": "infectious_disease"},
    ],
    ids=repr,
)
def test_first_attempts_are_what_the_dispatcher_would_have_written(varied, monkeypatch, options):
    reference = start_through_the_dispatcher(varied, monkeypatch, **options)
    broadcast = start(varied, **options)
    db.session.commit()
    # Right after the commit, before any dispatcher run.
    assert picture(broadcast) == picture(reference)
    assert len(picture(broadcast)) == len(varied.staff)
    # And the dispatcher finds nothing left to do for this step.
    assert dispatch.advance_ladders(now=NOW) == 0
    assert picture(broadcast) == picture(reference)


def test_the_first_messages_exist_at_commit_and_the_dispatcher_only_places_them(varied, outbound, backend):
    broadcast = start(varied, mode="drill")
    db.session.commit()
    rows = {r.staff_id: r for r in recipients(broadcast)}
    sent = attempts_of(broadcast)
    # The eight people with a work phone and e-mail: an SMS and an e-mail each, waiting for a worker.
    for person in varied.staff[:8]:
        mine = [a for a in sent if a.recipient_id == rows[person.id].id]
        assert sorted(a.channel for a in mine) == [AttemptChannel.EMAIL, AttemptChannel.SMS]
        assert {a.contact_point_id for a in mine} == {c.id for c in person.contacts}
        assert all(a.state is AttemptState.PENDING and a.due_at == NOW for a in mine)
        assert rows[person.id].state is RecipientState.CONTACTING
    # Nobody to reach, or only family contact points in a drill: unreached from the start, nothing written.
    for person in (varied.staff[10], varied.staff[11]):
        assert rows[person.id].state is RecipientState.UNREACHED and rows[person.id].next_action_at is None
        assert not [a for a in sent if a.recipient_id == rows[person.id].id]
    family = {c.id for p in varied.staff for c in p.contacts if c.kind.value.startswith("family")}
    assert family and not family & {a.contact_point_id for a in sent}

    dispatch.run(out=outbound, now=lambda: NOW)
    # 8 work phones, one private phone, the phone of the person whose e-mail comes first, one more work phone.
    assert len(backend.messages) == 11
    assert len(outbound.mailer.outbox) == 8 + 3  # the eight, plus three people with an address of their own
    assert db.session.scalar(select(func.count()).select_from(Attempt)) == len(sent)

    # Five minutes later the dispatcher runs the next step (the call) as before.
    later = NOW + timedelta(minutes=5)
    assert dispatch.advance_ladders(now=later) == len(varied.staff) - 2
    calls = [a for a in attempts_of(broadcast) if a.channel is AttemptChannel.VOICE]
    assert len(calls) == 8 + 3 and {(a.cycle, a.step) for a in calls} == {(0, 1)}


def test_people_added_later_still_go_through_the_dispatcher(varied, monkeypatch):
    first = varied.staff[:3]
    broadcast = start(varied, audience={"staff_ids": [p.id for p in first]})
    db.session.commit()
    added = service.widen_broadcast(
        broadcast_id=broadcast.id, audience={"everyone": True}, actor="tester", now=NOW
    )
    db.session.commit()
    assert added == len(varied.staff) - 3
    pending = [r for r in recipients(broadcast) if r.state is RecipientState.PENDING]
    assert len(pending) == added
    while dispatch.advance_ladders(now=NOW):
        pass
    reference = start_through_the_dispatcher(varied, monkeypatch)
    assert picture(broadcast) == picture(reference)


def test_resend_and_invitations_still_queue_their_own_messages(varied):
    broadcast = start(varied)
    db.session.commit()
    ladder = len(attempts_of(broadcast))
    queued = service.resend_unanswered(broadcast_id=broadcast.id, actor="tester", now=NOW)
    db.session.commit()
    assert queued > 0
    resent = [a for a in attempts_of(broadcast) if a.purpose == "resend"]
    assert len(resent) == queued and len(attempts_of(broadcast)) == ladder + queued
    assert {(a.cycle, a.step) for a in resent} == {(-1, -1)}
    assert service.get_broadcast(broadcast_id=broadcast.id).state is BroadcastState.SENDING
