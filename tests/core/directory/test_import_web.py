"""The import screens: upload → preview with bad rows and line numbers → apply exactly the previewed file."""

from __future__ import annotations

import io
import re
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core import db
from core.auth.models import AuditEntry, Role
from core.directory.models import Staff
from tests.core.directory.conftest import World, fixture_bytes, settle
from tests.factories import csrf_from, login, make_staff, make_user


def upload(
    client: FlaskClient, data: bytes, *, name: str = "staff.csv", mode: str = "update", encoding: str = ""
) -> str:
    page = client.get("/staff/import")
    assert page.status_code == 200
    response = client.post(
        "/staff/import",
        data={
            "csrf_token": csrf_from(page.text),
            "file": (io.BytesIO(data), name),
            "mode": mode,
            "encoding": encoding,
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.text
    return str(response.headers["Location"])


def apply(client: FlaskClient, preview_html: str, upload_url: str, **extra: str) -> object:
    upload_id = upload_url.split("/staff/import/")[1].split("?")[0]
    digest = re.search(r'name="digest" value="([^"]+)"', preview_html)
    mode = re.search(r'name="mode" value="([^"]+)"', preview_html)
    assert digest and mode
    data = {"csrf_token": csrf_from(preview_html), "digest": digest.group(1), "mode": mode.group(1), **extra}
    return client.post(f"/staff/import/{upload_id}/apply", data=data)


def employee_ids(world: World) -> list[str]:
    return list(
        db.session.scalars(
            select(Staff.employee_id).where(Staff.organization_id == world.org.id).order_by(Staff.employee_id)
        )
    )


def test_preview_lists_bad_rows_with_line_numbers_and_apply_needs_consent(
    client: FlaskClient, world: World
) -> None:
    login(client, world.admin)
    location = upload(client, fixture_bytes("messy_sjis.csv"), name="messy.csv")
    preview = client.get(location)
    assert preview.status_code == 200
    html = preview.text
    assert "messy.csv" in html and "cp932" in html
    for line, reason in [
        (5, "employee id is empty"),
        (6, "unknown site code NGY"),
        (7, "invalid phone number １２３４５"),
        (9, "invalid prefecture 東京特別区"),
        (10, "language must be ja or en, not fr"),
        (12, "manager S9999 is not in the file or the directory"),
        (13, "employee id S1012 appears more than once (lines 13, 14)"),
    ]:
        assert re.search(rf'data-label="Line no.">{line}</td>.*?{re.escape(reason)}', html, re.S), (
            line,
            reason,
        )
    assert "髙橋 一郎" in html
    assert employee_ids(world) == []

    refused = apply(client, html, location)
    assert refused.status_code == 422  # type: ignore[attr-defined]
    assert "Nothing was imported" in refused.text  # type: ignore[attr-defined]
    assert employee_ids(world) == []

    applied = apply(client, html, location, skip_invalid="1")
    assert applied.status_code == 302  # type: ignore[attr-defined]
    assert employee_ids(world) == ["S1001", "S1002", "S1003", "S1015"]
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "staff.import"))
    assert entry is not None and entry.detail["source"] == "messy.csv"
    assert entry.detail["skipped_lines"] == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    # The upload is gone once applied: it cannot be applied twice.
    assert client.get(location).status_code == 404


def test_clean_file_shows_the_diff_and_applies(client: FlaskClient, world: World, app: Flask) -> None:
    make_staff(world.org, employee_id="T0002", name="石井 陽子", site=world.osaka, phone="+819000000202")
    settle()
    login(client, world.admin)
    location = upload(client, fixture_bytes("clean_utf8_bom.csv"))
    html = client.get(location).text
    assert "T0001" in html and "青木 誠" in html
    assert re.search(r"Site.*?OSA.*?→.*?TKY", html, re.S)  # T0002 moves from Osaka to Tokyo
    assert "福岡受付" in html  # a department to create
    response = apply(client, html, location)
    assert response.status_code == 302  # type: ignore[attr-defined]
    assert len(employee_ids(world)) == 6
    folder = (
        Path(app.extensions["lifeline.settings"].instance_dir)
        / "imports"
        / location.split("/")[-1].split("?")[0]
    )
    assert not folder.exists()


def test_replace_mode_preview_lists_who_would_be_removed(client: FlaskClient, world: World) -> None:
    make_staff(world.org, employee_id="X0001", name="退職 予定")
    settle()
    login(client, world.admin)
    location = upload(client, fixture_bytes("clean_utf8_bom.csv"), mode="replace")
    html = client.get(location).text
    assert "X0001 退職 予定" in html
    assert "Apply and remove 1 people" in html
    assert employee_ids(world) == ["X0001"]
    update_html = client.get(location.replace("mode=replace", "mode=update")).text
    assert "X0001 退職 予定" not in update_html
    assert apply(client, html, location).status_code == 302  # type: ignore[attr-defined]
    assert "X0001" not in employee_ids(world)


def test_apply_refuses_when_the_directory_changed_since_the_preview(
    client: FlaskClient, world: World
) -> None:
    login(client, world.admin)
    location = upload(client, fixture_bytes("clean_utf8_bom.csv"))
    html = client.get(location).text
    make_staff(world.org, employee_id="T0001", name="先に 登録")
    settle()
    response = apply(client, html, location)
    assert response.status_code == 409  # type: ignore[attr-defined]
    assert "changed since this preview" in response.text  # type: ignore[attr-defined]
    assert employee_ids(world) == ["T0001"]


def test_unreadable_upload_is_explained(client: FlaskClient, world: World) -> None:
    login(client, world.admin)
    location = upload(client, "氏名,給与\r\nx,1\r\n".encode("cp932"))
    response = client.get(location)
    assert response.status_code == 422
    assert "unknown columns: 給与" in response.text
    assert "missing" not in response.text or "employee_id" in response.text


def test_forced_encoding_is_used(client: FlaskClient, world: World) -> None:
    login(client, world.admin)
    location = upload(client, fixture_bytes("messy_sjis.csv"), encoding="utf-8")
    assert "not valid utf-8" in client.get(location).text


def test_uploads_are_private_to_the_organization_and_ids_are_checked(
    client: FlaskClient, world: World
) -> None:
    login(client, world.admin)
    location = upload(client, fixture_bytes("clean_utf8_bom.csv"))
    assert client.get("/staff/import/..%2F..%2Fsecret_key").status_code == 404
    assert client.get("/staff/import/short").status_code == 404
    from tests.factories import make_org

    other_admin = make_user(make_org(), Role.ADMIN)
    settle()
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/staff").text)})
    login(client, other_admin)
    assert client.get(location).status_code == 404


def test_empty_upload_is_refused(client: FlaskClient, world: World) -> None:
    login(client, world.admin)
    page = client.get("/staff/import")
    response = client.post(
        "/staff/import",
        data={"csrf_token": csrf_from(page.text), "file": (io.BytesIO(b""), "empty.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "Choose a CSV file" in response.text
