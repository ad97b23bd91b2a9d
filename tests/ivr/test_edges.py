"""CLI, JSON API, CSV export and the crisis managers' pages."""

from __future__ import annotations

import codecs
import csv
import io
import json

import pytest
from sqlalchemy import select

from core import db
from core.auth.models import ApiToken, Role
from core.auth.service import create_api_token
from ivr import service
from ivr.models import Broadcast, Recipient
from tests.factories import login, make_user, post_form
from tests.ivr.conftest import NOW


def cli(app, *args):
    result = app.test_cli_runner().invoke(args=["broadcast", *args])
    return result


def test_cli_start_status_close_export(app, world, tmp_path):
    db.session.commit()
    result = cli(
        app, "start", "--template", "earthquake", "--site", "OSA", "--drill", "--channels", "sms,email"
    )
    assert result.exit_code == 0, result.output
    broadcast_id = int(result.output.strip())
    broadcast = db.session.get(Broadcast, broadcast_id)
    assert (
        broadcast.mode.value == "drill"
        and broadcast.channels == ["sms", "email"]
        and broadcast.origin == "cli"
    )
    status = json.loads(cli(app, "status", str(broadcast_id), "--json").output)
    for key in (
        "id",
        "state",
        "recipients",
        "answered",
        "unreached",
        "in_progress",
        "by_answer",
        "by_department",
        "by_site",
        "started_at",
        "first_answer_at",
    ):
        assert key in status
    assert status["recipients"] == 4 and status["by_answer"]["safety"] == {"1": 0, "2": 0, "3": 0, "4": 0}
    target = tmp_path / "answers.csv"
    assert cli(app, "export", str(broadcast_id), str(target)).exit_code == 0
    assert target.read_bytes().startswith(codecs.BOM_UTF8)
    assert "closed" in cli(app, "close", str(broadcast_id)).output
    assert json.loads(cli(app, "status", str(broadcast_id), "--json").output)["state"] == "closed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["start", "--template", "earthquake"], "choose who the broadcast goes to"),
        (["start", "--template", "meteor", "--all"], "no template 'meteor'"),
        (["start", "--template", "earthquake", "--site", "XXX"], "unknown site codes: XXX"),
        (["status", "999999"], "no broadcast 999999"),
    ],
)
def test_cli_errors_are_clear(app, world, args, message):
    db.session.commit()
    result = cli(app, *args)
    assert result.exit_code != 0 and message in result.output


def test_api_start_and_read(client, world):
    org_id = world.org.id
    token = create_api_token(organization_id=org_id, name="hr", actor="t")
    db.session.commit()  # a refused request rolls back whatever is not committed
    headers = {"Authorization": f"Bearer {token}"}
    body = {"template": "tsunami", "audience": {"prefectures": ["27"]}, "mode": "drill", "origin": "jma:42"}
    assert client.post("/api/v1/broadcasts", json=body, headers=headers).status_code == 403  # scope missing
    row = db.session.scalar(select(ApiToken).where(ApiToken.organization_id == org_id))
    row.scopes = "broadcasts:write"
    db.session.commit()
    created = client.post("/api/v1/broadcasts", json=body, headers=headers)
    assert created.status_code == 201, created.text
    data = created.get_json()
    assert data["recipients"] == 4 and data["origin"] == "jma:42" and data["mode"] == "drill"
    shown = client.get(f"/api/v1/broadcasts/{data['id']}", headers=headers)
    assert shown.status_code == 200 and shown.get_json()["id"] == data["id"]
    assert client.get(f"/api/v1/broadcasts/{data['id']}").status_code == 401
    bad = client.post("/api/v1/broadcasts", json={"template": "tsunami", "audience": {}}, headers=headers)
    assert bad.status_code == 400 and "choose who" in bad.get_json()["error"]


def read_csv(response, encoding):
    text = response.data.decode(encoding)
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def test_csv_opens_in_excel_and_hides_executives(client, world):
    world.staff[0].hide_from_answer_views = True
    world.staff[1].name = "山田 太郎"
    broadcast = service.start_broadcast(
        organization_id=world.org.id, template="earthquake", audience={"everyone": True}, actor="t", now=NOW
    )
    for r in db.session.scalars(select(Recipient).where(Recipient.broadcast_id == broadcast.id)):
        service.record_answers(recipient=r, answers={"safety": "1", "work": "2"}, channel="web")
    login(client, make_user(world.org, Role.MANAGER))
    utf8 = client.get(f"/broadcasts/{broadcast.id}/export.csv")
    assert utf8.status_code == 200 and utf8.data.startswith(codecs.BOM_UTF8)
    rows = read_csv(utf8, "utf-8")
    assert rows[0][:2] == ["employee_id", "name"] and rows[0][-3:] == ["safety", "work", "free_text"]
    assert len(rows) == 9
    names = [r[1] for r in rows[1:]]
    assert world.staff[0].name not in names and service.HIDDEN_NAME in names and "山田 太郎" in names
    sjis = client.get(f"/broadcasts/{broadcast.id}/export.csv?encoding=cp932")
    assert "山田 太郎" in [r[1] for r in read_csv(sjis, "cp932")[1:]]


def test_watch_page_and_json_polling_respect_roles_and_scope(client, world):
    broadcast = service.start_broadcast(
        organization_id=world.org.id, template="earthquake", audience={"everyone": True}, actor="t", now=NOW
    )
    osaka = make_user(world.org, Role.MANAGER, sites=[world.sites["OSA"]])
    db.session.commit()
    login(client, osaka)
    page = client.get(f"/broadcasts/{broadcast.id}")
    assert page.status_code == 200 and "broadcast_watch.js" in page.text
    assert client.get(f"/broadcasts/{broadcast.id}/status.json").get_json()["recipients"] == 4
    assert client.post(f"/broadcasts/{broadcast.id}/close").status_code in (400, 403)  # managers only read
    assert client.get("/broadcasts/new").status_code == 403
    assert client.get("/ivr/static/broadcast_watch.js").status_code == 200


def test_crisis_manager_starts_and_closes_from_the_pages(client, world):
    manager = make_user(world.org, Role.CRISIS_MANAGER)
    db.session.commit()
    login(client, manager)
    estimate = post_form(
        client,
        "/broadcasts/new",
        template="earthquake",
        mode="drill",
        audience="sites",
        sites="TYO",
        channels=["sms", "voice"],
        action="estimate",
    )
    assert estimate.status_code == 200 and "4 people" in estimate.text
    started = post_form(
        client,
        "/broadcasts/new",
        template="earthquake",
        mode="drill",
        audience="sites",
        sites="TYO",
        channels=["sms", "voice"],
        action="start",
    )
    assert started.status_code == 302
    broadcast = db.session.scalars(select(Broadcast).order_by(Broadcast.id.desc())).first()
    assert broadcast.channels == ["sms", "voice"] and broadcast.include_family is False
    watch = client.get(started.headers["Location"])
    assert "Close the broadcast" in watch.text
    closed = post_form(client, started.headers["Location"], f"/broadcasts/{broadcast.id}/close")
    assert closed.status_code == 302
    assert db.session.get(Broadcast, broadcast.id, populate_existing=True).state.value == "closed"


def test_template_editor_reports_every_problem(client, world):
    user = make_user(world.org, Role.CRISIS_MANAGER)
    db.session.commit()  # the refused form rolls back whatever is not committed
    login(client, user)
    definition = dict(service.BUILTIN["system_outage"], key="vpn_down", sms={"ja": "あ" * 80, "en": ""})
    response = post_form(
        client, "/broadcasts/templates", definition=json.dumps(definition, ensure_ascii=False)
    )
    assert response.status_code == 400
    assert (
        "sms.ja: 80 characters, at most 70" in response.text and "sms.en: a non-empty text" in response.text
    )
    definition["sms"] = {"ja": "VPN障害です。回答してください。", "en": "VPN is down. Please answer:"}
    saved = post_form(client, "/broadcasts/templates", definition=json.dumps(definition, ensure_ascii=False))
    assert saved.status_code == 302 and saved.headers["Location"].endswith("/broadcasts/templates"), (
        saved.text
    )
    assert "vpn_down" in client.get("/broadcasts/templates").text
