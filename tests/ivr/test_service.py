"""Starting, answering and aggregating broadcasts (service layer, real database)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core import db
from core.auth.models import Role
from core.auth.service import principal_for
from core.errors import ValidationError
from ivr import service
from ivr.models import (
    Answer,
    AnswerChannel,
    Attempt,
    Broadcast,
    BroadcastState,
    BroadcastTemplate,
    Recipient,
    RecipientState,
)
from tests.factories import make_user
from tests.ivr.conftest import NOW


def start(world, audience=None, **kw):
    kw.setdefault("now", NOW)
    return service.start_broadcast(
        organization_id=world.org.id,
        template=kw.pop("template", "earthquake"),
        audience=audience or {"everyone": True},
        actor="tester",
        **kw,
    )


def recipients_of(broadcast):
    return list(db.session.scalars(select(Recipient).where(Recipient.broadcast_id == broadcast.id)))


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def test_start_writes_one_recipient_per_person_with_unguessable_tokens(world):
    broadcast = start(world)
    rows = recipients_of(broadcast)
    assert broadcast.state is BroadcastState.SENDING
    assert sorted(r.staff_id for r in rows) == sorted(s.id for s in world.staff)
    assert len({r.token for r in rows}) == len(rows)
    assert all(len(r.token) >= 22 for r in rows)  # 16 random bytes, URL-safe
    # Each person's first ladder step is taken with the recipient row (the dispatcher only places the messages).
    first_wait = timedelta(minutes=service.snapshot(broadcast).ladder.steps[0].wait_minutes)
    assert all(r.state is RecipientState.CONTACTING and (r.cycle, r.step) == (0, 1) for r in rows)
    assert all(r.next_action_at == NOW + first_wait for r in rows)
    # Denormalised for GROUP BY: the site's prefecture and the home prefecture.
    by_staff = {r.staff_id: r for r in rows}
    osaka_from_tokyo = world.staff[7]
    assert (by_staff[osaka_from_tokyo.id].prefecture, by_staff[osaka_from_tokyo.id].home_prefecture) == (
        "27",
        "13",
    )
    assert broadcast.template["key"] == "earthquake"  # a snapshot, independent of later template edits


def test_failed_insert_midway_stores_nothing_and_sends_nothing(world, monkeypatch):
    db.session.commit()  # the directory is there before the broadcast starts
    kicked = []
    monkeypatch.setattr("ivr.tasks.kick_dispatcher", kicked.append)
    monkeypatch.setattr(service, "INSERT_CHUNK", 3)
    real_flush = service._flush_recipients
    chunks = []

    def flaky(rows, *rest):
        chunks.append(len(rows))
        if len(chunks) == 2:
            raise RuntimeError("disk full")
        return real_flush(rows, *rest)

    monkeypatch.setattr(service, "_flush_recipients", flaky)
    with pytest.raises(RuntimeError):
        start(world)
    db.session.rollback()  # what the request / task edge does
    assert chunks == [3, 3]  # the first chunk had been written before the failure
    assert count(Broadcast) == 0 and count(Recipient) == 0 and count(Attempt) == 0
    db.session.commit()
    assert kicked == []

    monkeypatch.setattr(service, "_flush_recipients", real_flush)
    broadcast = start(world)
    assert kicked == []  # nothing leaves before the commit
    db.session.commit()
    assert kicked == [broadcast.id]
    assert count(Recipient) == 8


@pytest.mark.parametrize(
    ("audience", "people"),
    [
        ({"sites": ["TYO"]}, {0, 1, 2, 3}),
        ({"departments": ["Sales"]}, {0, 1, 4, 7}),  # sub-department "Sales East" included
        ({"departments": ["Sales East"]}, {1, 7}),
        ({"prefectures": ["13"]}, {0, 1, 2, 3, 7}),  # work in Tokyo or live there
        ({"home_prefectures": ["27"]}, {4, 6}),
        ({"work_prefectures": ["27"]}, {4, 5, 6, 7}),
        ({"sites": ["OSA"], "prefectures": ["11"]}, {1, 4, 5, 6, 7}),
    ],
)
def test_audience(world, audience, people):
    broadcast = start(world, audience)
    expected = {world.staff[i].id for i in people}
    assert {r.staff_id for r in recipients_of(broadcast)} == expected


def test_audience_by_explicit_list_and_from_a_jma_audience_object(world):
    class JmaAudience:  # what ivr.jma.rules hands over: everyone / prefectures / sites
        everyone = False
        prefectures = frozenset({"28"})
        sites = frozenset()

    broadcast = start(world, JmaAudience(), origin="jma:20260301000000")
    assert {r.staff_id for r in recipients_of(broadcast)} == {world.staff[5].id}
    listed = start(world, {"staff_ids": [world.staff[0].id, world.staff[2].id]})
    assert len(recipients_of(listed)) == 2


@pytest.mark.parametrize(
    ("audience", "message"),
    [
        ({}, "choose who the broadcast goes to"),
        ({"sites": ["NOPE"]}, "unknown site codes: NOPE"),
        ({"prefectures": ["47"]}, "nobody matches the audience"),
    ],
)
def test_bad_audience_is_refused_clearly(world, audience, message):
    with pytest.raises(ValidationError) as info:
        service.start_broadcast(
            organization_id=world.org.id, template="earthquake", audience=audience, actor="t", now=NOW
        )
    assert message in str(info.value)


def test_widen_adds_only_people_not_yet_in_the_broadcast(world):
    broadcast = start(world, {"prefectures": ["13"]}, origin="jma:1")
    before = {r.staff_id: r.token for r in recipients_of(broadcast)}
    added = service.widen_broadcast(
        broadcast_id=broadcast.id, audience={"prefectures": ["13", "27"]}, actor="jma"
    )
    after = {r.staff_id: r.token for r in recipients_of(broadcast)}
    assert added == 3 and len(after) == 8
    assert all(after[k] == v for k, v in before.items())  # nobody re-created, nobody contacted again
    assert service.widen_broadcast(broadcast_id=broadcast.id, audience={"everyone": True}, actor="jma") == 0


def test_drills_leave_family_out_unless_asked(world):
    assert start(world, mode="drill").include_family is False
    assert start(world, mode="drill", include_family=True).include_family is True
    assert start(world, mode="real").include_family is True


def test_answer_history_is_kept_and_the_latest_counts(world):
    broadcast = start(world)
    person = recipients_of(broadcast)[0]
    service.record_answers(recipient=person, answers={"safety": "2", "work": "3"}, channel="voice", now=NOW)
    later = NOW + timedelta(minutes=3)
    service.record_answers(
        recipient=person, answers={"safety": "1"}, channel=AnswerChannel.WEB, free_text="ok now", now=later
    )
    history = service.answer_history(recipient_id=person.id)
    assert [(a.question_key, a.value, a.channel.value, a.current) for a in history] == [
        ("safety", "2", "voice", False),
        ("work", "3", "voice", True),
        ("safety", "1", "web", True),
        ("_free_text", "", "web", True),
    ]
    status = service.broadcast_status(broadcast_id=broadcast.id)
    assert status["by_answer"]["safety"] == {"1": 1, "2": 0, "3": 0, "4": 0}
    assert status["by_answer"]["work"]["3"] == 1
    assert status["answered"] == 1 and status["first_answer_at"] == NOW.isoformat()
    assert person.answered_at == NOW and person.answer_channel is AnswerChannel.WEB


def test_answer_stops_the_ladder_for_that_person(world):
    broadcast = start(world)
    person = recipients_of(broadcast)[0]
    db.session.add(Attempt(broadcast_id=broadcast.id, recipient_id=person.id, channel="voice", due_at=NOW))
    db.session.flush()
    service.record_answers(recipient=person, answers={"safety": "1"}, channel="sms", now=NOW)
    attempt = db.session.scalar(select(Attempt).where(Attempt.recipient_id == person.id))
    db.session.refresh(attempt)
    assert attempt.state.value == "cancelled"
    assert person.state is RecipientState.ANSWERED and person.next_action_at is None


@pytest.mark.parametrize(
    ("answers", "error"),
    [({"safety": "7"}, "'7' is not an option of 'safety'"), ({"mood": "1"}, "unknown question 'mood'")],
)
def test_invalid_answers_are_refused(world, answers, error):
    person = recipients_of(start(world))[0]
    with pytest.raises(ValidationError) as info:
        service.record_answers(recipient=person, answers=answers, channel="web")
    assert error in info.value.errors


def test_closed_broadcast_refuses_answers(world):
    broadcast = start(world)
    person = recipients_of(broadcast)[0]
    service.close_broadcast(broadcast_id=broadcast.id, actor="tester")
    with pytest.raises(service.AnswerRefused):
        service.record_answers(recipient=person, answers={"safety": "1"}, channel="web")
    assert service.broadcast_status(broadcast_id=broadcast.id)["unreached"] == 8


def test_aggregates_equal_a_brute_force_count(world):
    broadcast = start(world)
    people = recipients_of(broadcast)
    rng = random.Random(4)
    for n, person in enumerate(people[:6]):
        for _ in range(rng.randint(1, 3)):  # some change their mind
            service.record_answers(
                recipient=person,
                answers={"safety": str(rng.randint(1, 4)), "work": str(rng.randint(1, 3))},
                channel=rng.choice(["web", "voice", "sms"]),
                now=NOW + timedelta(seconds=n),
            )
    people[6].state = RecipientState.UNREACHED
    db.session.flush()
    status = service.broadcast_status(broadcast_id=broadcast.id)

    latest: dict[tuple[int, str], str] = {}
    for answer in db.session.scalars(select(Answer).order_by(Answer.id)):
        latest[(answer.recipient_id, answer.question_key)] = answer.value
    for question in ("safety", "work"):
        brute = Counter(v for (_, q), v in latest.items() if q == question)
        assert {k: v for k, v in status["by_answer"][question].items() if v} == dict(brute)
    answered = {p.id for p in people if p.state is RecipientState.ANSWERED}
    assert status["answered"] == len(answered) == 6
    assert status["unreached"] == 1 and status["in_progress"] == 1
    site_code = {s.id: code for code, s in world.sites.items()}
    brute_sites = Counter(site_code[p.site_id] for p in people if p.id in answered)
    assert {r["name"]: r["answered"] for r in status["by_site"]} == {
        k: brute_sites.get(k, 0) for k in ("OSA", "TYO")
    }
    dept_name = {d.id: name for name, d in world.departments.items()}
    brute_depts = Counter(dept_name[p.department_id] for p in people)
    assert {r["name"]: r["recipients"] for r in status["by_department"]} == dict(brute_depts)
    assert sum(r["recipients"] for r in status["by_prefecture"]) == 8


def test_scoped_manager_sees_only_their_scope(world):
    broadcast = start(world)
    for person in recipients_of(broadcast):
        service.record_answers(recipient=person, answers={"safety": "1"}, channel="web", now=NOW)
    osaka_manager = principal_for(make_user(world.org, Role.MANAGER, sites=[world.sites["OSA"]]))
    support_manager = principal_for(
        make_user(world.org, Role.MANAGER, departments=[world.departments["Support"]])
    )
    org_wide = principal_for(make_user(world.org, Role.MANAGER))
    assert service.broadcast_status(broadcast_id=broadcast.id, principal=osaka_manager)["recipients"] == 4
    assert (
        service.broadcast_status(broadcast_id=broadcast.id, principal=osaka_manager)["by_answer"]["safety"][
            "1"
        ]
        == 4
    )
    assert {
        r["name"]
        for r in service.broadcast_status(broadcast_id=broadcast.id, principal=osaka_manager)["by_site"]
    } == {"OSA"}
    assert service.broadcast_status(broadcast_id=broadcast.id, principal=support_manager)["recipients"] == 4
    assert service.broadcast_status(broadcast_id=broadcast.id, principal=org_wide)["recipients"] == 8
    rows = list(service.export_rows(broadcast_id=broadcast.id, principal=osaka_manager))
    assert {r.site for r in rows} == {"OSA"}


def test_executives_are_counted_but_never_named(world):
    boss = world.staff[0]
    boss.hide_from_answer_views = True
    db.session.flush()
    broadcast = start(world)
    person = next(r for r in recipients_of(broadcast) if r.staff_id == boss.id)
    service.record_answers(recipient=person, answers={"safety": "2"}, free_text="I am at home", channel="web")
    rows = list(service.export_rows(broadcast_id=broadcast.id))
    assert len(rows) == 8
    hidden = next(r for r in rows if r.recipient_id == person.id)
    assert hidden.name == service.HIDDEN_NAME and hidden.employee_id == "" and hidden.free_text == ""
    assert hidden.answers == {"safety": "2"}
    assert all(boss.name != r.name for r in rows)
    assert service.broadcast_status(broadcast_id=broadcast.id)["by_answer"]["safety"]["2"] == 1


def test_resend_reaches_only_those_who_have_not_answered(world):
    broadcast = start(world)
    people = recipients_of(broadcast)
    for person in people[:5]:
        service.record_answers(recipient=person, answers={"safety": "1"}, channel="web")
    people[5].state = RecipientState.UNREACHED
    db.session.flush()
    queued = service.resend_unanswered(broadcast_id=broadcast.id, actor="tester", channels=("sms", "email"))
    attempts = db.session.scalars(select(Attempt).where(Attempt.purpose == "resend")).all()
    assert queued == len(attempts) == 6  # 3 people × SMS + e-mail
    assert {a.recipient_id for a in attempts} == {p.id for p in people[5:]}


def test_message_everyone_who_answered_x(world):
    broadcast = start(world)
    people = recipients_of(broadcast)
    for n, person in enumerate(people):
        service.record_answers(recipient=person, answers={"work": "2" if n < 3 else "1"}, channel="web")
    service.record_answers(recipient=people[0], answers={"work": "3"}, channel="web")  # changed their mind
    invited = service.message_answered(
        broadcast_id=broadcast.id, question_key="work", value="2", text="Join the home-agent pool", actor="t"
    )
    assert invited == 2
    invites = db.session.scalars(select(Attempt).where(Attempt.purpose == "invite")).all()
    assert {a.recipient_id for a in invites} == {people[1].id, people[2].id}
    # Asking again does not invite the same people twice.
    assert (
        service.message_answered(
            broadcast_id=broadcast.id, question_key="work", value="2", text="again", actor="t"
        )
        == 0
    )


def test_invitation_acceptance_runs_the_routing_hook(world, monkeypatch):
    broadcast = start(world)
    person = recipients_of(broadcast)[0]
    service.record_answers(recipient=person, answers={"work": "2"}, channel="web")
    service.message_answered(
        broadcast_id=broadcast.id, question_key="work", value="2", text="Join", actor="t"
    )
    accepted = []
    monkeypatch.setattr(service, "_invite_hooks", [accepted.append])
    invitation = service.invitation_by_token(
        db.session.scalar(
            select(service.Invitation.token).where(service.Invitation.recipient_id == person.id)
        )
    )
    service.respond_to_invitation(invitation=invitation, accept=True)
    assert accepted == [invitation] and invitation.accepted_at is not None


def test_templates_are_seeded_once_and_custom_ones_validated(world):
    assert service.ensure_templates(organization_id=world.org.id) == 6
    assert service.ensure_templates(organization_id=world.org.id) == 0
    custom = dict(service.BUILTIN["system_outage"], key="pc_outage")
    service.save_template(organization_id=world.org.id, definition=custom, actor="t")
    assert count(BroadcastTemplate) == 7
    with pytest.raises(ValidationError) as info:
        service.save_template(
            organization_id=world.org.id, definition={**custom, "sms": {"ja": "", "en": "x"}}, actor="t"
        )
    assert "sms.ja: a non-empty text is required" in info.value.errors
    broadcast = start(world, template="pc_outage")
    assert broadcast.template_key == "pc_outage"


def test_summary_is_due_ten_minutes_after_the_start(world):
    broadcast = start(world)
    assert service.due_summaries(now=NOW + timedelta(minutes=9)) == []
    assert service.due_summaries(now=NOW + timedelta(minutes=10)) == [broadcast.id]
    _subject, text = service.summary_text(broadcast_id=broadcast.id)
    assert "Recipients: 8" in text and "Safe: 0" in text
