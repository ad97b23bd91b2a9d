from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from core import db
from core.auth.models import AuditEntry, AuditLogIsAppendOnly, Role
from core.auth.service import audit
from tests.factories import login, make_org, make_user


def test_login_page_is_served_with_security_headers(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert "csrf_token" in response.text
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_wrong_password_is_refused_and_audited(client, db_session):
    org = make_org()
    user = make_user(org, Role.ADMIN)
    from tests.factories import csrf_from

    page = client.get("/login")
    response = client.post(
        "/login", data={"email": user.email, "password": "nope-nope-nope", "csrf_token": csrf_from(page.text)}
    )
    assert response.status_code == 401
    actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.actor_user_id == user.id)).all()
    assert actions == ["login.failed"]


def test_login_without_csrf_token_is_rejected(client, db_session):
    org = make_org()
    user = make_user(org, Role.ADMIN)
    response = client.post("/login", data={"email": user.email, "password": "x"})
    assert response.status_code == 400


def test_repeated_failures_lock_the_account(client, db_session):
    org = make_org()
    user = make_user(org, Role.ADMIN)
    from tests.factories import PASSWORD, csrf_from

    for _ in range(5):
        page = client.get("/login")
        client.post(
            "/login",
            data={"email": user.email, "password": "wrong-password", "csrf_token": csrf_from(page.text)},
        )
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"email": user.email, "password": PASSWORD, "csrf_token": csrf_from(page.text)},
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 401
    assert "try again later" in response.text


def test_successful_login_is_audited(client, db_session):
    org = make_org()
    user = make_user(org, Role.ADMIN)
    login(client, user)
    assert db.session.scalar(select(AuditEntry.action).where(AuditEntry.actor_user_id == user.id)) == "login"


def test_audit_log_is_append_only(db_session):
    org = make_org()
    entry = audit(action="test", organization_id=org.id, actor="tester")
    entry.summary = "changed"
    with pytest.raises(AuditLogIsAppendOnly):
        db.session.flush()
    db.session.rollback()


def test_timestamps_come_back_timezone_aware(db_session):
    org = make_org()
    entry = audit(action="tz", organization_id=org.id, actor="tester")
    db.session.expire_all()
    reloaded = db.session.get(AuditEntry, entry.id)
    assert isinstance(reloaded.at, datetime)
    assert reloaded.at.tzinfo is not None
