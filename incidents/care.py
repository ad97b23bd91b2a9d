"""Care follow-up: nobody who said they are hurt or need help is forgotten.

:func:`sync_care_followups` reads a broadcast's current answers (the periodic task runs it every minute for the
broadcasts still taking answers) and opens one case per person and broadcast, with an owner: the user account of
the person's manager when there is one, else whoever started the broadcast. Cases are listed only to users whose
scope includes the person.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core import db
from core.auth.models import Role, User
from core.auth.service import Principal, audit
from core.directory.models import ContactKind, ContactPoint, Staff
from core.errors import NotFound, ValidationError
from core.time import to_local, utcnow
from incidents import care_rules, notifications
from incidents.models import CareCase, CareState
from ivr.models import Answer, Broadcast, BroadcastState, Recipient

CARE_ROLES = (Role.CRISIS_MANAGER, Role.MANAGER)
# Answers can still arrive in the last minute before a broadcast closes: keep looking a little longer.
GRACE_AFTER_CLOSE = timedelta(hours=1)


def current_answers(broadcast_id: int) -> dict[int, list[tuple[str, str]]]:
    """staff id → the (question, option) pairs that count now in one broadcast."""
    rows = db.session.execute(
        select(Recipient.staff_id, Answer.question_key, Answer.value)
        .join(Answer, Answer.recipient_id == Recipient.id)
        .where(Answer.broadcast_id == broadcast_id, Answer.current.is_(True), Answer.value != "")
    )
    out: dict[int, list[tuple[str, str]]] = {}
    for staff_id, key, value in rows:
        out.setdefault(staff_id, []).append((key, value))
    return out


def _user_id_for_staff(staff_id: int | None, organization_id: int) -> int | None:
    """The user account of a member of staff, matched on their work e-mail."""
    if staff_id is None:
        return None
    email = db.session.scalar(
        select(ContactPoint.value).where(
            ContactPoint.staff_id == staff_id, ContactPoint.kind == ContactKind.WORK_EMAIL
        )
    )
    if not email:
        return None
    return db.session.scalar(
        select(User.id).where(
            User.organization_id == organization_id,
            User.email == email.strip().lower(),
            User.is_active.is_(True),
        )
    )


def default_owner(staff: Staff, broadcast: Broadcast) -> int | None:
    owner = _user_id_for_staff(staff.manager_id, staff.organization_id)
    if owner is not None:
        return owner
    creator = db.session.get(User, broadcast.created_by_user_id) if broadcast.created_by_user_id else None
    return creator.id if creator is not None and creator.is_active else None


def sync_care_followups(broadcast_id: int, *, now: datetime | None = None) -> int:
    """Open a care case for everyone whose current answers call for care and who has none for this broadcast yet.

    Idempotent: run it as often as you like; it returns how many cases it opened.
    """
    now = now or utcnow()
    broadcast = db.session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise NotFound("This broadcast does not exist.")
    options = care_rules.care_options(broadcast.template or {})
    if not options:
        return 0
    needing = {
        staff_id: reasons
        for staff_id, items in current_answers(broadcast.id).items()
        if (reasons := care_rules.reasons_for(items, options))
    }
    if not needing:
        return 0
    existing = set(
        db.session.scalars(
            select(CareCase.staff_id).where(
                CareCase.broadcast_id == broadcast.id, CareCase.staff_id.in_(needing)
            )
        )
    )
    opened: list[CareCase] = []
    for staff_id, reasons in sorted(needing.items()):
        if staff_id in existing:
            continue
        staff = db.session.get(Staff, staff_id)
        if staff is None:
            continue
        case = CareCase(
            organization_id=broadcast.organization_id,
            staff_id=staff_id,
            broadcast_id=broadcast.id,
            reason=",".join(r.value for r in reasons),
            owner_user_id=default_owner(staff, broadcast),
            state=CareState.OPEN,
            created_at=now,
            updated_at=now,
        )
        try:
            # Another worker may open the same case at the same moment; the unique key decides.
            with db.session.begin_nested():
                db.session.add(case)
                db.session.flush()
        except IntegrityError:
            continue
        opened.append(case)
    if not opened:
        return 0
    audit(
        action="incidents.care.open",
        organization_id=broadcast.organization_id,
        actor="system",
        target_type="broadcast",
        target_id=broadcast.id,
        summary=f"{len(opened)} people put on the care follow-up list",
        detail={"cases": [c.id for c in opened]},
    )
    owners: dict[int, int] = {}
    for case in opened:
        if case.owner_user_id is not None:
            owners[case.owner_user_id] = owners.get(case.owner_user_id, 0) + 1
    for user_id, count in owners.items():
        notifications.notify(
            organization_id=broadcast.organization_id,
            user_id=user_id,
            kind="care.assigned",
            message="{broadcast}: {count} people need a follow-up call from you",
            params={"broadcast": broadcast.title, "count": str(count)},
            link="/incidents/care",
            now=now,
        )
    return len(opened)


def broadcasts_to_watch(*, now: datetime | None = None) -> list[int]:
    """Broadcasts still taking answers, and those closed in the last hour."""
    now = now or utcnow()
    return list(
        db.session.scalars(
            select(Broadcast.id)
            .where(
                Broadcast.state.in_((BroadcastState.SENDING, BroadcastState.OPEN))
                | (
                    Broadcast.state.in_((BroadcastState.CLOSED, BroadcastState.CANCELLED))
                    & (Broadcast.closed_at >= now - GRACE_AFTER_CLOSE)
                )
            )
            .order_by(Broadcast.id)
        )
    )


# --- the follow-up list ------------------------------------------------------------------------------------------


def _visible(principal: Principal) -> Any:
    condition = (CareCase.organization_id == principal.organization_id) & principal.staff_filter(*CARE_ROLES)
    if not principal.is_org_wide(*CARE_ROLES):
        # Executives are hidden from answer views for everyone but the organization-wide.
        condition = condition & Staff.hide_from_answer_views.is_(False)
    return condition


def list_cases(
    *,
    principal: Principal,
    states: tuple[CareState, ...] = (CareState.OPEN, CareState.CONTACTED),
    limit: int = 500,
) -> list[CareCase]:
    return list(
        db.session.scalars(
            select(CareCase)
            .join(Staff, Staff.id == CareCase.staff_id)
            .where(_visible(principal), CareCase.state.in_(states))
            .order_by(CareCase.state, CareCase.created_at, CareCase.id)
            .limit(limit)
        ).unique()
    )


def get_case(*, principal: Principal, case_id: int) -> CareCase:
    case = db.session.scalar(
        select(CareCase)
        .join(Staff, Staff.id == CareCase.staff_id)
        .where(CareCase.id == case_id, _visible(principal))
    )
    if case is None:
        raise NotFound("This case does not exist.")
    return case


_UNSET: Any = object()


def update_case(
    *,
    case: CareCase,
    principal: Principal,
    actor: str,
    state: CareState | str | None = None,
    owner_user_id: int | None = _UNSET,
    note: str = "",
    now: datetime | None = None,
) -> CareCase:
    """Record a call, a note, a new owner or the end of the follow-up."""
    now = now or utcnow()
    if not principal.has(*CARE_ROLES):
        raise NotFound("This case does not exist.")
    changes: list[str] = []
    if state is not None and CareState(state) is not case.state:
        new = CareState(state)
        changes.append(f"{case.state.value} → {new.value}")
        case.state = new
        if new is CareState.CONTACTED and case.contacted_at is None:
            case.contacted_at = now
        case.closed_at = now if new is CareState.CLOSED else None
    if owner_user_id is not _UNSET and owner_user_id != case.owner_user_id:
        if owner_user_id is not None:
            owner = db.session.get(User, owner_user_id)
            if owner is None or owner.organization_id != case.organization_id or not owner.is_active:
                raise ValidationError("unknown user", field="owner")
        case.owner_user_id = owner_user_id
        case.owner = db.session.get(User, owner_user_id) if owner_user_id is not None else None
        changes.append("owner")
        if owner_user_id is not None and owner_user_id != principal.user_id:
            notifications.notify(
                organization_id=case.organization_id,
                user_id=owner_user_id,
                kind="care.assigned",
                message="A care follow-up was given to you",
                link="/incidents/care",
                now=now,
            )
    if note.strip():
        stamp = to_local(now).strftime("%Y-%m-%d %H:%M")
        case.notes = (case.notes + "\n" if case.notes else "") + f"{stamp} {actor}: {note.strip()[:2000]}"
        changes.append("note")
    if not changes:
        return case
    case.updated_at = now
    db.session.flush()
    audit(
        action="incidents.care.update",
        organization_id=case.organization_id,
        actor=actor,
        actor_user_id=principal.user_id,
        target_type="care_case",
        target_id=case.id,
        # The reason and the notes are health information: they stay in the case, not in the audit log.
        summary=f"care case {case.id}: " + ", ".join(changes),
    )
    return case
