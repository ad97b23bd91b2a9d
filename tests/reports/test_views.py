"""The drill screens as a signed-in user (or a staff member with the observation link) sees them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core import db
from core.auth.models import Role
from reports import service
from reports.models import ActionStatus, CorrectiveAction, Drill, DrillState, LogEntry
from tests.factories import csrf_from, login, make_user, post_form
from tests.reports.conftest import T0, answer, recipients, start_drill_broadcast


def a_drill(world, **kw):
    kw.setdefault("type", "notification_test")
    kw.setdefault("scenario", "earthquake")
    kw.setdefault("title", "地震想定 安否確認訓練")
    kw.setdefault("planned_start_at", T0)
    return service.create_drill(organization_id=world.org.id, actor="tester", **kw)


def fresh(obj):
    """The row as the database has it now (the request's own session has come and gone)."""
    return db.session.get(type(obj), obj.id, populate_existing=True)


@pytest.fixture()
def crisis(client, world):
    login(client, world.users["crisis"])
    return client


def test_facilities_may_not_see_drills(client, world):
    drill = a_drill(world)
    login(client, world.users["facilities"])
    for url in ("/drills", f"/drills/{drill.id}", f"/drills/{drill.id}/report.pdf", "/drills/actions.csv"):
        assert client.get(url).status_code == 403, url


def test_signed_out_visitors_are_sent_to_the_login(client, world):
    response = client.get("/drills")
    assert response.status_code in (302, 401)


def test_drills_are_in_the_navigation_of_crisis_managers(crisis, world):
    page = crisis.get("/drills")
    assert page.status_code == 200
    assert 'href="/drills"' in page.text and "訓練" in page.text  # Japanese user


def test_a_crisis_manager_creates_a_drill_from_the_form(crisis, world):
    response = post_form(
        crisis,
        "/drills/new",
        title="台風想定 机上訓練",
        type="tabletop",
        scenario="typhoon",
        objectives="初動の確認",
        planned_start_at="2026-09-01T10:00",
        planned_end_at="2026-09-01T12:00",
    )
    assert response.status_code == 302
    drill = db.session.scalar(select(Drill).where(Drill.title == "台風想定 机上訓練"))
    assert drill is not None and drill.state is DrillState.PLANNED
    assert drill.planned_start_at.isoformat() == "2026-09-01T01:00:00+00:00"  # 10:00 in Tokyo
    page = crisis.get(response.headers["Location"])
    assert "台風想定 机上訓練" in page.text and "初動の確認" in page.text


def test_a_bad_form_is_explained_and_saves_nothing(crisis, world):
    response = post_form(crisis, "/drills/new", title="", type="tabletop", scenario="typhoon")
    assert response.status_code == 200
    assert "訓練の件名を入力してください" in response.text
    assert db.session.scalar(select(Drill).where(Drill.organization_id == world.org.id)) is None


def test_the_drill_page_shows_the_linked_broadcast_live_figures(crisis, world):
    broadcast = start_drill_broadcast(world)
    for n, person in enumerate(recipients(broadcast)[:6]):
        answer(person, after_seconds=60 * (n + 1))
    drill = a_drill(world)
    service.link_broadcast(drill=drill, broadcast_id=broadcast.id, actor="t")
    page = crisis.get(f"/drills/{drill.id}")
    assert page.status_code == 200
    assert f"/broadcasts/{broadcast.id}" in page.text
    assert '<p class="big">12</p>' in page.text and '<p class="big">6</p>' in page.text
    assert "6分0秒" in page.text or "6分00秒" in page.text  # time to 50 %: the 6th answer after 6 minutes
    assert "営業部" in page.text
    assert f"/drills/{drill.id}/report.pdf?lang=ja" in page.text


def test_print_button_returns_the_pdf(crisis, world):
    drill = a_drill(world)
    response = crisis.get(f"/drills/{drill.id}/report.pdf?lang=ja")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")
    assert "attachment" in response.headers["Content-Disposition"]


def test_a_manager_reads_but_does_not_change(client, world):
    drill = a_drill(world)
    login(client, world.users["manager"])
    page = client.get(f"/drills/{drill.id}")
    assert page.status_code == 200
    assert "/actions" not in page.text.split('id="actions"')[1].split("</table>")[1][:200]
    assert client.get(f"/drills/{drill.id}/report.pdf").status_code == 200
    response = client.post(
        f"/drills/{drill.id}/state", data={"action": "start", "csrf_token": csrf_from(page.text)}
    )
    assert response.status_code == 403
    assert fresh(drill).state is DrillState.PLANNED


def test_another_organizations_drill_is_not_found(crisis, world):
    from tests.factories import make_org

    other = service.create_drill(
        organization_id=make_org().id, type="tabletop", scenario="fire", title="secret", actor="t"
    )
    assert crisis.get(f"/drills/{other.id}").status_code == 404
    assert crisis.get(f"/drills/{other.id}/report.pdf").status_code == 404


def test_observation_link_works_without_login_and_records_only_on_post(client, world):
    drill = a_drill(world)
    token = service.observation_token(drill=drill, actor="t")
    page = client.get(f"/o/{token}")
    assert page.status_code == 200
    assert 'name="author"' in page.text and "<label>" in page.text
    assert (
        db.session.scalar(select(LogEntry).where(LogEntry.drill_id == drill.id)) is None
    )  # GET records nothing
    response = client.post(
        f"/o/{token}",
        data={
            "csrf_token": csrf_from(page.text),
            "author": "山田 花子",
            "text": "大阪で着信を確認",
            "kind": "log",
        },
    )
    assert response.status_code == 302
    entry = db.session.scalar(select(LogEntry).where(LogEntry.drill_id == drill.id))
    assert entry is not None and entry.author == "山田 花子" and entry.via == "link"
    assert client.get("/o/not-a-token").status_code == 404


def test_forms_refuse_a_post_without_csrf_token(client, world):
    drill = a_drill(world)
    token = service.observation_token(drill=drill, actor="t")
    response = client.post(f"/o/{token}", data={"author": "x", "text": "y"})
    assert response.status_code == 400


def test_a_participant_without_a_drill_role_writes_from_the_phone_page(client, world):
    drill = a_drill(world)
    participant = make_user(world.org, Role.FACILITIES)
    service.add_participant(drill=drill, user_id=participant.id, actor="t")
    outsider = make_user(world.org, Role.FACILITIES)
    login(client, participant)
    response = post_form(
        client, f"/drills/{drill.id}/observe", text="備蓄倉庫の鍵が見つからない", kind="issue"
    )
    assert response.status_code == 302
    assert [e.text for e in fresh(drill).entries] == ["備蓄倉庫の鍵が見つからない"]
    client.post("/logout", data={"csrf_token": csrf_from(client.get(f"/drills/{drill.id}/observe").text)})
    login(client, outsider)
    assert client.get(f"/drills/{drill.id}/observe").status_code == 403


def test_corrective_actions_from_the_drill_page(crisis, world):
    drill = a_drill(world)
    response = post_form(
        crisis,
        f"/drills/{drill.id}",
        f"/drills/{drill.id}/actions",
        title="IVR の案内文を更新",
        owner="鈴木",
        due_on="2026-04-30",
    )
    assert response.status_code == 302
    action = db.session.scalar(select(CorrectiveAction).where(CorrectiveAction.drill_id == drill.id))
    assert action is not None and action.owner == "鈴木" and action.due_on.isoformat() == "2026-04-30"
    response = post_form(crisis, f"/drills/{drill.id}", f"/drills/actions/{action.id}", status="done")
    assert response.status_code == 302
    action = fresh(action)
    assert action.status is ActionStatus.DONE and action.closed_at is not None
    listing = crisis.get("/drills/actions?all=1")
    assert "IVR の案内文を更新" in listing.text
    export = crisis.get("/drills/actions.csv")
    assert export.data.startswith(b"\xef\xbb\xbf") and "IVR の案内文を更新" in export.data.decode("utf-8-sig")


def test_start_and_finish_from_the_page(crisis, world):
    drill = a_drill(world)
    post_form(crisis, f"/drills/{drill.id}", f"/drills/{drill.id}/state", action="start")
    assert fresh(drill).state is DrillState.IN_PROGRESS
    post_form(crisis, f"/drills/{drill.id}", f"/drills/{drill.id}/state", action="finish")
    drill = fresh(drill)
    assert drill.state is DrillState.COMPLETED and drill.actual_end_at is not None


def test_starting_the_drill_broadcast_from_the_page(crisis, world):
    drill = a_drill(world)
    response = post_form(
        crisis,
        f"/drills/{drill.id}",
        f"/drills/{drill.id}/broadcast",
        action="start",
        template="earthquake",
        audience="sites",
        sites="TKY",
    )
    assert response.status_code == 302
    drill = fresh(drill)
    assert drill.broadcast_id is not None
    assert len(recipients(service.ivr_service.get_broadcast(broadcast_id=drill.broadcast_id))) == 6


def test_schedule_settings(crisis, world):
    response = post_form(
        crisis,
        "/drills/schedule",
        enabled="1",
        drill_type="notification_test",
        every_months="2",
        day_of_month="10",
        start_hour="9",
        duration_minutes="45",
        scenarios=["typhoon", "earthquake", ""],
        remind_days_before="5",
    )
    assert response.status_code == 302
    schedule = service.get_schedule(organization_id=world.org.id)
    assert schedule is not None
    assert (schedule.every_months, schedule.day_of_month, schedule.scenarios) == (
        2,
        10,
        ["typhoon", "earthquake"],
    )
    page = crisis.get("/drills/schedule")
    assert "台風・大雨" in page.text  # the preview of the next drills


def test_metrics_csv_download(crisis, world):
    broadcast = start_drill_broadcast(world)
    answer(recipients(broadcast)[0], after_seconds=30)
    drill = a_drill(world)
    service.link_broadcast(drill=drill, broadcast_id=broadcast.id, actor="t")
    response = crisis.get(f"/drills/{drill.id}/metrics.csv")
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.data.startswith(b"\xef\xbb\xbf")
    assert "回答率" in response.data.decode("utf-8-sig")


def test_times_are_entered_and_shown_in_tokyo_time(crisis, world):
    drill = a_drill(world, planned_start_at=T0.replace(hour=1, minute=0) + timedelta(days=1))
    page = crisis.get(f"/drills/{drill.id}")
    assert "10:00" in page.text
