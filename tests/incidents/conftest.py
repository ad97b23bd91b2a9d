"""Shared builders for the incidents tests: an organization with two sites, users of each role, a broadcast."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from core import db
from core.auth.models import Role, User
from core.directory.models import Department, Organization, Site
from core.time import utcnow
from ivr.models import AnswerChannel, Broadcast, BroadcastMode, BroadcastState, Recipient
from ivr.scenarios import BUILTIN
from ivr.service import record_answers
from tests.factories import make_department, make_org, make_site, make_staff, make_user


@dataclass
class World:
    org: Organization
    tokyo: Site
    osaka: Site
    reception: Department
    admin: User
    crisis: User
    supervisor: User
    manager: User
    osaka_manager: User  # a manager limited to the Osaka site


@pytest.fixture()
def world(db_session: Any) -> World:
    org = make_org(name="Demo Co.")
    tokyo = make_site(org, code="TKY", name="東京本社", name_en="Tokyo head office")
    osaka = make_site(org, code="OSA", name="大阪センター", name_en="Osaka center", prefecture="27")
    reception = make_department(org, "受付")
    return World(
        org=org,
        tokyo=tokyo,
        osaka=osaka,
        reception=reception,
        admin=make_user(org, Role.ADMIN),
        crisis=make_user(org, Role.CRISIS_MANAGER),
        supervisor=make_user(org, Role.SUPERVISOR),
        manager=make_user(org, Role.MANAGER),
        osaka_manager=make_user(org, Role.MANAGER, sites=[osaka]),
    )


def make_broadcast(
    org: Organization,
    *,
    template: str = "earthquake",
    mode: BroadcastMode = BroadcastMode.REAL,
    state: BroadcastState = BroadcastState.SENDING,
    include_family: bool | None = None,
    created_by: User | None = None,
    started_at: datetime | None = None,
) -> Broadcast:
    """A broadcast row with the built-in template as its snapshot (what ivr.service.start_broadcast stores)."""
    now = started_at or utcnow()
    broadcast = Broadcast(
        organization_id=org.id,
        template_key=template,
        template=BUILTIN[template],
        title=BUILTIN[template]["title"]["ja"],
        mode=mode,
        state=state,
        channels=["sms", "email"],
        include_family=(mode is BroadcastMode.REAL) if include_family is None else include_family,
        created_by=created_by.email if created_by else "test",
        created_by_user_id=created_by.id if created_by else None,
        created_at=now,
        started_at=now,
        closes_at=now + timedelta(hours=72),
    )
    db.session.add(broadcast)
    db.session.flush()
    return broadcast


_tokens = iter(range(1, 10**9))


def answer(broadcast: Broadcast, staff: Any, **answers: str) -> Recipient:
    """Record ``answers`` (question key → option value) for a person through the safety-call service."""
    recipient = (
        db.session.query(Recipient).filter_by(broadcast_id=broadcast.id, staff_id=staff.id).one_or_none()
    )
    if recipient is None:
        recipient = Recipient(
            broadcast_id=broadcast.id,
            staff_id=staff.id,
            token=f"tok{next(_tokens):012d}",
            site_id=staff.site_id,
            department_id=staff.department_id,
        )
        db.session.add(recipient)
        db.session.flush()
    record_answers(recipient=recipient, answers=answers, channel=AnswerChannel.WEB)
    return recipient


__all__ = ["World", "answer", "make_broadcast", "make_staff"]
