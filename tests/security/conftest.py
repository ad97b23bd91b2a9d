"""A full installation to attack: the demo organization of every part, a running broadcast with answers, one
user per role, a user limited to one site, and private contact values that must never show anywhere.

Everything happens inside the test's rolled-back transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core import db
from core.auth.models import Role, User
from core.directory import service as directory_service
from core.directory.models import Organization, Site, Staff
from ivr import service as ivr_service
from ivr.models import Recipient
from tests.factories import login, make_user

# The small organization of the safety-broadcast tests serves the focused tests here.
from tests.ivr.conftest import backend, outbound, world  # noqa: F401

# Unique, recognisable private values (fictional numbers only). Each must never appear on any page, export, API
# response, PDF or log line: not as written, not as digits only.
PRIVATE_PHONE = "+819000004711"
PRIVATE_EMAIL = "hidden.person.4711@example.com"
FAMILY_PHONE = "+819000004722"
FAMILY_EMAIL = "family.member.4722@example.com"
HOME_AGENT_NUMBER = "+819000004733"


@dataclass
class Installation:
    org: Organization
    site_a: Site
    site_b: Site
    users: dict[str, User] = field(default_factory=dict)  # role name / "scoped" → user
    broadcast_id: int = 0
    answer_token: str = ""
    private_person: Staff | None = None


ROLE_NAMES = tuple(r.value for r in Role)
PRINCIPALS = (*ROLE_NAMES, "scoped", "anonymous")


def build_installation(app: Flask, *, answered_broadcast: bool = True) -> Installation:
    """The demo organization of every part, users, the private person; commits (savepoints in a test)."""
    from core.directory.cli import seed_parts
    from core.directory.demo import ORG_SLUG, load_demo_data

    settings = app.extensions["lifeline.settings"]
    load_demo_data(instance_dir=settings.instance_dir, encryption_key=settings.encryption_key)
    db.session.commit()
    seed_parts(settings)
    org = db.session.scalar(select(Organization).where(Organization.slug == ORG_SLUG))
    assert org is not None
    sites = db.session.scalars(select(Site).where(Site.organization_id == org.id).order_by(Site.code)).all()
    place = Installation(org=org, site_a=sites[0], site_b=sites[1])
    for role in Role:
        place.users[role.value] = make_user(org, role, email=f"sec-{role.value}@example.com")
    # Everything but admin, limited to the first site.
    place.users["scoped"] = make_user(
        org,
        Role.CRISIS_MANAGER,
        Role.MANAGER,
        Role.SUPERVISOR,
        Role.FACILITIES,
        email="sec-scoped@example.com",
        sites=[place.site_a],
    )
    person = db.session.scalar(
        select(Staff)
        .where(Staff.organization_id == org.id, Staff.site_id == place.site_a.id)
        .order_by(Staff.id)
    )
    assert person is not None
    for group, channel, value in (
        (directory_service.ContactGroup.PRIVATE, "phone", PRIVATE_PHONE),
        (directory_service.ContactGroup.PRIVATE, "email", PRIVATE_EMAIL),
        (directory_service.ContactGroup.FAMILY, "phone", FAMILY_PHONE),
        (directory_service.ContactGroup.FAMILY, "email", FAMILY_EMAIL),
    ):
        directory_service.add_self_service_contact(
            staff=person,
            group=group,
            channel=channel,
            value=value,
            label="",
            encryption_key=settings.encryption_key,
            region="JP",
            ip="127.0.0.1",
        )
    place.private_person = person
    if answered_broadcast:
        broadcast = ivr_service.start_broadcast(
            organization_id=org.id,
            template="earthquake",
            audience={"everyone": True},
            mode="drill",
            include_family=True,
            actor="security-test",
        )
        place.broadcast_id = broadcast.id
        recipient = db.session.scalar(
            select(Recipient).where(Recipient.broadcast_id == broadcast.id, Recipient.staff_id == person.id)
        )
        assert recipient is not None
        place.answer_token = recipient.token
        ivr_service.record_answers(recipient=recipient, answers={"safety": "2", "work": "2"}, channel="web")
    _other_parts(place)
    db.session.commit()
    return place


@pytest.fixture()
def installation(app: Flask, db_session: Any) -> Iterator[Installation]:
    yield build_installation(app)


def _other_parts(place: Installation) -> None:
    """An incident and a drill, so their pages are part of the walk (when those parts are installed)."""
    from core.app import _part_available

    if _part_available("incidents.service"):
        from incidents.service import declare_incident

        declare_incident(
            organization_id=place.org.id,
            type="earthquake",
            severity="major",
            site_ids=[place.site_a.id],
            title="Security walk",
            actor="security-test",
        )
    if _part_available("reports.service"):
        from reports.service import create_drill

        create_drill(
            organization_id=place.org.id,
            type="notification_test",
            scenario="earthquake",
            title="Security walk drill",
            actor="security-test",
        )


def signed_in(app: Flask, place: Installation, who: str) -> FlaskClient:
    """A browser: signed in as ``who`` (a role name or "scoped"), or not at all ("anonymous").

    Each principal browses from an address of its own, so the per-address limits (wrong links, wrong
    passwords) of one do not spill over to the next.
    """
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"192.0.2.{PRINCIPALS.index(who) + 10}"
    if who != "anonymous":
        login(client, place.users[who])
    return client
