"""Users, roles, scopes and the audit log. Every change that matters calls :func:`audit`."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, false, or_, select, true
from werkzeug.security import check_password_hash, generate_password_hash

from core import db
from core.auth.models import ApiToken, AuditEntry, Role, RoleAssignment, User
from core.directory.models import Department, Staff
from core.errors import ValidationError
from core.time import utcnow

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)


def audit(
    *,
    action: str,
    organization_id: int | None,
    actor: str,
    actor_user_id: int | None = None,
    target_type: str | None = None,
    target_id: Any = None,
    summary: str = "",
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        organization_id=organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        summary=summary,
        detail=detail or {},
        ip=ip,
        at=utcnow(),
    )
    db.session.add(entry)
    db.session.flush()
    return entry


@dataclass(frozen=True)
class Principal:
    """What a signed-in user may see and do: roles, each organization-wide or limited to sites/departments."""

    user_id: int | None
    organization_id: int
    label: str
    roles: dict[Role, tuple[frozenset[int], frozenset[int]] | None] = field(default_factory=dict)
    # value None = organization-wide; otherwise (site ids, department ids incl. descendants)

    def has(self, *roles: Role) -> bool:
        return any(r in self.roles for r in roles) or Role.ADMIN in self.roles

    def is_org_wide(self, *roles: Role) -> bool:
        wanted = set(roles) | {Role.ADMIN}
        return any(self.roles.get(r, ()) is None for r in wanted if r in self.roles)

    def scope_ids(self, *roles: Role) -> tuple[frozenset[int], frozenset[int]] | None:
        """Union of the scopes of the given roles; None when any of them is organization-wide."""
        if self.is_org_wide(*roles):
            return None
        sites: set[int] = set()
        departments: set[int] = set()
        for r in roles:
            scope = self.roles.get(r)
            if scope is not None:
                sites |= scope[0]
                departments |= scope[1]
        return frozenset(sites), frozenset(departments)

    def staff_filter(self, *roles: Role) -> ColumnElement[bool]:
        """SQL condition on Staff for the people this principal may see through those roles."""
        if not self.has(*roles):
            return false()
        scope = self.scope_ids(*roles)
        if scope is None:
            return true()
        site_ids, department_ids = scope
        conditions: list[ColumnElement[bool]] = []
        if site_ids:
            conditions.append(Staff.site_id.in_(site_ids))
        if department_ids:
            conditions.append(Staff.department_id.in_(department_ids))
        return or_(*conditions) if conditions else false()

    def can_see_site(self, site_id: int | None, *roles: Role) -> bool:
        if not self.has(*roles):
            return False
        scope = self.scope_ids(*roles)
        return scope is None or (site_id is not None and site_id in scope[0])


def department_descendants(organization_id: int, roots: Iterable[int]) -> frozenset[int]:
    rows = db.session.execute(
        select(Department.id, Department.parent_id).where(Department.organization_id == organization_id)
    ).all()
    children: dict[int | None, list[int]] = {}
    for dept_id, parent_id in rows:
        children.setdefault(parent_id, []).append(dept_id)
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(children.get(current, []))
    return frozenset(seen)


def principal_for(user: User) -> Principal:
    roles: dict[Role, tuple[frozenset[int], frozenset[int]] | None] = {}
    for assignment in user.roles:
        if assignment.organization_wide:
            roles[assignment.role] = None
            continue
        if assignment.role in roles and roles[assignment.role] is None:
            continue
        previous = roles.get(assignment.role) or (frozenset(), frozenset())
        sites = previous[0] | {s.id for s in assignment.sites}
        departments = previous[1] | department_descendants(
            user.organization_id, [d.id for d in assignment.departments]
        )
        roles[assignment.role] = (frozenset(sites), frozenset(departments))
    return Principal(user_id=user.id, organization_id=user.organization_id, label=user.email, roles=roles)


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def create_user(
    *,
    organization_id: int,
    email: str,
    name: str,
    password: str,
    language: str = "ja",
    roles: Iterable[Role] = (),
    actor: str = "system",
    actor_user_id: int | None = None,
) -> User:
    email = email.strip().lower()
    if "@" not in email:
        raise ValidationError("an e-mail address is required", field="email")
    if len(password) < 10:
        raise ValidationError("the password must have at least 10 characters", field="password")
    if db.session.scalar(select(User).where(User.email == email)):
        raise ValidationError(f"a user with e-mail {email} already exists", field="email")
    user = User(
        organization_id=organization_id,
        email=email,
        name=name,
        password_hash=hash_password(password),
        language=language if language in ("ja", "en") else "ja",
    )
    user.roles = [RoleAssignment(role=r) for r in roles]
    db.session.add(user)
    db.session.flush()
    audit(
        action="user.create",
        organization_id=organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="user",
        target_id=user.id,
        summary=f"user {email} created with roles {', '.join(r.value for r in roles) or '-'}",
    )
    return user


def set_roles(
    *,
    user: User,
    assignments: list[tuple[Role, list[Any], list[Any]]],
    actor: str,
    actor_user_id: int | None,
) -> None:
    """Replace a user's roles; each is (role, sites, departments) with empty lists meaning organization-wide."""
    before = sorted(describe_roles(user))
    user.roles.clear()
    db.session.flush()
    for role, sites, departments in assignments:
        user.roles.append(RoleAssignment(role=role, sites=list(sites), departments=list(departments)))
    db.session.flush()
    after = sorted(describe_roles(user))
    audit(
        action="user.roles",
        organization_id=user.organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="user",
        target_id=user.id,
        summary=f"roles of {user.email} changed",
        detail={"before": before, "after": after},
    )


def describe_roles(user: User) -> list[str]:
    out = []
    for a in user.roles:
        scope = [f"site:{s.code}" for s in a.sites] + [f"dept:{d.name}" for d in a.departments]
        out.append(a.role.value + (f" ({', '.join(scope)})" if scope else ""))
    return out


class LoginRefused(Exception):
    pass


def authenticate(*, email: str, password: str, ip: str | None, now: datetime | None = None) -> User:
    """Checks a password; repeated failures lock the account for a while (and are audited)."""
    now = now or utcnow()
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or not user.is_active:
        # Same message whether or not the user exists.
        raise LoginRefused("wrong e-mail or password")
    if user.locked_until and user.locked_until > now:
        raise LoginRefused("too many failed attempts; try again later")
    if not check_password_hash(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
        audit(
            action="login.failed",
            organization_id=user.organization_id,
            actor=user.email,
            actor_user_id=user.id,
            ip=ip,
            summary="failed login",
        )
        raise LoginRefused("wrong e-mail or password")
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    audit(
        action="login",
        organization_id=user.organization_id,
        actor=user.email,
        actor_user_id=user.id,
        ip=ip,
        summary="signed in",
    )
    return user


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(*, organization_id: int, name: str, actor: str, actor_user_id: int | None = None) -> str:
    token = "llt_" + secrets.token_urlsafe(32)
    db.session.add(
        ApiToken(organization_id=organization_id, name=name, prefix=token[:10], token_hash=_hash_token(token))
    )
    db.session.flush()
    audit(
        action="api_token.create",
        organization_id=organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        summary=f"API token {name!r} created",
    )
    return token


def resolve_api_token(token: str) -> ApiToken | None:
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    row.last_used_at = utcnow()
    return row
