"""A small contact center for the drill tests: two sites, three departments, twelve people with work phones,
the users who run, read and must not see drills, and a way to play a drill broadcast through ivr's service."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from core import db
from core.auth.models import Role
from core.directory.models import ContactPoint
from core.time import utcnow
from ivr import service as ivr_service
from ivr.models import Attempt, AttemptChannel, AttemptState, Broadcast, Recipient
from tests.factories import make_department, make_org, make_site, make_staff, make_user

# Recent enough that the broadcast is still open for answers when a test answers "now".
T0 = utcnow().replace(microsecond=0) - timedelta(hours=2)


@dataclass
class World:
    org: Any
    sites: dict[str, Any]
    departments: dict[str, Any]
    staff: list[Any] = field(default_factory=list)
    users: dict[str, Any] = field(default_factory=dict)


DEPARTMENTS = ("営業部", "サポート部", "総務部")


@pytest.fixture()
def world(db_session: Any) -> World:
    org = make_org(name="ライフライン株式会社")
    sites = {
        "TKY": make_site(org, code="TKY", name="東京本社", prefecture="13"),
        "OSA": make_site(org, code="OSA", name="大阪センター", prefecture="27"),
    }
    departments = {name: make_department(org, name) for name in DEPARTMENTS}
    w = World(org=org, sites=sites, departments=departments)
    for n in range(12):
        w.staff.append(
            make_staff(
                org,
                site=sites["TKY" if n % 2 == 0 else "OSA"],
                department=departments[DEPARTMENTS[n % 3]],
                phone=f"+8190000002{n:02d}",
                email=f"staff{n}@example.com",
                name=f"社員 {n:02d}",
            )
        )
    w.users = {
        "crisis": make_user(org, Role.CRISIS_MANAGER, language="ja"),
        "manager": make_user(org, Role.MANAGER),
        "facilities": make_user(org, Role.FACILITIES),
    }
    return w


def start_drill_broadcast(world: World, *, at: datetime = T0, audience: Any = None) -> Broadcast:
    return ivr_service.start_broadcast(
        organization_id=world.org.id,
        template="earthquake",
        audience=audience or {"everyone": True},
        actor="tester",
        mode="drill",
        now=at,
    )


def recipients(broadcast: Broadcast) -> list[Recipient]:
    return list(
        db.session.scalars(
            select(Recipient).where(Recipient.broadcast_id == broadcast.id).order_by(Recipient.id)
        )
    )


def answer(recipient: Recipient, *, after_seconds: float, start: datetime = T0) -> None:
    ivr_service.record_answers(
        recipient=recipient,
        answers={"safety": "1", "work": "1"},
        channel="web",
        now=start + timedelta(seconds=after_seconds),
    )


def failed_call(
    recipient: Recipient, *, state: AttemptState, code: str | None = None, at: datetime = T0
) -> Attempt:
    """A call to the person's work phone that ended as ``state`` (written as the dispatcher would leave it)."""
    contact = db.session.scalar(
        select(ContactPoint)
        .where(ContactPoint.staff_id == recipient.staff_id)
        .order_by(ContactPoint.position)
    )
    attempt = Attempt(
        broadcast_id=recipient.broadcast_id,
        recipient_id=recipient.id,
        channel=AttemptChannel.VOICE,
        contact_point_id=contact.id if contact else None,
        state=state,
        to_masked="+81 90-****-0" + str(recipient.staff_id)[-3:].zfill(3),
        error_code=code,
        error_reason="invalid 'To' number" if code else None,
        due_at=at,
        placed_at=at,
        ended_at=at + timedelta(seconds=30),
    )
    db.session.add(attempt)
    db.session.flush()
    recipient.last_attempt_id = attempt.id
    db.session.flush()
    return attempt


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)
