"""Team conversations: a group of users (the management team by default) decides before anything is announced.

Each member has a read mark — the newest message they have seen — so the team can tell who has read a proposal
before acting on it. Only members read and write; admins define the groups.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from core import db
from core.auth.models import User
from core.auth.service import audit
from core.errors import Forbidden, NotFound, ValidationError
from core.time import utcnow
from incidents.models import Group, GroupMember, GroupMessage

MAX_MESSAGE_CHARS = 4000
PAGE = 100


def groups_of(*, user_id: int) -> list[Group]:
    return list(
        db.session.scalars(
            select(Group)
            .join(GroupMember, GroupMember.group_id == Group.id)
            .where(GroupMember.user_id == user_id)
            .order_by(Group.name)
        )
    )


def all_groups(*, organization_id: int) -> list[Group]:
    return list(
        db.session.scalars(select(Group).where(Group.organization_id == organization_id).order_by(Group.name))
    )


def get_group(*, organization_id: int, group_id: int) -> Group:
    group = db.session.get(Group, group_id)
    if group is None or group.organization_id != organization_id:
        raise NotFound("This group does not exist.")
    return group


def membership(group: Group, user_id: int | None) -> GroupMember:
    member = next((m for m in group.members if m.user_id == user_id), None)
    if member is None:
        raise Forbidden("Only members of this group can read it.")
    return member


def _users(organization_id: int, user_ids: Iterable[int]) -> list[User]:
    wanted = {int(u) for u in user_ids}
    users = list(
        db.session.scalars(select(User).where(User.organization_id == organization_id, User.id.in_(wanted)))
    )
    if len(users) != len(wanted):
        raise ValidationError("unknown user", field="members")
    return users


def save_group(
    *,
    organization_id: int,
    name: str,
    member_ids: Iterable[int],
    group_id: int | None = None,
    actor: str,
    actor_user_id: int | None = None,
    now: datetime | None = None,
) -> Group:
    """Create a group or replace its name and members (an admin's task). Read marks of those who stay are kept."""
    name = " ".join(name.split())[:200]
    if not name:
        raise ValidationError("A group needs a name.", field="name")
    users = _users(organization_id, member_ids)
    if not users:
        raise ValidationError("A group needs at least one member.", field="members")
    clash = db.session.scalar(
        select(Group).where(Group.organization_id == organization_id, Group.name == name)
    )
    if group_id is None:
        if clash is not None:
            raise ValidationError("There is already a group with this name.", field="name")
        group = Group(
            organization_id=organization_id,
            name=name,
            created_by_user_id=actor_user_id,
            created_at=now or utcnow(),
        )
        db.session.add(group)
    else:
        group = get_group(organization_id=organization_id, group_id=group_id)
        if clash is not None and clash.id != group.id:
            raise ValidationError("There is already a group with this name.", field="name")
        group.name = name
    wanted = {u.id for u in users}
    for member in list(group.members):
        if member.user_id not in wanted:
            group.members.remove(member)
    present = {m.user_id for m in group.members}
    for user in users:
        if user.id not in present:
            group.members.append(GroupMember(user_id=user.id))
    db.session.flush()
    audit(
        action="incidents.group.save",
        organization_id=organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="group",
        target_id=group.id,
        summary=f"group {name!r}: {', '.join(sorted(u.email for u in users))}",
    )
    return group


def post_message(*, group: Group, user: User, body: str, now: datetime | None = None) -> GroupMessage:
    now = now or utcnow()
    member = membership(group, user.id)
    text = body.strip()
    if not text:
        raise ValidationError("Write a message.", field="body")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ValidationError("At most 4000 characters.", field="body")
    message = GroupMessage(
        group_id=group.id, user_id=user.id, author_name=user.name or user.email, body=text, created_at=now
    )
    db.session.add(message)
    db.session.flush()
    # Writing a message means having read everything before it.
    member.last_read_message_id = message.id
    member.last_read_at = now
    audit(
        action="incidents.group.message",
        organization_id=group.organization_id,
        actor=user.email,
        actor_user_id=user.id,
        target_type="group",
        target_id=group.id,
        summary=f"message in {group.name!r}",
        detail={"message_id": message.id},
    )
    return message


def messages(*, group: Group, after_id: int = 0, limit: int = PAGE) -> list[GroupMessage]:
    """The newest ``limit`` messages after ``after_id``, oldest first."""
    rows = list(
        db.session.scalars(
            select(GroupMessage)
            .where(GroupMessage.group_id == group.id, GroupMessage.id > after_id)
            .order_by(GroupMessage.id.desc())
            .limit(limit)
        )
    )
    return rows[::-1]


def mark_read(*, group: Group, user_id: int, up_to: int, now: datetime | None = None) -> GroupMember:
    """Move the member's read mark forward (never back: an old tab polling late must not undo it)."""
    member = membership(group, user_id)
    newest = db.session.scalar(
        select(GroupMessage.id)
        .where(GroupMessage.group_id == group.id, GroupMessage.id <= up_to)
        .order_by(GroupMessage.id.desc())
        .limit(1)
    )
    if newest is not None and (member.last_read_message_id or 0) < newest:
        member.last_read_message_id = newest
        member.last_read_at = now or utcnow()
        db.session.flush()
    return member


@dataclass(frozen=True)
class ReadState:
    message_id: int
    read_by: tuple[str, ...]  # names of the other members who have read it
    unread_by: tuple[str, ...]


def read_states(group: Group, message_list: Iterable[GroupMessage]) -> dict[int, ReadState]:
    """For each message: which of the other members have read up to it."""
    out: dict[int, ReadState] = {}
    for message in message_list:
        read: list[str] = []
        unread: list[str] = []
        for member in group.members:
            if member.user_id == message.user_id:
                continue
            name = member.user.name or member.user.email
            (read if (member.last_read_message_id or 0) >= message.id else unread).append(name)
        out[message.id] = ReadState(
            message_id=message.id, read_by=tuple(sorted(read)), unread_by=tuple(sorted(unread))
        )
    return out


def unread_counts(*, user_id: int) -> dict[int, int]:
    """group id → messages newer than the user's read mark (for the list of their groups)."""
    rows = db.session.execute(
        select(GroupMember.group_id, func.count(GroupMessage.id))
        .outerjoin(
            GroupMessage,
            (GroupMessage.group_id == GroupMember.group_id)
            & (GroupMessage.id > func.coalesce(GroupMember.last_read_message_id, 0)),
        )
        .where(GroupMember.user_id == user_id)
        .group_by(GroupMember.group_id)
    )
    return {group_id: int(count) for group_id, count in rows}
