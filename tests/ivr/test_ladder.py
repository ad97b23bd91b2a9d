"""The channel ladder is a pure function: table-driven."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ivr.ladder import (
    Contact,
    FirstSteps,
    Ladder,
    LadderError,
    PastAttempt,
    Send,
    Step,
    after_failed_call,
    decide,
)

NOW = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)

LADDER = Ladder(
    steps=(
        Step(channels=("sms", "email"), wait_minutes=5, contact=0),
        Step(channels=("voice",), wait_minutes=5, contact=0),
        Step(channels=("voice", "sms"), wait_minutes=5, contact=1),
    ),
    cycles=2,
    cycle_gap_minutes=10,
)
WORK_PHONE = Contact(1, "work_phone")
WORK_MAIL = Contact(2, "work_email")
PRIVATE_PHONE = Contact(3, "private_phone")
FAMILY_PHONE = Contact(4, "family_phone")
EVERYONE = (WORK_PHONE, WORK_MAIL, PRIVATE_PHONE)


@pytest.mark.parametrize(
    ("contacts", "attempts", "position", "channels", "family", "sends", "next_position", "wait"),
    [
        # First step: SMS and e-mail to the first phone / address, then wait 5 min.
        (EVERYONE, (), (0, 0), None, False, {("sms", 1), ("email", 2)}, (0, 1), 5),
        # Then a call to the first phone.
        (EVERYONE, (), (0, 1), None, False, {("voice", 1)}, (0, 2), 5),
        # Then the next contact point; after the last step of a cycle the gap is added.
        (EVERYONE, (), (0, 2), None, False, {("voice", 3), ("sms", 3)}, (1, 0), 15),
        # The last step of the last cycle: wait, then the ladder is over.
        (EVERYONE, (), (1, 2), None, False, {("voice", 3), ("sms", 3)}, (2, 0), 5),
        # Only one phone: the "next contact point" step has nobody and is skipped at once (next cycle).
        ((WORK_PHONE, WORK_MAIL), (), (0, 2), None, False, {("sms", 1), ("email", 2)}, (1, 1), 5),
        # Voice not chosen for this broadcast: step 1 is skipped, step 2 sends SMS only.
        (EVERYONE, (), (0, 1), ("sms", "email"), False, {("sms", 3)}, (1, 0), 15),
        # Family phones are used only when asked (real broadcasts, or drills that ask).
        ((WORK_PHONE, FAMILY_PHONE), (), (0, 2), None, False, {("sms", 1)}, (1, 1), 5),
        ((WORK_PHONE, FAMILY_PHONE), (), (0, 2), None, True, {("voice", 4), ("sms", 4)}, (1, 0), 15),
        # A number that failed for good on voice is not called again; SMS to it still goes.
        (
            EVERYONE,
            (PastAttempt("voice", 1, 0, 1, failed_for_good=True),),
            (1, 1),
            None,
            False,
            None,
            None,
            None,
        ),
        # Re-running a step that already sent (a retried dispatcher) sends only what is missing.
        (EVERYONE, (PastAttempt("sms", 1, 0, 0),), (0, 0), None, False, {("email", 2)}, (0, 1), 5),
    ],
)
def test_next_step(contacts, attempts, position, channels, family, sends, next_position, wait):
    kwargs = {"channels": channels} if channels else {}
    decision = decide(
        LADDER,
        contacts,
        attempts,
        cycle=position[0],
        step=position[1],
        now=NOW,
        include_family=family,
        **kwargs,
    )
    if sends is None:
        # The dead voice number is skipped: step 1 of cycle 1 has no one, step 2 reaches the private phone.
        assert set(decision.sends) == {Send("voice", 3), Send("sms", 3)}
        return
    assert {(s.channel, s.contact_id) for s in decision.sends} == sends
    assert (decision.cycle, decision.step) == next_position
    assert decision.next_action_at == NOW + timedelta(minutes=wait)


@pytest.mark.parametrize(
    ("contacts", "position"),
    [
        ((), (0, 0)),  # nobody to reach at all
        (EVERYONE, (2, 0)),  # both cycles done
    ],
)
def test_ladder_ends(contacts, position):
    decision = decide(LADDER, contacts, (), cycle=position[0], step=position[1], now=NOW)
    assert decision.finished
    assert decision.sends == ()


def test_every_contact_point_step_reaches_all_of_them():
    check = Ladder(steps=(Step(channels=("sms", "email"), wait_minutes=60, contact=None),))
    decision = decide(check, (*EVERYONE, Contact(5, "private_email")), (), cycle=0, step=0, now=NOW)
    assert {(s.channel, s.contact_id) for s in decision.sends} == {
        ("sms", 1),
        ("sms", 3),
        ("email", 2),
        ("email", 5),
    }


@pytest.mark.parametrize(
    ("next_action_in", "expected_in"),
    [(5, 1), (0.5, 0.5), (None, None)],
)
def test_failed_call_moves_the_ladder_on_sooner_never_later(next_action_in, expected_in):
    planned = None if next_action_in is None else NOW + timedelta(minutes=next_action_in)
    got = after_failed_call(LADDER, now=NOW, next_action_at=planned)
    assert got == (None if expected_in is None else NOW + timedelta(minutes=expected_in))


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "ladder.steps"),
        ({"steps": [{"channels": ["fax"]}]}, "ladder.steps[0].channels"),
        ({"steps": [{"channels": ["sms"], "wait_minutes": -1}]}, "ladder.steps[0].wait_minutes"),
        ({"steps": [{"channels": ["sms"]}], "cycles": 9}, "ladder.cycles"),
        ({"steps": [{"channels": ["sms"], "contact": "first"}]}, "ladder.steps[0].contact"),
    ],
)
def test_invalid_ladder_says_where(data, field):
    with pytest.raises(LadderError) as info:
        Ladder.from_dict(data)
    assert info.value.field == field


def test_ladder_round_trips():
    assert Ladder.from_dict(LADDER.as_dict()) == LADDER


CHECK = Ladder(steps=(Step(channels=("sms", "email"), wait_minutes=1440, contact=None),))
PRIVATE_MAIL = Contact(5, "private_email")
FAMILY_MAIL = Contact(6, "family_email")


@pytest.mark.parametrize(
    ("ladder", "contacts", "channels", "family", "sends", "next_position", "wait"),
    [
        # The usual person: SMS and e-mail to the first phone / address, then the call step in 5 min.
        (LADDER, (WORK_PHONE, WORK_MAIL), None, False, {("sms", 1), ("email", 2)}, (0, 1), 5),
        # Only an e-mail address: e-mail alone; the next step (a call) comes in 5 min and will skip itself.
        (LADDER, (WORK_MAIL,), None, False, {("email", 2)}, (0, 1), 5),
        # Only a phone: SMS alone.
        (LADDER, (PRIVATE_PHONE,), None, False, {("sms", 3)}, (0, 1), 5),
        # Voice only for this broadcast: the first step has nothing to send and the call step runs at once.
        (LADDER, (WORK_PHONE, WORK_MAIL), ("voice",), False, {("voice", 1)}, (0, 2), 5),
        # E-mail only, and no address: nothing in any step of either cycle — the ladder is over at once.
        (LADDER, (WORK_PHONE,), ("email",), False, set(), (2, 0), None),
        # Nobody to reach at all.
        (LADDER, (), None, False, set(), (2, 0), None),
        # A drill does not reach family contact points; someone with only those is over at once.
        (LADDER, (FAMILY_PHONE, FAMILY_MAIL), None, False, set(), (2, 0), None),
        (LADDER, (FAMILY_PHONE, WORK_MAIL), None, False, {("email", 2)}, (0, 1), 5),
        # A real broadcast (or a drill that asks) does.
        (LADDER, (FAMILY_PHONE, FAMILY_MAIL), None, True, {("sms", 4), ("email", 6)}, (0, 1), 5),
        # The contact check writes to every phone and address (never family in a drill), then waits a day.
        (
            CHECK,
            (WORK_PHONE, WORK_MAIL, PRIVATE_PHONE, PRIVATE_MAIL, FAMILY_PHONE),
            None,
            False,
            {("sms", 1), ("sms", 3), ("email", 2), ("email", 5)},
            (1, 0),
            1440,
        ),
    ],
)
def test_first_step(ladder, contacts, channels, family, sends, next_position, wait):
    kwargs = {"channels": channels} if channels else {}
    first = FirstSteps(ladder, now=NOW, include_family=family, **kwargs)
    # Sends name positions in the person's list of contact points; start_broadcast maps them to their ids.
    decision = first.pattern([c.kind for c in contacts])
    assert {(s.channel, contacts[s.contact_id].id) for s in decision.sends} == sends
    assert (decision.cycle, decision.step) == next_position
    assert decision.next_action_at == (None if wait is None else NOW + timedelta(minutes=wait))
    assert decision.finished is (wait is None)
    # Exactly what the dispatcher's first run decides for someone with nothing sent yet.
    dispatcher = decide(ladder, contacts, (), cycle=0, step=0, now=NOW, include_family=family, **kwargs)
    position = {c.id: index for index, c in enumerate(contacts)}
    assert decision == replace(
        dispatcher, sends=tuple(Send(s.channel, position[s.contact_id]) for s in dispatcher.sends)
    )


def test_first_steps_are_decided_once_per_pattern_of_contact_kinds():
    first = FirstSteps(LADDER, now=NOW)
    taro = first.pattern(["work_phone", "work_email"])
    # Another person with the same kinds, in the same order, gets the very same decision (not decided again).
    assert first.pattern(("work_phone", "work_email")) is taro
    # The same kinds in the other order are another pattern (the order picks "the first phone").
    jiro = first.pattern(["work_email", "work_phone"])
    assert jiro is not taro
    assert taro.sends == (Send("sms", 0), Send("email", 1))
    assert {(s.channel, s.contact_id) for s in jiro.sends} == {("sms", 1), ("email", 0)}
