"""The supervisor's side: the board, reroutes and their undo, scope, the audit log, heartbeats, the CLI."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from continuity import service
from continuity.models import CallbackRequest, LineOverride, RoutingChange, SiteStatus, Voicemail
from continuity.routing import EmergencyScope, SiteState
from core import db
from core.auth.models import AuditEntry, Role
from core.errors import ValidationError
from tests.continuity.conftest import (
    CALLER,
    LINE_24H,
    OSA_AGENTS,
    TKY_AGENTS,
    Carrier,
    Center,
    dialed,
    settings_of,
    twiml,
)
from tests.factories import csrf_from, login, make_user


def board_page(client: FlaskClient) -> str:
    page = client.get("/continuity")
    assert page.status_code == 200, page.status_code
    return page.text


def post(client: FlaskClient, url: str, **data: str) -> Any:
    data["csrf_token"] = csrf_from(board_page(client))
    return client.post(url, data=data)


def state_of(center: Center, code: str) -> SiteState:
    status = db.session.scalar(select(SiteStatus).where(SiteStatus.site_id == center.sites[code].id))
    return status.state if status else SiteState.NORMAL


@pytest.fixture()
def supervisor(center: Center, client: FlaskClient) -> FlaskClient:
    login(client, make_user(center.org, Role.SUPERVISOR, email="sv@example.com"))
    return client


# --- the board --------------------------------------------------------------------------------------------------


def test_board_shows_sites_lines_and_where_calls_go(center: Center, supervisor: FlaskClient) -> None:
    service.declare_site_state(site=center.tky, state=SiteState.DOWN, reason="power cut", actor="test")
    html = board_page(supervisor)
    assert "power cut" in html
    assert LINE_24H in html
    assert "site OSA is normal, 1 agent available" in html  # the 24h line goes to Osaka now
    assert "site TKY is down" in html  # and why Tokyo is skipped
    assert 'name="csrf_token"' in html
    assert 'name="viewport"' in html  # phone layout comes from the base template


def test_board_in_japanese(center: Center, client: FlaskClient) -> None:
    login(client, make_user(center.org, Role.SUPERVISOR, language="ja"))
    html = board_page(client)
    assert "着信ルーティングと切替" in html and "拠点" in html


def test_crisis_manager_reads_but_cannot_change(center: Center, client: FlaskClient) -> None:
    login(client, make_user(center.org, Role.CRISIS_MANAGER))
    html = board_page(client)
    assert "Mark down" not in html and "Undo" not in html
    response = client.post(
        f"/continuity/sites/{center.tky.id}/state",
        data={"state": "down", "reason": "x", "csrf_token": csrf_from(html)},
    )
    assert response.status_code == 403
    assert state_of(center, "TKY") is SiteState.NORMAL


def test_other_roles_and_anonymous_are_kept_out(center: Center, client: FlaskClient) -> None:
    assert client.get("/continuity").status_code in (302, 401)
    login(client, make_user(center.org, Role.FACILITIES))
    assert client.get("/continuity").status_code == 403


def _voicemail_from_caller(center: Center, app: Flask) -> None:
    call = service.open_call(
        line=center.line,
        call_sid="CAvm",
        caller=CALLER,
        mode="open",
        settings=settings_of(app),
        now=datetime.now(UTC),
    )
    service.record_voicemail(
        call=call,
        position=3,
        caller=CALLER,
        recording_url="https://api.twilio.com/r/RE1",
        recording_sid="RE1",
        duration_s=5,
        settings=settings_of(app),
    )


def test_supervisors_see_the_number_to_call_back(center: Center, supervisor: FlaskClient, app: Flask) -> None:
    _voicemail_from_caller(center, app)
    assert CALLER in board_page(supervisor)


def test_crisis_managers_see_callers_masked(center: Center, client: FlaskClient, app: Flask) -> None:
    _voicemail_from_caller(center, app)
    login(client, make_user(center.org, Role.CRISIS_MANAGER))
    html = board_page(client)
    assert CALLER not in html and service.mask_number(CALLER) in html


def test_mark_voicemail_and_callback_handled(center: Center, supervisor: FlaskClient, app: Flask) -> None:
    call = service.open_call(
        line=center.line,
        call_sid="CAcb",
        caller=CALLER,
        mode="open",
        settings=settings_of(app),
        now=datetime.now(UTC),
    )
    request = service.request_callback(call=call, position=2, caller=CALLER, settings=settings_of(app))
    assert post(supervisor, f"/continuity/callback/{request.id}/handled").status_code == 302
    handled = db.session.get(CallbackRequest, request.id)
    assert handled is not None and handled.handled_by == "sv@example.com"
    assert "Nothing to work through." in board_page(supervisor)
    assert db.session.scalar(select(Voicemail)) is None


# --- changes, undo, audit --------------------------------------------------------------------------------------


def test_force_a_site_down_then_undo_it(center: Center, supervisor: FlaskClient, carrier: Carrier) -> None:
    response = post(
        supervisor, f"/continuity/sites/{center.tky.id}/state", state="down", reason="fire in the building"
    )
    assert response.status_code == 302
    assert state_of(center, "TKY") is SiteState.DOWN
    assert dialed(twiml(carrier.call(LINE_24H)[1])) == list(OSA_AGENTS)

    change = db.session.scalar(select(RoutingChange).order_by(RoutingChange.id.desc()))
    assert change is not None
    assert (change.actor, change.reason, change.before["state"], change.after["state"]) == (
        "sv@example.com",
        "fire in the building",
        "normal",
        "down",
    )
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "continuity.site_state"))
    assert entry is not None and entry.actor == "sv@example.com" and "fire in the building" in entry.summary

    assert post(supervisor, f"/continuity/changes/{change.id}/undo").status_code == 302
    assert state_of(center, "TKY") is SiteState.NORMAL
    assert dialed(twiml(carrier.call(LINE_24H)[1])) == list(TKY_AGENTS)
    assert db.session.get(RoutingChange, change.id).undone_by == "sv@example.com"  # type: ignore[union-attr]
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "continuity.site_state.undo"))
    # undone twice: refused
    assert post(supervisor, f"/continuity/changes/{change.id}/undo").status_code == 409


def test_one_click_on_the_board_needs_no_typed_reason(center: Center, supervisor: FlaskClient) -> None:
    html = board_page(supervisor)
    assert f'action="/continuity/sites/{center.tky.id}/state"' in html and 'value="down"' in html
    post(supervisor, f"/continuity/sites/{center.tky.id}/state", state="down")
    assert state_of(center, "TKY") is SiteState.DOWN
    change = db.session.scalar(select(RoutingChange).order_by(RoutingChange.id.desc()))
    assert change is not None and (change.actor, change.reason) == (
        "sv@example.com",
        "set on the routing board",
    )


def test_elsewhere_a_reason_is_required(center: Center) -> None:
    with pytest.raises(ValidationError):
        service.declare_site_state(site=center.tky, state=SiteState.DOWN, reason="  ", actor="cli")
    with pytest.raises(ValidationError):
        service.move_line(line=center.line, plan=center.plan_osaka, reason="", actor="cli")


def test_move_split_and_undo_a_line(center: Center, supervisor: FlaskClient, carrier: Carrier) -> None:
    post(
        supervisor,
        f"/continuity/lines/{center.line.id}/move",
        plan=str(center.plan_osaka.id),
        reason="Tokyo staff evacuating",
    )
    assert dialed(twiml(carrier.call(LINE_24H)[1])) == list(OSA_AGENTS)
    moved = db.session.scalar(select(RoutingChange).order_by(RoutingChange.id.desc()))
    assert moved is not None and moved.after == {"override": {"plan_id": center.plan_osaka.id, "split": []}}

    post(
        supervisor,
        f"/continuity/lines/{center.line.id}/split",
        split="TKY=70, FUK=30",
        reason="share the load",
    )
    override = db.session.scalar(select(LineOverride).where(LineOverride.line_id == center.line.id))
    assert override is not None and override.split == [
        {"site": "TKY", "weight": 70},
        {"site": "FUK", "weight": 30},
    ]
    assert override.plan_id == center.plan_osaka.id  # a split keeps the move

    # the move cannot be undone while the later split stands
    assert post(supervisor, f"/continuity/changes/{moved.id}/undo").status_code == 409
    split = db.session.scalar(select(RoutingChange).order_by(RoutingChange.id.desc()))
    assert split is not None
    post(supervisor, f"/continuity/changes/{split.id}/undo")
    post(supervisor, f"/continuity/changes/{moved.id}/undo")
    assert db.session.scalar(select(LineOverride).where(LineOverride.line_id == center.line.id)) is None
    assert dialed(twiml(carrier.call(LINE_24H)[1])) == list(TKY_AGENTS)


def test_split_traffic_follows_the_percentages(center: Center, carrier: Carrier) -> None:
    service.split_line(line=center.line, shares=[("TKY", 50), ("OSA", 50)], reason="balance", actor="test")
    first = {tuple(dialed(twiml(carrier.call(LINE_24H)[1]))) for _ in range(30)}
    assert first == {TKY_AGENTS, OSA_AGENTS}


@pytest.mark.parametrize("text", ["TKY=70, XXX=30", "TKY", "TKY=0", "TKY=abc"])
def test_bad_splits_are_refused(center: Center, supervisor: FlaskClient, text: str) -> None:
    post(supervisor, f"/continuity/lines/{center.line.id}/split", split=text, reason="x")
    assert db.session.scalar(select(LineOverride)) is None


def test_emergency_from_the_board_and_its_end(
    center: Center, supervisor: FlaskClient, carrier: Carrier
) -> None:
    post(
        supervisor,
        "/continuity/emergencies",
        scope="site",
        site="TKY",
        announcement_ja="只今緊急対応中です。",
        announcement_en="We are handling an emergency.",
        reason="earthquake",
    )
    doc = twiml(carrier.call(LINE_24H)[1])
    assert [el.text for el in doc.iter("Say")] == ["只今緊急対応中です。", "We are handling an emergency."]
    (emergency,) = service.active_emergencies(organization_id=center.org.id, now=datetime.now(UTC))
    post(supervisor, f"/continuity/emergencies/{emergency.id}/end")
    assert dialed(twiml(carrier.call(LINE_24H)[1])) == list(TKY_AGENTS)
    started = db.session.scalar(
        select(RoutingChange).where(RoutingChange.subject_id == emergency.id).order_by(RoutingChange.id)
    )
    assert started is not None and started.reason == "earthquake"


def test_emergency_ends_by_itself(center: Center) -> None:
    now = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    service.start_emergency(
        organization_id=center.org.id,
        scope=EmergencyScope.GLOBAL,
        announcement_ja="地震",
        ends_at=now + timedelta(hours=1),
        actor="jma",
        now=now,
    )
    assert service.explain_route(line=center.line, at=now + timedelta(minutes=59)).mode.value == "emergency"
    assert service.explain_route(line=center.line, at=now + timedelta(hours=1)).mode.value == "open"


# --- scope ---------------------------------------------------------------------------------------------------


def test_scoped_supervisor_changes_only_their_sites_and_lines(center: Center, client: FlaskClient) -> None:
    login(client, make_user(center.org, Role.SUPERVISOR, sites=[center.osa]))
    html = board_page(client)
    assert f"/continuity/sites/{center.osa.id}/state" in html
    assert f"/continuity/sites/{center.tky.id}/state" not in html
    token = csrf_from(html)

    assert (
        client.post(
            f"/continuity/sites/{center.osa.id}/state",
            data={"state": "degraded", "reason": "half staffed", "csrf_token": token},
        ).status_code
        == 302
    )
    assert state_of(center, "OSA") is SiteState.DEGRADED
    refused = client.post(
        f"/continuity/sites/{center.tky.id}/state", data={"state": "down", "reason": "x", "csrf_token": token}
    )
    assert refused.status_code == 403
    assert state_of(center, "TKY") is SiteState.NORMAL
    # the 24h line's plan starts in Tokyo: not theirs to move
    moved = client.post(
        f"/continuity/lines/{center.line.id}/move",
        data={"plan": str(center.plan_osaka.id), "reason": "x", "csrf_token": token},
    )
    assert moved.status_code == 403
    # nor a global emergency, nor undoing a change to Tokyo
    change = service.declare_site_state(site=center.tky, state=SiteState.DOWN, reason="drill", actor="test")
    assert client.post(f"/continuity/changes/{change.id}/undo", data={"csrf_token": token}).status_code == 403
    emergency = client.post(
        "/continuity/emergencies", data={"scope": "global", "announcement_ja": "x", "csrf_token": token}
    )
    assert emergency.status_code == 403


def test_another_organizations_site_is_not_found(center: Center, supervisor: FlaskClient) -> None:
    from tests.factories import make_org, make_site

    other = make_site(make_org(), code="XYZ")
    response = post(supervisor, f"/continuity/sites/{other.id}/state", state="down", reason="x")
    assert response.status_code == 404


# --- heartbeats --------------------------------------------------------------------------------------------------


def test_heartbeat_token_is_shown_once_and_heartbeats_bring_a_site_back(
    center: Center, supervisor: FlaskClient, client: FlaskClient
) -> None:
    page = post(supervisor, f"/continuity/sites/{center.tky.id}/token")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    found = re.search(r"lhb_[A-Za-z0-9_-]+", page.text)
    assert found is not None
    token = found.group(0)
    assert token not in board_page(supervisor)
    status = db.session.scalar(select(SiteStatus).where(SiteStatus.site_id == center.tky.id))
    assert status is not None and status.token_hash and token not in status.token_hash

    url = "/api/v1/sites/TKY/heartbeat"
    assert client.post(url).status_code == 401
    assert client.post(url, headers={"Authorization": "Bearer lhb_wrong"}).status_code == 403
    assert (
        client.post("/api/v1/sites/OSA/heartbeat", headers={"Authorization": f"Bearer {token}"}).status_code
        == 403
    )
    ok = client.post(url, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json["state"] == "normal"

    last = db.session.scalar(select(SiteStatus.last_heartbeat_at).where(SiteStatus.site_id == center.tky.id))
    assert last is not None
    service.mark_silent_sites_down(now=last + timedelta(seconds=120))
    assert state_of(center, "TKY") is SiteState.DOWN
    back = client.post(url, headers={"Authorization": f"Bearer {token}"})
    assert back.json == {"site": "TKY", "state": "down", "proposed_up": True, "heartbeat_limit_s": 90}
    assert "Bring back up" in board_page(supervisor)


def test_automatic_return_when_heartbeats_come_back(center: Center) -> None:
    token = service.generate_site_token(site=center.osa, actor="test")
    service.update_heartbeat_settings(site=center.osa, heartbeat_limit_s=30, auto_return=True, actor="test")
    t0 = datetime(2026, 2, 1, tzinfo=UTC)
    service.record_heartbeat(site_code="OSA", token=token, now=t0)
    service.mark_silent_sites_down(now=t0 + timedelta(seconds=31))
    assert state_of(center, "OSA") is SiteState.DOWN
    service.record_heartbeat(site_code="OSA", token=token, now=t0 + timedelta(seconds=60))
    assert state_of(center, "OSA") is SiteState.NORMAL
    changes = db.session.scalars(select(RoutingChange).where(RoutingChange.subject_id == center.osa.id)).all()
    assert [(c.actor, c.after["state"]) for c in changes] == [("system", "down"), ("system", "normal")]


def test_a_site_forced_down_by_a_supervisor_stays_down_despite_heartbeats(center: Center) -> None:
    token = service.generate_site_token(site=center.osa, actor="test")
    service.update_heartbeat_settings(site=center.osa, heartbeat_limit_s=30, auto_return=True, actor="test")
    service.declare_site_state(
        site=center.osa, state=SiteState.EVACUATED, reason="evacuation order", actor="test"
    )
    service.record_heartbeat(site_code="OSA", token=token)
    assert state_of(center, "OSA") is SiteState.EVACUATED


def test_the_periodic_task_is_scheduled_and_marks_sites_down(center: Center, app: Flask) -> None:
    from continuity import tasks
    from core.celery import celery_app

    schedule = celery_app.conf.beat_schedule["continuity.check_heartbeats"]
    assert (schedule["task"], schedule["schedule"]) == ("continuity.check_heartbeats", 15.0)
    token = service.generate_site_token(site=center.fuk, actor="test")
    service.record_heartbeat(site_code="FUK", token=token, now=datetime.now(UTC) - timedelta(minutes=5))
    assert tasks.check_heartbeats.run() == [center.fuk.id]


# --- explain: the page and the CLI --------------------------------------------------------------------------------


def test_explain_page_at_three_in_the_morning(center: Center, supervisor: FlaskClient) -> None:
    page = supervisor.get(f"/continuity/explain?line={center.office_line.id}&at=2026-01-06T03:00")
    assert page.status_code == 200
    assert 'type="datetime-local"' in page.text and 'value="2026-01-06T03:00"' in page.text
    assert "line closed: outside business hours Mon-Fri 09:00-18:00 Asia/Tokyo" in page.text
    daytime = supervisor.get(f"/continuity/explain?line={center.office_line.id}&at=2026-01-06T10:00")
    assert "site TKY is normal, 2 agents available" in daytime.text


def test_cli_explain_json_equals_what_the_webhook_does(
    center: Center, app: Flask, carrier: Carrier, monkeypatch: pytest.MonkeyPatch
) -> None:
    service.declare_site_state(site=center.tky, state=SiteState.DOWN, reason="drill", actor="test")
    db.session.commit()  # as if a supervisor had done it: the CLI is another process
    when = datetime(2026, 1, 6, 1, 30, tzinfo=UTC)
    monkeypatch.setattr("continuity.webhooks.utcnow", lambda: when)
    result = app.test_cli_runner().invoke(
        args=["route", "explain", "--line", LINE_24H, "--at", when.isoformat(), "--json"]
    )
    assert result.exit_code == 0, result.output
    explained = json.loads(result.output)
    assert explained["at"] == "2026-01-06T10:30:00+09:00"
    assert explained["targets"][0]["reason"] == "site TKY is down"
    # nobody works from home in this center: after Osaka, the unmanned fallbacks
    assert [step["kind"] for step in explained["then"]] == ["voicemail", "sms_link", "announcement"]

    doc = twiml(carrier.call(LINE_24H)[1])
    assert dialed(doc) == explained["chosen"]["endpoints"]
    assert doc.find("Dial").get("timeout") == "16"  # type: ignore[union-attr]
    assert explained["chosen"]["site"] == "OSA"


def test_cli_set_state_is_audited_and_undoable(center: Center, app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "site",
            "set-state",
            "OSA",
            "evacuated",
            "--reason",
            "typhoon",
            "--organization",
            center.org.slug,
        ]
    )
    assert result.exit_code == 0, result.output
    assert state_of(center, "OSA") is SiteState.EVACUATED
    change = db.session.scalar(select(RoutingChange).order_by(RoutingChange.id.desc()))
    assert change is not None and change.actor == "cli"
    service.undo_change(change_id=change.id, organization_id=center.org.id, actor="cli")
    assert state_of(center, "OSA") is SiteState.NORMAL
    bad = runner.invoke(
        args=["site", "set-state", "NOPE", "down", "--reason", "x", "--organization", center.org.slug]
    )
    assert bad.exit_code != 0 and "no site NOPE" in bad.output


def test_cli_builds_plans_lines_and_agents(center: Center, app: Flask, tmp_path: Any) -> None:
    document = tmp_path / "plan.json"
    document.write_text(json.dumps({"site": "FUK", "targets": [{"kind": "site_agents", "site": "FUK"}]}))
    runner = app.test_cli_runner()
    org = ["--organization", center.org.slug]
    assert runner.invoke(args=["route", "plan-save", "fukuoka", str(document), *org]).exit_code == 0
    added = runner.invoke(
        args=["route", "line-add", "+15550100163", "--name", "Fukuoka", "--plan", "fukuoka", *org]
    )
    assert added.exit_code == 0, added.output
    agent = runner.invoke(args=["site", "agent-add", "FUK", "福岡 2", "client:f-agent-2", *org])
    assert agent.exit_code == 0, agent.output
    explained = json.loads(
        runner.invoke(args=["route", "explain", "--line", "+15550100163", "--json"]).output
    )
    assert explained["chosen"]["endpoints"] == ["+15550100171", "client:f-agent-2"]
    document.write_text(json.dumps({"targets": [{"kind": "teleport"}]}))
    refused = runner.invoke(args=["route", "plan-save", "fukuoka", str(document), *org])
    assert refused.exit_code != 0 and "kind must be one of" in refused.output


def test_undo_an_automatic_down_once_heartbeats_are_back(center: Center) -> None:
    token = service.generate_site_token(site=center.tky, actor="test")
    t0 = datetime(2026, 2, 1, tzinfo=UTC)
    service.record_heartbeat(site_code="TKY", token=token, now=t0)
    (status,) = service.mark_silent_sites_down(now=t0 + timedelta(seconds=91))
    down = db.session.scalar(select(RoutingChange).where(RoutingChange.subject_id == center.tky.id))
    assert down is not None
    service.record_heartbeat(site_code="TKY", token=token, now=t0 + timedelta(seconds=100))
    assert status.proposed_up
    service.undo_change(
        change_id=down.id, organization_id=center.org.id, actor="test", now=t0 + timedelta(seconds=110)
    )
    assert (status.state, status.proposed_up, status.down_for_silence) == (SiteState.NORMAL, False, False)


def test_an_older_change_cannot_be_undone_over_a_newer_one(center: Center) -> None:
    from core.errors import Conflict

    first = service.declare_site_state(
        site=center.osa, state=SiteState.DEGRADED, reason="half staffed", actor="t"
    )
    service.declare_site_state(site=center.osa, state=SiteState.EVACUATED, reason="evacuation", actor="t")
    with pytest.raises(Conflict):
        service.undo_change(change_id=first.id, organization_id=center.org.id, actor="t")
    assert state_of(center, "OSA") is SiteState.EVACUATED


def test_the_jma_trigger_switches_emergency_mode_on_once(center: Center) -> None:
    from ivr.jma import _routing_emergency_starter

    starter = _routing_emergency_starter()
    assert starter is not None
    now = datetime(2026, 3, 11, 5, 47, tzinfo=UTC)
    assert starter(center.org.id, "TKY", "震度6弱 東京都", now) is True
    assert starter(center.org.id, "TKY", "aftershock", now + timedelta(minutes=3)) is False  # already on
    decision = service.explain_route(line=center.line, at=now + timedelta(minutes=5))
    assert decision.mode.value == "emergency"
    assert decision.target is not None and decision.target.message is not None
    assert "地震" in decision.target.message.ja
    change = db.session.scalar(select(RoutingChange).where(RoutingChange.kind == "emergency"))
    assert change is not None and (change.actor, change.reason) == ("jma", "震度6弱 東京都")
