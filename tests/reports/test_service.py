"""Drills against a real database: the report's figures come from what actually happened."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from continuity import service as continuity_service
from continuity.models import CallLeg, InboundCall, InboundLine, LegOutcome
from continuity.routing import SiteState, TargetKind
from core import db
from core.auth.models import AuditEntry, Role
from core.auth.service import principal_for
from core.errors import Conflict, ValidationError
from ivr import service as ivr_service
from ivr.models import AttemptState, BroadcastMode, RecipientState
from reports import metrics, service
from reports.models import ActionStatus, DrillState, DrillType, EntryKind, Scenario
from tests.factories import make_org, make_user
from tests.reports.conftest import T0, World, answer, failed_call, recipients, start_drill_broadcast

ANSWER_SECONDS = [45, 90, 150, 200, 260, 400, 610, 900]  # 8 of the 12 answer; the 6th (50 %) at 400 s


def drill(world: World, **kw):
    kw.setdefault("type", DrillType.NOTIFICATION_TEST)
    kw.setdefault("scenario", Scenario.EARTHQUAKE)
    kw.setdefault("title", "地震想定 安否確認訓練")
    kw.setdefault("planned_start_at", T0)
    kw.setdefault("planned_end_at", T0 + timedelta(hours=1))
    return service.create_drill(organization_id=world.org.id, actor="tester", **kw)


def played_broadcast(world: World, answer_seconds=ANSWER_SECONDS, start=T0):
    broadcast = start_drill_broadcast(world, at=start)
    people = recipients(broadcast)
    for person, seconds in zip(people, answer_seconds, strict=False):
        answer(person, after_seconds=seconds, start=start)
    silent = people[len(answer_seconds) :]
    if silent:
        failed_call(silent[0], state=AttemptState.FAILED, code="21211", at=start)
        failed_call(silent[0], state=AttemptState.FAILED, code="21211", at=start + timedelta(minutes=5))
        failed_call(silent[1], state=AttemptState.NO_ANSWER, at=start)
    ivr_service.close_broadcast(broadcast_id=broadcast.id, actor="tester", now=start + timedelta(hours=1))
    return broadcast


def test_report_figures_equal_the_broadcast_status(world):
    broadcast = played_broadcast(world)
    record = drill(world)
    service.link_broadcast(drill=record, broadcast_id=broadcast.id, actor="tester")

    report = service.build_report(drill=record, language="en")
    status = ivr_service.broadcast_status(broadcast_id=broadcast.id)

    b = report.broadcast
    assert b is not None
    assert (b.recipients, b.answered, b.unreached) == (
        status["recipients"],
        status["answered"],
        status["unreached"],
    )
    assert (b.recipients, b.answered) == (12, 8)
    assert [(g.name, g.recipients, g.answered) for g in b.by_department] == [
        (r["name"], r["recipients"], r["answered"]) for r in status["by_department"]
    ]
    assert [(g.name, g.recipients, g.answered) for g in b.by_site] == [
        (r["name"], r["recipients"], r["answered"]) for r in status["by_site"]
    ]
    # Times measured from the broadcast's start: 50 % of 12 is the 6th answer, 75 % (9 people) never came.
    assert b.times == {25: 150.0, 50: 400.0, 75: None, 90: None}
    assert b.median_seconds == pytest.approx((200 + 260) / 2)
    assert b.answer_rate == pytest.approx(100 * 8 / 12)
    assert b.curve[-1].answered == 8
    # The department medians come from the same people.
    facts = service.recipient_facts(broadcast_id=broadcast.id)
    expected = metrics.medians_by(T0, facts, lambda f: f.department)
    assert {g.name: g.median_seconds for g in b.by_department} == expected
    # The failing work phone is listed with its error; the one that rang out too; nobody else.
    assert [(u.attempts, u.last_state, u.error_code) for u in b.unreachable_contacts] == [
        (2, "failed", "21211"),
        (1, "no_answer", None),
    ]
    assert all(u.contact_label.startswith("work phone +81 90-****") for u in b.unreachable_contacts)
    assert b.unreached_people_total == 4 and len(b.unreached_people) == 4


def test_a_scoped_manager_sees_the_figures_of_their_department_only(world):
    broadcast = played_broadcast(world)
    record = drill(world)
    service.link_broadcast(drill=record, broadcast_id=broadcast.id, actor="tester")
    sales_manager = make_user(world.org, Role.MANAGER, departments=[world.departments["営業部"]])
    principal = principal_for(sales_manager)

    report = service.build_report(drill=record, language="en", principal=principal)
    status = ivr_service.broadcast_status(broadcast_id=broadcast.id, principal=principal)

    assert report.broadcast is not None
    assert report.broadcast.recipients == status["recipients"] == 4
    assert [g.name for g in report.broadcast.by_department] == ["営業部"]
    assert report.scope_note


def test_only_drill_broadcasts_of_the_same_organization_can_be_linked(world):
    record = drill(world)
    real = ivr_service.start_broadcast(
        organization_id=world.org.id, template="earthquake", audience={"everyone": True}, actor="t", now=T0
    )
    with pytest.raises(ValidationError):
        service.link_broadcast(drill=record, broadcast_id=real.id, actor="tester")
    other_org = make_org()
    with pytest.raises(ValidationError):
        service.link_broadcast(
            drill=service.create_drill(
                organization_id=other_org.id, type="tabletop", scenario="fire", title="x", actor="t"
            ),
            broadcast_id=start_drill_broadcast(world).id,
            actor="tester",
        )
    assert [b.mode for b in service.drill_broadcasts(organization_id=world.org.id)] == [BroadcastMode.DRILL]


def test_starting_the_drill_broadcast_links_it_and_starts_the_drill(world):
    record = drill(world)
    broadcast = service.start_drill_broadcast(
        drill=record, template="earthquake", audience={"sites": ["OSA"]}, actor="tester", now=T0
    )
    assert broadcast.mode is BroadcastMode.DRILL
    assert broadcast.include_family is False
    assert broadcast.origin == f"drill:{record.id}"
    assert record.broadcast_id == broadcast.id
    assert record.state is DrillState.IN_PROGRESS and record.actual_start_at == T0
    assert len(recipients(broadcast)) == 6
    with pytest.raises(Conflict):
        service.start_drill_broadcast(
            drill=record, template="earthquake", audience={"everyone": True}, actor="t"
        )


def test_corrective_actions_stay_on_later_drills_until_closed(world):
    march = drill(world, title="March drill", planned_start_at=T0 - timedelta(days=60))
    april = drill(world, title="April drill", planned_start_at=T0 - timedelta(days=30))
    may = drill(world, title="May drill", planned_start_at=T0 - timedelta(days=1))
    fixed_in_april = service.add_action(drill=march, title="Update the IVR greeting", actor="t", owner="鈴木")
    service.add_action(drill=march, title="Re-register private numbers", actor="t", due_on=date(2020, 1, 1))
    dropped = service.add_action(drill=march, title="Buy satellite phones", actor="t")
    from_april = service.add_action(drill=april, title="Train the Osaka team", actor="t")
    service.update_action(
        action=dropped, status=ActionStatus.CANCELLED, actor="t", now=T0 - timedelta(days=50)
    )  # before April
    service.update_action(
        action=fixed_in_april, status=ActionStatus.DONE, actor="t", now=T0 - timedelta(days=20)
    )  # after April, before May

    def listed(record):
        return [(a.title, carried) for a, carried in service.actions_of(drill=record)]

    assert listed(march) == [
        ("Update the IVR greeting", False),
        ("Re-register private numbers", False),
        ("Buy satellite phones", False),
    ]
    assert listed(april) == [
        ("Train the Osaka team", False),
        ("Re-register private numbers", True),  # due date first
        ("Update the IVR greeting", True),
    ]
    assert listed(may) == [("Re-register private numbers", True), ("Train the Osaka team", True)]

    report = service.build_report(drill=may, language="en")
    rows = {a.title: a for a in report.actions}
    assert rows["Re-register private numbers"].carried_over and rows["Re-register private numbers"].overdue
    assert rows["Re-register private numbers"].raised_in == "March drill"
    assert rows["Train the Osaka team"].status_label == "Open"
    assert from_april.closed_at is None and dropped.closed_at is not None
    # Reopening clears the closing date: the action is carried again.
    service.update_action(action=fixed_in_april, status=ActionStatus.IN_PROGRESS, actor="t")
    assert ("Update the IVR greeting", True) in listed(may)


def test_relocation_drill_times_the_failover_from_routing_changes_and_calls(world):
    record = drill(
        world,
        type=DrillType.RELOCATION,
        title="代替拠点切替訓練",
        planned_start_at=T0,
        planned_end_at=T0 + timedelta(hours=1),
    )
    service.start_drill(drill=record, actor="tester", now=T0)
    service.update_drill(drill=record, actor="tester", alternate_site_id=world.sites["OSA"].id)
    decision = continuity_service.declare_site_state(
        site=world.sites["TKY"],
        state=SiteState.DOWN,
        reason="訓練: 東京停止",
        actor="cli",
        now=T0 + timedelta(minutes=10),
    )
    line = InboundLine(organization_id=world.org.id, number="+15550100188", name="代表")
    db.session.add(line)
    db.session.flush()

    def inbound(sid, started, outcome, legs, answered=None):
        call = InboundCall(
            organization_id=world.org.id,
            line_id=line.id,
            call_sid=sid,
            caller_hash="h" + sid,
            caller_masked="+1 555-01**",
            mode="open",
            started_at=started,
            answered_at=answered,
            ended_at=started + timedelta(minutes=2),
            outcome=outcome,
        )
        call.legs = legs
        db.session.add(call)

    decided = decision.at
    # Before the drill: not counted.
    inbound("CA0", T0 - timedelta(minutes=30), "completed", [])
    # Tokyo does not answer; Osaka picks up 90 s after the decision (ended at +120 s after 30 s of talk).
    inbound(
        "CA1",
        decided + timedelta(seconds=20),
        "completed",
        [
            CallLeg(
                position=0,
                kind=TargetKind.SITE_AGENTS,
                site_code="TKY",
                started_at=decided + timedelta(seconds=20),
                ended_at=decided + timedelta(seconds=35),
                outcome=LegOutcome.NO_ANSWER,
            ),
            CallLeg(
                position=1,
                kind=TargetKind.SITE,
                site_code="OSA",
                started_at=decided + timedelta(seconds=35),
                ended_at=decided + timedelta(seconds=120),
                outcome=LegOutcome.COMPLETED,
                duration_s=30,
            ),
        ],
        answered=decided + timedelta(seconds=120),
    )
    # Lost to voicemail.
    inbound(
        "CA2",
        decided + timedelta(minutes=5),
        "voicemail",
        [
            CallLeg(
                position=0,
                kind=TargetKind.SITE,
                site_code="OSA",
                started_at=decided + timedelta(minutes=5),
                ended_at=decided + timedelta(minutes=5, seconds=16),
                outcome=LegOutcome.NO_ANSWER,
            ),
            CallLeg(
                position=1,
                kind=TargetKind.VOICEMAIL,
                started_at=decided + timedelta(minutes=5, seconds=16),
                ended_at=decided + timedelta(minutes=6),
                outcome=LegOutcome.RECORDED,
            ),
        ],
    )
    db.session.flush()
    service.finish_drill(drill=record, actor="tester", now=T0 + timedelta(hours=1))

    figures = service.drill_figures(drill=record)
    f = figures.failover
    assert f is not None
    assert figures.decision is not None and figures.decision.id == decision.id
    assert f.seconds_to_alternate == 90.0
    assert (f.calls, f.answered, f.answered_at_alternate, f.lost) == (2, 1, 1, 1)
    assert f.lost_by_outcome == {"voicemail": 1}

    report = service.build_report(drill=record, language="ja")
    assert report.failover is not None
    assert report.failover.down_site_label == "TKY 東京本社"
    assert report.failover.alternate_site_label == "OSA 大阪センター"
    assert [c.is_decision for c in report.failover.changes] == [True]
    assert any(row.source == "ルーティング" for row in report.timeline)


def test_comparison_with_the_previous_drill_of_the_same_type(world):
    earlier = drill(world, title="February", planned_start_at=T0 - timedelta(days=30))
    earlier_broadcast = played_broadcast(
        world, answer_seconds=[100, 200, 300, 400, 500, 600], start=T0 - timedelta(days=30)
    )
    service.link_broadcast(drill=earlier, broadcast_id=earlier_broadcast.id, actor="t")
    service.finish_drill(drill=earlier, actor="t", now=T0 - timedelta(days=30) + timedelta(hours=1))
    tabletop = drill(
        world, type=DrillType.TABLETOP, title="tabletop", planned_start_at=T0 - timedelta(days=10)
    )
    service.finish_drill(drill=tabletop, actor="t", now=T0 - timedelta(days=10))
    current = drill(world, title="March")
    service.link_broadcast(drill=current, broadcast_id=played_broadcast(world).id, actor="t")

    report = service.build_report(drill=current, language="en")
    assert report.comparison is not None
    assert len(report.comparison.headers) == 1  # the tabletop exercise is not compared
    rows = {row.key: row for row in report.comparison.rows}
    assert rows["answered"].previous == (6.0,) and rows["answered"].current == 8.0
    assert rows["answer_rate"].delta == pytest.approx(100 * 8 / 12 - 50.0)
    assert rows["answer_rate"].verdict == "better"
    assert (
        rows["t50"].previous == (600.0,) and rows["t50"].current == 400.0 and rows["t50"].verdict == "better"
    )


def test_observations_by_link_and_from_participants(world):
    record = drill(world)
    token = service.observation_token(drill=record, actor="tester")
    assert service.drill_by_observation_token(token) is record
    service.add_entry(drill=record, text="Osaka logged in at 10:05", author="山田", via="link", now=T0)
    service.add_entry(drill=record, text="IVR greeting outdated", author="佐藤", kind=EntryKind.ISSUE, now=T0)
    with pytest.raises(ValidationError):
        service.add_entry(
            drill=record, text="from the future", author="x", at=T0 + timedelta(hours=1), now=T0
        )
    with pytest.raises(ValidationError):
        service.add_entry(drill=record, text="   ", author="x")

    renewed = service.observation_token(drill=record, actor="tester", renew=True)
    assert renewed != token and service.drill_by_observation_token(token) is None

    report = service.build_report(drill=record, language="en")
    assert [i.text for i in report.issues] == ["IVR greeting outdated"]
    assert {t.text for t in report.timeline} >= {"Osaka logged in at 10:05", "IVR greeting outdated"}
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.target_id == str(record.id))
    ).all()
    assert "reports.drill.issue" in actions and "reports.drill.link" in actions


def test_participants_are_users_staff_or_names(world):
    record = drill(world)
    service.add_participant(drill=record, user_id=world.users["crisis"].id, role="統制", actor="t")
    service.add_participant(drill=record, staff_id=world.staff[0].id, role="プレイヤー", actor="t")
    service.add_participant(drill=record, name="消防署 担当者", role="評価者", actor="t")
    with pytest.raises(Conflict):
        service.add_participant(drill=record, staff_id=world.staff[0].id, actor="t")
    report = service.build_report(drill=record, language="en")
    assert [(p.name, p.role, p.affiliation) for p in report.participants] == [
        ("Test User", "統制", ""),
        ("社員 00", "プレイヤー", "営業部"),
        ("消防署 担当者", "評価者", ""),
    ]
    assert service.is_participant(drill=record, user_id=world.users["crisis"].id)


def test_csv_exports_open_in_excel(world):
    record = drill(world)
    service.link_broadcast(drill=record, broadcast_id=played_broadcast(world).id, actor="t")
    service.add_action(
        drill=record, title="IVR の案内文を更新", owner="鈴木", due_on=date(2026, 4, 30), actor="t"
    )
    metrics_csv = service.csv_bytes(service.metrics_rows(drill=record, language="ja"))
    assert metrics_csv.startswith(b"\xef\xbb\xbf")
    text = metrics_csv.decode("utf-8-sig")
    assert "回答率" in text and "営業部" in text and "\r\n" in text
    lines = text.splitlines()
    assert any(line.startswith("訓練,") and ",50% 回答までの時間,400," in line for line in lines)
    actions_csv = service.csv_bytes(service.actions_rows(organization_id=world.org.id, language="ja"))
    assert actions_csv.startswith(b"\xef\xbb\xbf")
    assert "IVR の案内文を更新,,鈴木,2026-04-30,未着手" in actions_csv.decode("utf-8-sig")


def test_recipient_state_decides_who_answered(world):
    """A recipient with an answer time but not in the answered state does not count (as on the status page)."""
    broadcast = start_drill_broadcast(world)
    person = recipients(broadcast)[0]
    person.answered_at = T0 + timedelta(seconds=10)
    person.state = RecipientState.UNREACHED
    db.session.flush()
    figures = service.broadcast_figures(broadcast_id=broadcast.id)
    assert figures.answered == 0 and figures.times[25] is None
