"""Declaring an incident, its team and checklist, the timeline across parts, proposals from rules, and closing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from core import db
from core.auth.models import AuditEntry, Role
from core.auth.service import audit
from core.time import utcnow
from incidents import service
from incidents.models import ChecklistStep, Incident, IncidentState, MemberRole, Notification, StepState
from tests.factories import csrf_from, login, make_staff, make_user, post_form
from tests.incidents.conftest import World, answer, make_broadcast


def _declare(client: FlaskClient, world: World, **extra: Any) -> Incident:
    response = post_form(
        client,
        "/incidents/new",
        type="earthquake",
        severity="major",
        title="首都直下地震",
        sites=[str(world.tokyo.id)],
        description="震度6強",
        me_commander="1",
        **extra,
    )
    assert response.status_code == 302, response.text
    incident = db.session.scalars(select(Incident).order_by(Incident.id.desc())).first()
    assert incident is not None
    return incident


def _audit_at(world: World, minutes_ago: float, action: str, summary: str) -> None:
    db.session.add(
        AuditEntry(
            organization_id=world.org.id,
            at=utcnow() - timedelta(minutes=minutes_ago),
            actor="someone@example.com",
            action=action,
            summary=summary,
        )
    )
    db.session.flush()


def test_declare_assign_work_the_checklist_and_read_the_timeline(client: FlaskClient, world: World) -> None:
    login(client, world.crisis)
    _audit_at(world, 120, "continuity.site.state", "OSA degraded long before")  # outside the window
    incident = _declare(client, world, started_at="")
    assert incident.state is IncidentState.ACTIVE
    assert [s.code for s in incident.sites] == ["TKY"]
    assert service.commander(incident).id == world.crisis.id
    # The earthquake playbook is seeded, in Japanese and English.
    titles = [s.title_ja for s in incident.steps]
    assert "従業員の安全確保・避難" in titles and "取引先・顧客への連絡" in titles
    page = client.get(f"/incidents/{incident.id}?lang=en")
    assert "Keep staff safe; evacuate if needed" in page.text

    # Deputy and step owner: the supervisor.
    response = post_form(
        client,
        f"/incidents/{incident.id}",
        f"/incidents/{incident.id}/members",
        user_id=str(world.supervisor.id),
        role="deputy",
    )
    assert response.status_code == 302
    step = next(s for s in incident.steps if s.title_ja == "安否確認の実施")
    post_form(
        client,
        f"/incidents/{incident.id}",
        f"/incidents/{incident.id}/steps/{step.id}",
        state="doing",
        owner=str(world.supervisor.id),
        note="",
    )
    post_form(
        client,
        f"/incidents/{incident.id}",
        f"/incidents/{incident.id}/steps/{step.id}",
        state="done",
        owner=str(world.supervisor.id),
        note="全員送信済み",
    )
    step = db.session.get(ChecklistStep, step.id)
    assert step.state is StepState.DONE and step.finished_at is not None and step.started_at is not None
    assert step.owner_user_id == world.supervisor.id
    # The deputy was told (a notification, mailed by the notice worker).
    notes = db.session.scalars(select(Notification).where(Notification.user_id == world.supervisor.id)).all()
    assert {n.kind for n in notes} >= {"incident.deputy", "incident.step"}

    # Other parts write to the audit log meanwhile.
    _audit_at(world, 0, "ivr.broadcast.start", "real broadcast 'earthquake' started to 120 people")
    _audit_at(world, 0, "continuity.reroute", "line 0120 moved from TKY to OSA")
    post_form(
        client,
        f"/incidents/{incident.id}",
        f"/incidents/{incident.id}/decisions",
        text="大阪へ切替を決定",
        kind="decision",
    )

    entries = service.incident_timeline(incident.id)
    texts = [e.text for e in entries]
    assert any("doing → done" in t for t in texts)
    assert "real broadcast 'earthquake' started to 120 people" in texts
    assert "line 0120 moved from TKY to OSA" in texts
    assert "大阪へ切替を決定" in texts
    assert "OSA degraded long before" not in texts
    assert entries == sorted(entries, key=lambda e: e.at)
    # The incident's own audit entries are not repeated next to its events.
    assert not [e for e in entries if e.source == "audit" and e.kind.startswith("incidents.declare")]

    page = client.get(f"/incidents/{incident.id}/timeline")
    assert page.status_code == 200
    assert "line 0120 moved from TKY to OSA" in page.text and "大阪へ切替を決定" in page.text
    assert "OSA degraded long before" not in page.text
    as_json = client.get(f"/incidents/{incident.id}/timeline?format=json").get_json()
    assert any(e["kind"] == "continuity.reroute" for e in as_json["entries"])


def _outage_with_a_role_change(world: World) -> Incident:
    incident = service.declare_incident(
        organization_id=world.org.id, type="system_outage", severity="minor", actor=world.crisis.email
    )
    _audit_at(world, 0, "user.roles", "roles of someone changed")
    return incident


def test_a_scoped_user_sees_the_incident_but_not_the_whole_audit_log(
    client: FlaskClient, world: World
) -> None:
    incident = _outage_with_a_role_change(world)
    login(client, world.osaka_manager)
    page = client.get(f"/incidents/{incident.id}/timeline")
    assert page.status_code == 200
    assert "roles of someone changed" not in page.text
    assert "declared" in page.text


def test_an_organization_wide_user_sees_the_audit_log_in_the_timeline(
    client: FlaskClient, world: World
) -> None:
    incident = _outage_with_a_role_change(world)
    login(client, world.manager)
    assert "roles of someone changed" in client.get(f"/incidents/{incident.id}/timeline").text


def test_only_crisis_managers_declare_and_close(client: FlaskClient, world: World) -> None:
    login(client, world.manager)
    assert client.get("/incidents/").status_code == 200
    assert client.get("/incidents/new").status_code == 403
    incident = service.declare_incident(
        organization_id=world.org.id, type="other", severity="minor", actor="x"
    )
    page = client.get(f"/incidents/{incident.id}")
    assert (
        client.post(
            f"/incidents/{incident.id}/close", data={"summary": "x", "csrf_token": csrf_from(page.text)}
        ).status_code
        == 403
    )
    # Nor may a manager change a step they do not own.
    step = incident.steps[0]
    response = client.post(
        f"/incidents/{incident.id}/steps/{step.id}",
        data={"state": "done", "csrf_token": csrf_from(page.text)},
    )
    assert response.status_code == 403
    # Once they own it, they may.
    step = db.session.get(ChecklistStep, step.id)
    service.update_step(step=step, owner_user_id=world.manager.id, actor="x")
    response = client.post(
        f"/incidents/{incident.id}/steps/{step.id}",
        data={"state": "done", "csrf_token": csrf_from(page.text)},
    )
    assert response.status_code == 302
    assert db.session.get(ChecklistStep, step.id).state is StepState.DONE


def test_a_new_commander_takes_over_and_the_old_one_stays_as_deputy(world: World) -> None:
    incident = service.declare_incident(
        organization_id=world.org.id, type="tsunami", severity="critical", actor="x"
    )
    service.assign_member(incident=incident, user_id=world.crisis.id, role=MemberRole.COMMANDER, actor="x")
    service.assign_member(
        incident=incident, user_id=world.supervisor.id, role=MemberRole.COMMANDER, actor="x"
    )
    assert service.commander(incident).id == world.supervisor.id
    assert [u.id for u in service.deputies(incident)] == [world.crisis.id]
    kinds = [e.kind for e in service.events(incident_id=incident.id)]
    assert kinds == ["declared", "commander", "commander"]


def test_a_rule_proposes_once_per_event_and_a_crisis_manager_confirms(
    client: FlaskClient, world: World
) -> None:
    first = service.propose_incident(
        org_id=world.org.id,
        type="earthquake",
        sites=[world.tokyo.id],
        severity="major",
        source="jma:20260101090000",
        summary="震度5強 東京都",
    )
    assert first.state is IncidentState.PROPOSED
    # The crisis manager is told; the plain manager is not.
    assert db.session.scalars(select(Notification).where(Notification.user_id == world.crisis.id)).all()
    assert not db.session.scalars(select(Notification).where(Notification.user_id == world.manager.id)).all()
    # A later bulletin of the same event widens it instead of proposing another incident.
    again = service.propose_incident(
        org_id=world.org.id,
        type="earthquake",
        sites=[world.osaka.id],
        severity="critical",
        source="jma:20260101090000",
        summary="震度6強 大阪府",
    )
    assert again.id == first.id
    assert sorted(s.code for s in again.sites) == ["OSA", "TKY"]
    assert again.severity.value == "critical"
    assert db.session.scalars(select(Incident.id).where(Incident.organization_id == world.org.id)).all() == [
        first.id
    ]

    login(client, world.crisis)
    page = client.get(f"/incidents/{first.id}")
    assert "Confirm" in page.text
    response = client.post(f"/incidents/{first.id}/confirm", data={"csrf_token": csrf_from(page.text)})
    assert response.status_code == 302
    first = db.session.get(Incident, first.id)
    assert first.state is IncidentState.ACTIVE and first.declared_by == world.crisis.email
    assert [e.kind for e in service.events(incident_id=first.id)] == ["proposed", "widened", "confirmed"]


def test_close_keeps_a_summary_and_the_key_figures(world: World) -> None:
    started = utcnow() - timedelta(hours=2)
    incident = service.declare_incident(
        organization_id=world.org.id,
        type="earthquake",
        severity="major",
        site_ids=[world.tokyo.id],
        actor=world.crisis.email,
        started_at=started,
    )
    broadcast = make_broadcast(world.org, created_by=world.crisis)
    people = [make_staff(world.org, site=world.tokyo) for _ in range(4)]
    answer(broadcast, people[0], safety="1")
    answer(broadcast, people[1], safety="2")
    from incidents.care import sync_care_followups

    sync_care_followups(broadcast.id)
    for step in incident.steps[:3]:
        service.update_step(step=step, state="done", actor="x")
    service.update_step(step=incident.steps[3], state="skipped", actor="x")
    service.close_incident(
        incident=incident, summary="全拠点復旧。安否確認の回答率を改善する。", actor=world.crisis.email
    )

    summary = service.incident_summary(incident.id)
    figures = {f["key"]: f["value"] for f in summary["key_figures"]}
    assert summary["state"] == "closed"
    assert summary["summary"] == "全拠点復旧。安否確認の回答率を改善する。"
    assert figures["steps_done"] == 3 and figures["steps_skipped"] == 1
    assert figures["broadcasts"] == 1 and figures["recipients"] == 2 and figures["answered"] == 2
    assert figures["care_cases"] == 1
    assert 119 <= figures["duration_minutes"] <= 121
    assert summary["sites"][0]["code"] == "TKY"
    # Frozen at closing: what happens later does not change the report.
    answer(broadcast, people[2], safety="1")
    assert {f["key"]: f["value"] for f in service.incident_summary(incident.id)["key_figures"]}[
        "recipients"
    ] == 2
    # Closed means closed.
    import pytest

    from core.errors import Conflict

    with pytest.raises(Conflict):
        service.record_decision(incident=incident, text="late", actor="x")


def test_every_change_is_audited(world: World) -> None:
    incident = service.declare_incident(
        organization_id=world.org.id, type="pandemic", severity="minor", actor="cm"
    )
    service.assign_member(incident=incident, user_id=world.crisis.id, role="commander", actor="cm")
    service.update_step(step=incident.steps[0], state="doing", actor="cm")
    service.record_decision(incident=incident, text="在宅勤務へ切替", actor="cm")
    actions = db.session.scalars(
        select(AuditEntry.action).where(
            AuditEntry.target_type == "incident", AuditEntry.target_id == str(incident.id)
        )
    ).all()
    assert actions == ["incidents.declare", "incidents.commander", "incidents.step", "incidents.decision"]
    audit(action="noop", organization_id=world.org.id, actor="x")  # the log still takes other entries
    _ = make_user
    _ = Role
