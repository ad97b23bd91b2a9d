"""A small contact center with something of every part: two sites (Tokyo, Osaka) with their people, a 24-hour
line, and users for every role — organization-wide, and a manager scoped to Osaka."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from flask import g
from flask.testing import FlaskClient

from continuity import service as continuity_service
from core import db
from core.auth.models import Role, User
from core.directory.models import Department, Organization, Site, Staff
from core.time import utcnow
from ivr import service as ivr_service
from ivr.models import Broadcast, Recipient
from tests.factories import login, make_department, make_org, make_site, make_staff, make_user

LINE = "+15550100180"
PLAN: dict[str, Any] = {
    "site": "TKY",
    "targets": [
        {"kind": "site_agents", "site": "TKY", "ring_timeout_s": 15},
        {"kind": "site", "site": "OSA", "ring_timeout_s": 15},
        {"kind": "voicemail"},
    ],
}


@dataclass
class World:
    org: Organization
    tky: Site
    osa: Site
    sales: Department
    support: Department
    staff: list[Staff]
    users: dict[str, User] = field(default_factory=dict)

    def staff_at(self, site: Site) -> list[Staff]:
        return [s for s in self.staff if s.site_id == site.id]


@pytest.fixture()
def world(db_session: Any) -> World:
    org = make_org(name="Overview Test")
    tky = make_site(org, code="TKY", prefecture="13", name="東京センター", name_en="Tokyo center")
    osa = make_site(org, code="OSA", prefecture="27", name="大阪センター", name_en="Osaka center")
    sales = make_department(org, "Sales")
    support = make_department(org, "Support")
    staff = []
    for n in range(8):
        site = tky if n < 4 else osa
        staff.append(
            make_staff(
                org,
                site=site,
                department=sales if n % 2 == 0 else support,
                phone=f"+8190000004{n:02d}",
                email=f"overview{n}@example.com",
            )
        )
    w = World(org=org, tky=tky, osa=osa, sales=sales, support=support, staff=staff)
    w.users = {
        "admin": make_user(org, Role.ADMIN),
        "crisis_manager": make_user(org, Role.CRISIS_MANAGER),
        "manager": make_user(org, Role.MANAGER),
        "supervisor": make_user(org, Role.SUPERVISOR),
        "facilities": make_user(org, Role.FACILITIES),
        "osaka_manager": make_user(org, Role.MANAGER, sites=[osa]),
        "osaka_supervisor": make_user(org, Role.SUPERVISOR, sites=[osa]),
        "nobody": make_user(org),
    }
    for n, site in enumerate((tky, osa)):
        continuity_service.add_agent(
            site=site, name=f"{site.code} 1", endpoint=f"client:overview-{n}", actor="test"
        )
    plan = continuity_service.save_plan(organization_id=org.id, name="support", definition=PLAN, actor="test")
    continuity_service.add_line(
        organization_id=org.id, number=LINE, name="Support line", plan=plan, actor="test"
    )
    db.session.commit()
    return w


def start_broadcast(world: World, *, template: str = "earthquake", now: datetime | None = None) -> Broadcast:
    broadcast = ivr_service.start_broadcast(
        organization_id=world.org.id,
        template=template,
        audience={"everyone": True},
        mode="drill",
        actor="test",
        now=now or utcnow(),
    )
    db.session.commit()
    return broadcast


def answer(broadcast: Broadcast, person: Staff, **answers: str) -> None:
    recipient = db.session.query(Recipient).filter_by(broadcast_id=broadcast.id, staff_id=person.id).one()
    ivr_service.record_answers(recipient=recipient, answers=answers, channel="web")
    db.session.commit()


def fresh(client: FlaskClient) -> FlaskClient:
    """Before a request from another client: the test's app context outlives requests, so ``g`` does too, and
    Flask-Login (the signed-in user) and Flask-WTF (the CSRF token) cache per-session things in it — without this a
    second client would be served as the first one's user, with the first one's token."""
    for name in list(vars(g)):
        g.pop(name, None)
    return client


def signed_in(client: FlaskClient, user: User) -> FlaskClient:
    login(fresh(client), user)
    return client
