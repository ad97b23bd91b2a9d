"""Builders for test data. Everything is flushed, not committed (the test's transaction is rolled back)."""

from __future__ import annotations

import itertools
import re
from typing import Any

from flask.testing import FlaskClient

from core import db
from core.auth.models import Role, RoleAssignment, User
from core.auth.service import hash_password
from core.directory.models import ContactKind, ContactPoint, Department, Organization, Site, Staff

_seq = itertools.count(1)
PASSWORD = "correct-horse-battery"
_HASH_CACHE: dict[str, str] = {}


def make_org(*, slug: str | None = None, name: str = "Test Org") -> Organization:
    org = Organization(slug=slug or f"org{next(_seq)}", name=name)
    db.session.add(org)
    db.session.flush()
    return org


def make_site(
    org: Organization, *, code: str, prefecture: str = "13", municipality: str = "", **kw: Any
) -> Site:
    site = Site(
        organization_id=org.id,
        code=code,
        name=kw.pop("name", code),
        prefecture_code=prefecture,
        municipality_code=municipality,
        **kw,
    )
    db.session.add(site)
    db.session.flush()
    return site


def make_department(org: Organization, name: str, parent: Department | None = None) -> Department:
    dept = Department(organization_id=org.id, name=name, parent_id=parent.id if parent else None)
    db.session.add(dept)
    db.session.flush()
    return dept


def make_staff(
    org: Organization,
    *,
    site: Site | None = None,
    department: Department | None = None,
    phone: str | None = None,
    email: str | None = None,
    **kw: Any,
) -> Staff:
    n = next(_seq)
    staff = Staff(
        organization_id=org.id,
        employee_id=kw.pop("employee_id", f"E{n:05d}"),
        name=kw.pop("name", f"Staff {n}"),
        site_id=site.id if site else None,
        department_id=department.id if department else None,
        **kw,
    )
    if phone:
        staff.contacts.append(ContactPoint(kind=ContactKind.WORK_PHONE, value=phone, position=0))
    if email:
        staff.contacts.append(ContactPoint(kind=ContactKind.WORK_EMAIL, value=email, position=1))
    db.session.add(staff)
    db.session.flush()
    return staff


def make_user(
    org: Organization,
    *roles: Role,
    email: str | None = None,
    sites: list[Site] | None = None,
    departments: list[Department] | None = None,
    language: str = "en",
) -> User:
    if PASSWORD not in _HASH_CACHE:
        _HASH_CACHE[PASSWORD] = hash_password(PASSWORD)
    user = User(
        organization_id=org.id,
        email=email or f"user{next(_seq)}@example.com",
        name="Test User",
        password_hash=_HASH_CACHE[PASSWORD],
        language=language,
    )
    user.roles = [
        RoleAssignment(role=r, sites=list(sites or []), departments=list(departments or [])) for r in roles
    ]
    db.session.add(user)
    db.session.flush()
    return user


_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def login(client: FlaskClient, user: User, password: str = PASSWORD) -> None:
    page = client.get("/login")
    response = client.post(
        "/login", data={"email": user.email, "password": password, "csrf_token": csrf_from(page.text)}
    )
    assert response.status_code == 302, response.text


def post_form(client: FlaskClient, page_url: str, post_url: str | None = None, **data: Any) -> Any:
    """Open a page as a browser would, then submit its form with the CSRF token it carries."""
    page = client.get(page_url)
    assert page.status_code == 200, page.status_code
    data["csrf_token"] = csrf_from(page.text)
    return client.post(post_url or page_url, data=data)
