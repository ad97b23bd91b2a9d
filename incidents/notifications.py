"""Notifications to users: a row they see in Lifeline, and an e-mail copy the notice worker sends at the mail pace."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import func, select, update

from core import db
from core.auth.models import Role, RoleAssignment, User
from core.i18n import gettext
from core.time import utcnow
from incidents.models import Notification


def notify(
    *,
    organization_id: int,
    user_id: int,
    kind: str,
    message: str,
    params: Mapping[str, str | Mapping[str, str]] | None = None,
    link: str = "",
    mail: bool = True,
    now: datetime | None = None,
) -> Notification:
    """Tell a user something, in their own language.

    ``message`` is a catalogue message id; a parameter may be ``{"ja": …, "en": …}`` (a step's title) and is
    then taken in the user's language.
    """
    user = db.session.get(User, user_id)
    language = user.language if user is not None else "ja"
    resolved = {
        key: (value.get(language) or value.get("ja", "")) if isinstance(value, Mapping) else value
        for key, value in (params or {}).items()
    }
    note = Notification(
        organization_id=organization_id,
        user_id=user_id,
        kind=kind,
        text=gettext(message, language, **resolved)[:2000],
        link=link[:300],
        created_at=now or utcnow(),
        mail_due=mail,
    )
    db.session.add(note)
    db.session.flush()
    if mail:
        from incidents.outbox import kick

        kick()
    return note


def users_with_role(*, organization_id: int, roles: Iterable[Role]) -> list[User]:
    """Active users holding any of ``roles`` (admins are not added implicitly: they did not ask for these)."""
    return list(
        db.session.scalars(
            select(User)
            .join(RoleAssignment, RoleAssignment.user_id == User.id)
            .where(
                User.organization_id == organization_id,
                User.is_active.is_(True),
                RoleAssignment.role.in_(list(roles)),
            )
            .distinct()
            .order_by(User.id)
        )
    )


def unread_count(*, user_id: int) -> int:
    return int(
        db.session.scalar(
            select(func.count(Notification.id)).where(
                Notification.user_id == user_id, Notification.read_at.is_(None)
            )
        )
        or 0
    )


def recent(*, user_id: int, limit: int = 50) -> list[Notification]:
    return list(
        db.session.scalars(
            select(Notification)
            .where(Notification.user_id == user_id)
            .order_by(Notification.created_at.desc(), Notification.id.desc())
            .limit(limit)
        )
    )


def mark_read(*, user_id: int, now: datetime | None = None) -> int:
    result = db.session.execute(
        update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
