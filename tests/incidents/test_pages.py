"""Every screen renders, in Japanese by default, with a label on every input (they are used on phones)."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from flask.testing import FlaskClient

from core.auth.models import Role
from incidents import boards, care, notices, service, status, teams
from tests.factories import login, make_staff, make_user
from tests.incidents.conftest import World, answer, make_broadcast


class FormControls(HTMLParser):
    """Collects inputs that a screen reader could not name (not inside a <label>, no aria-label)."""

    def __init__(self) -> None:
        super().__init__()
        self.label_depth = 0
        self.unlabelled: list[str] = []
        self.viewport = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "meta" and a.get("name") == "viewport":
            self.viewport = True
        if tag == "label":
            self.label_depth += 1
        control = tag in ("input", "select", "textarea") and a.get("type") not in (
            "hidden",
            "submit",
            "button",
        )
        if control and not self.label_depth and not a.get("aria-label"):
            self.unlabelled.append(f"{tag} name={a.get('name')}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.label_depth -= 1


def _check(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    parser = FormControls()
    parser.feed(response.text)
    assert parser.unlabelled == [], (url, parser.unlabelled)
    assert parser.viewport, url
    return response.text


@pytest.fixture()
def filled(world: World, tmp_path: Any) -> dict[str, Any]:
    incident = service.declare_incident(
        organization_id=world.org.id,
        type="earthquake",
        severity="major",
        site_ids=[world.tokyo.id],
        actor="x",
    )
    service.assign_member(incident=incident, user_id=world.admin.id, role="commander", actor="x")
    board = boards.create_board(organization_id=world.org.id, title="指示", user=world.admin, is_admin=True)
    person = make_staff(world.org, site=world.tokyo)
    boards.add_post(board=board, body="報告", staff=person, instance_dir=tmp_path)
    group = teams.save_group(
        organization_id=world.org.id, name="経営陣", member_ids=[world.admin.id], actor="x"
    )
    teams.post_message(group=group, user=world.admin, body="こんにちは")
    notices.save_partner(
        organization_id=world.org.id, values={"company": "顧客A", "phone": "090-0000-0801"}, actor="x"
    )
    notice = notices.send_partner_notice(
        organization_id=world.org.id, subject_ja="件名", body_ja="本文", channels=["sms"], actor="x"
    )
    broadcast = make_broadcast(world.org)
    answer(broadcast, person, safety="2")
    care.sync_care_followups(broadcast.id)
    status.ensure_status_page(organization_id=world.org.id)
    return {"incident": incident, "board": board, "group": group, "notice": notice, "person": person}


def test_every_signed_in_screen(client: FlaskClient, world: World, filled: dict[str, Any]) -> None:
    japanese_admin = make_user(world.org, Role.ADMIN, email="ja-admin@example.com", language="ja")
    own = teams.save_group(
        organization_id=world.org.id, name="管理者", member_ids=[japanese_admin.id], actor="x"
    )
    login(client, japanese_admin)
    index = _check(client, "/incidents/")
    assert "インシデント" in index and "インシデントを宣言" in index
    incident = filled["incident"]
    detail = _check(client, f"/incidents/{incident.id}")
    assert "従業員の安全確保・避難" in detail and "初動対応" in detail
    for url in (
        "/incidents/new",
        f"/incidents/{incident.id}/timeline",
        "/incidents/status-page",
        "/incidents/notifications",
        "/incidents/partners",
        "/incidents/notices",
        "/incidents/notices/new",
        f"/incidents/notices/{filled['notice'].id}",
        "/incidents/care",
        "/incidents/groups",
        "/incidents/boards",
        f"/incidents/boards/{filled['board'].id}",
        f"/incidents/groups/{own.id}",
    ):
        _check(client, url)


def test_staff_pages(client: FlaskClient, filled: dict[str, Any]) -> None:
    token = filled["person"].self_service_token
    page = _check(client, f"/boards/{token}")
    assert "掲示板" in page  # the person's language (Japanese)
    _check(client, f"/boards/{token}/{filled['board'].id}")


def test_the_navigation_has_the_incidents_entry(client: FlaskClient, world: World) -> None:
    login(client, world.supervisor)
    page = client.get("/incidents/")
    assert 'href="/incidents/"' in page.text
