"""The person's own page (no login) and the promise that private contacts never leave it."""

from __future__ import annotations

import logging
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core import crypto, db
from core.auth.models import AuditEntry, Role
from core.auth.service import create_api_token
from core.directory import service
from core.directory.models import ContactKind, ContactPoint, Staff
from tests.core.directory.conftest import World, settle
from tests.factories import csrf_from, login, make_staff, make_user

SECRET_PHONE = "090-0000-0987"
SECRET_EMAIL = "hidden.person.private@example.net"
SECRET_FAMILY = "+81 90-0000-0988"
# Every way the secret numbers could be written on a page.
SECRET_FORMS = [
    "+819000000987", "09000000987", "090-0000-0987", "90-0000-0987", "+81 90-0000-0987", "9000000987",
    "0000-0987", "+819000000988", "090-0000-0988", "9000000988", "0000-0988",
    SECRET_EMAIL, "hidden.person.private",
]  # fmt: skip


@pytest.fixture()
def person(world: World) -> Staff:
    made = make_staff(
        world.org,
        employee_id="P001",
        name="秘密 守",
        name_kana="ヒミツ マモル",
        site=world.tokyo,
        department=world.tokyo_desk,
        phone="+819000000031",
        email="mamoru.himitsu@example.com",
    )
    settle()
    return made


def me(person: Staff) -> str:
    return f"/me/{person.self_service_token}"


def add(
    client: FlaskClient,
    person: Staff,
    *,
    value: str,
    channel: str = "phone",
    group: str = "private",
    **extra: str,
) -> object:
    page = client.get(me(person) + "?lang=en")
    assert page.status_code == 200
    return client.post(
        f"{me(person)}/contacts",
        data={
            "csrf_token": csrf_from(page.text),
            "group": group,
            "channel": channel,
            "value": value,
            **extra,
        },
    )


def test_self_service_page_needs_no_login_and_shows_work_contacts(client: FlaskClient, person: Staff) -> None:
    page = client.get(me(person), headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert "秘密 守" in page.text
    assert "+81 90-0000-0031" in page.text
    assert "mamoru.himitsu@example.com" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert 'name="csrf_token"' in page.text


def test_page_follows_the_persons_language_unless_asked(client: FlaskClient, world: World) -> None:
    english = make_staff(world.org, employee_id="P002", name="Emily Carter", language="en")
    japanese = make_staff(world.org, employee_id="P003", name="日本 花子")
    settle()
    assert "My emergency contacts" in client.get(me(english)).text
    assert "緊急連絡先" in client.get(me(japanese)).text
    assert "My emergency contacts" in client.get(me(japanese) + "?lang=en").text


def test_adding_a_private_phone_masks_it_encrypts_it_and_audits_without_the_value(
    client: FlaskClient, app: Flask, person: Staff
) -> None:
    response = add(client, person, value="０９０－００００－０９８７")
    assert response.status_code == 302  # type: ignore[attr-defined]
    page = client.get(me(person)).text
    assert "87" in page
    for form in SECRET_FORMS[:7]:
        assert form not in page
    stored = db.session.scalar(select(ContactPoint).where(ContactPoint.kind == ContactKind.PRIVATE_PHONE))
    assert stored is not None
    assert stored.value is None and stored.verified_at is not None
    assert b"0987" not in stored.value_encrypted
    assert (
        crypto.decrypt(stored.value_encrypted, app.extensions["lifeline.settings"].encryption_key)
        == "+819000000987"
    )
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "contact.add"))
    assert entry is not None
    assert "0987" not in entry.summary + str(entry.detail)
    assert entry.actor == "self-service:P001"


@pytest.mark.parametrize(
    ("channel", "value", "message"),
    [("phone", "12", "This is not a phone number."), ("email", "not-an-address", "This is not an e-mail address."),
     ("fax", "x", "Choose phone or e-mail.")],
)  # fmt: skip
def test_bad_values_are_refused(
    client: FlaskClient, person: Staff, channel: str, value: str, message: str
) -> None:
    response = add(client, person, value=value, channel=channel)
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert message in response.text  # type: ignore[attr-defined]
    assert (
        db.session.scalar(select(ContactPoint.id).where(ContactPoint.kind == ContactKind.PRIVATE_PHONE))
        is None
    )


def test_at_most_three_private_contacts_and_no_duplicates(client: FlaskClient, person: Staff) -> None:
    assert add(client, person, value="090-0000-0981").status_code == 302  # type: ignore[attr-defined]
    again = add(client, person, value="+819000000981")
    assert again.status_code == 422 and "already registered" in again.text  # type: ignore[attr-defined]
    assert add(client, person, value="090-0000-0982").status_code == 302  # type: ignore[attr-defined]
    assert add(client, person, value="me@example.net", channel="email").status_code == 302  # type: ignore[attr-defined]
    fourth = add(client, person, value="090-0000-0983")
    assert fourth.status_code == 422  # type: ignore[attr-defined]
    assert "at most 3 private contacts" in fourth.text  # type: ignore[attr-defined]
    # Family contacts have their own three places.
    assert add(client, person, value="090-0000-0984", group="family", label="母").status_code == 302  # type: ignore[attr-defined]
    page = client.get(me(person)).text
    assert "(3/3)" in page and "(1/3)" in page and "母" in page


def test_removing_a_contact(client: FlaskClient, person: Staff) -> None:
    add(client, person, value="090-0000-0985")
    contact_id = db.session.scalar(
        select(ContactPoint.id).where(ContactPoint.kind == ContactKind.PRIVATE_PHONE)
    )
    page = client.get(me(person))
    response = client.post(
        f"{me(person)}/contacts/{contact_id}/remove", data={"csrf_token": csrf_from(page.text)}
    )
    assert response.status_code == 302
    assert db.session.scalar(select(ContactPoint.id).where(ContactPoint.id == contact_id)) is None
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "contact.remove"))
    assert entry is not None and "0985" not in entry.summary + str(entry.detail)
    # Work contacts cannot be removed from here.
    work_id = db.session.scalar(select(ContactPoint.id).where(ContactPoint.kind == ContactKind.WORK_PHONE))
    refused = client.post(
        f"{me(person)}/contacts/{work_id}/remove", data={"csrf_token": csrf_from(page.text)}
    )
    assert refused.status_code == 404
    assert db.session.scalar(select(ContactPoint.id).where(ContactPoint.id == work_id)) == work_id


def test_forms_need_the_csrf_token(client: FlaskClient, person: Staff) -> None:
    client.get(me(person))
    response = client.post(
        f"{me(person)}/contacts", data={"group": "private", "channel": "phone", "value": SECRET_PHONE}
    )
    assert response.status_code == 400
    assert (
        db.session.scalar(select(ContactPoint.id).where(ContactPoint.kind == ContactKind.PRIVATE_PHONE))
        is None
    )


def test_confirming_refreshes_verified_at(client: FlaskClient, person: Staff) -> None:
    add(client, person, value="090-0000-0986")
    before = db.session.scalar(
        select(ContactPoint.verified_at).where(ContactPoint.kind == ContactKind.PRIVATE_PHONE)
    )
    page = client.get(me(person))
    assert client.post(f"{me(person)}/confirm", data={"csrf_token": csrf_from(page.text)}).status_code == 302
    after = db.session.scalar(
        select(ContactPoint.verified_at).where(ContactPoint.kind == ContactKind.PRIVATE_PHONE)
    )
    assert before is not None and after is not None and after >= before
    assert (
        db.session.scalar(select(AuditEntry.action).where(AuditEntry.action == "contact.confirm"))
        == "contact.confirm"
    )


def test_unknown_link_is_a_clear_404_page(client: FlaskClient, world: World) -> None:
    for url in ["/me/not-a-real-token", "/me/" + "x" * 100]:
        response = client.get(url, headers={"Accept-Language": "en"})
        assert response.status_code == 404
        assert "This link is not valid" in response.text
    response = client.post("/me/not-a-real-token/contacts", data={})
    assert response.status_code in (400, 404)


def test_admin_card_qr_and_regenerating_the_link(client: FlaskClient, world: World, person: Staff) -> None:
    login(client, world.admin)
    card = client.get(f"/staff/{person.id}/self-service-card")
    assert card.status_code == 200
    old_link = f"http://localhost/me/{person.self_service_token}"
    assert old_link in card.text
    qr = client.get(f"/staff/{person.id}/self-service-qr.png")
    assert qr.status_code == 200 and qr.mimetype == "image/png"
    assert qr.data.startswith(b"\x89PNG\r\n\x1a\n")
    regenerated = client.post(
        f"/staff/{person.id}/self-service-link",
        data={"csrf_token": csrf_from(card.text)},
        follow_redirects=True,
    )
    assert regenerated.status_code == 200
    assert old_link not in regenerated.text
    new_token = db.session.scalar(select(Staff.self_service_token).where(Staff.id == person.id))
    assert new_token and new_token != person.self_service_token
    assert f"http://localhost/me/{new_token}" in regenerated.text
    assert client.get(me(person)).status_code == 404
    assert client.get(f"/me/{new_token}").status_code == 200
    assert db.session.scalar(select(AuditEntry.action).where(AuditEntry.action == "staff.self_service_link"))


def test_private_values_never_appear_anywhere_else(
    client: FlaskClient, app: Flask, world: World, person: Staff, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert add(client, person, value=SECRET_PHONE).status_code == 302  # type: ignore[attr-defined]
    assert add(client, person, value=SECRET_EMAIL, channel="email").status_code == 302  # type: ignore[attr-defined]
    assert add(client, person, value=SECRET_FAMILY, group="family", label="配偶者").status_code == 302  # type: ignore[attr-defined]
    token = create_api_token(organization_id=world.org.id, name="HR", actor="test")
    manager = make_user(world.org, Role.MANAGER)
    settle()

    pages: dict[str, str] = {}
    login(client, world.admin)
    for url in [
        "/staff",
        "/staff?q=秘密",
        "/staff?q=0987",
        f"/staff/{person.id}",
        f"/staff/{person.id}/edit",
        f"/staff/{person.id}/self-service-card",
        "/staff/export.csv",
        "/admin/audit",
        "/admin/users",
    ]:
        response = client.get(url)
        assert response.status_code == 200, url
        pages[url] = response.data.decode("utf-8-sig")
    pages["api"] = client.get("/api/v1/staff", headers={"Authorization": f"Bearer {token}"}).get_data(
        as_text=True
    )
    pages["api-since"] = client.get(
        "/api/v1/staff?updated_since=2000-01-01T00:00:00Z", headers={"Authorization": f"Bearer {token}"}
    ).get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_from(pages["/staff"])})
    login(client, manager)
    pages["manager list"] = client.get("/staff").text
    pages["manager detail"] = client.get(f"/staff/{person.id}").text
    pages["logs"] = "\n".join(r.getMessage() for r in caplog.records)
    pages["audit rows"] = "\n".join(
        f"{e.summary} {e.detail}" for e in db.session.scalars(select(AuditEntry)).all()
    )
    pages["repr"] = " ".join(repr(c) for c in db.session.scalars(select(ContactPoint)).all())

    for where in [
        "/staff",
        f"/staff/{person.id}",
        "/staff/export.csv",
        "api",
        "manager list",
        "manager detail",
    ]:
        assert "P001" in pages[where], where  # the pages do show the person
    for where, text in pages.items():
        for form in SECRET_FORMS:
            assert form not in text, f"{form!r} leaked into {where}"
    # What admins and managers do see: that the person registered contacts, and when they were verified.
    assert "Private contact registered" in pages["/staff"]
    assert re.search(
        r"Private phone</strong>: registered, verified on \d{4}-\d\d-\d\d", pages[f"/staff/{person.id}"]
    )
    assert "Family phone" in pages["manager detail"]
    assert '"private_contacts_registered":3' in pages["api"].replace(" ", "")
    # The senders of safety calls get the values, in order.
    reloaded = db.session.scalar(select(Staff).where(Staff.id == person.id))
    assert reloaded is not None
    reachable = service.reachable_contacts(
        staff=reloaded, encryption_key=app.extensions["lifeline.settings"].encryption_key
    )
    assert reachable == [
        (ContactKind.WORK_PHONE, "+819000000031"),
        (ContactKind.WORK_EMAIL, "mamoru.himitsu@example.com"),
        (ContactKind.PRIVATE_PHONE, "+819000000987"),
        (ContactKind.PRIVATE_EMAIL, SECRET_EMAIL),
        (ContactKind.FAMILY_PHONE, "+819000000988"),
    ]


def test_an_import_never_touches_private_contacts(client: FlaskClient, world: World, person: Staff) -> None:
    add(client, person, value=SECRET_PHONE)
    plan = service.plan_csv_import(
        organization_id=world.org.id,
        data="employee_id,name,work_phone\r\nP001,秘密 守,090-0000-0032\r\n".encode(),
        mode="update",
    )
    service.apply_import(plan=plan, skip_invalid=False, actor="test", source="t.csv")
    settle()
    kinds = sorted(
        k.value
        for k in db.session.scalars(select(ContactPoint.kind).where(ContactPoint.staff_id == person.id))
    )
    assert kinds == ["private_phone", "work_email", "work_phone"]
