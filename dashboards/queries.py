"""SQL aggregates the overview needs and the parts do not offer cheaply.

Every figure is counted by the database (``GROUP BY``, ``count``, ``sum(case …)``); nothing here loads the people
of an organization into Python, so the overview costs the same few queries at 100 people and at 100,000.

The parts are optional: each function imports the models it reads when it runs, so a missing part makes only
the block that needs it unavailable, never this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, func, select

from core import db
from core.auth.models import Role
from core.auth.service import Principal
from core.directory.models import Staff

# The roles through which the safety part shows answers (ivr.service.VIEW_ROLES) and care cases
# (incidents.care.CARE_ROLES); a test keeps them equal to the parts' own.
ANSWER_ROLES = (Role.CRISIS_MANAGER, Role.MANAGER)
CARE_ROLES = (Role.CRISIS_MANAGER, Role.MANAGER)
# Only these JMA decisions put a broadcast on its way; suppressions and notifications are routine.
JMA_SENDING_ACTIONS = ("start", "hold", "widen", "replace", "release")


# --- safety broadcasts -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningBroadcast:
    id: int
    started_at: datetime | None
    closes_at: datetime | None
    template_key: str


def running_broadcasts(*, organization_id: int, limit: int) -> list[RunningBroadcast]:
    """Broadcasts still taking answers (sending or open), newest first."""
    from ivr.models import Broadcast, BroadcastState

    rows = db.session.execute(
        select(Broadcast.id, Broadcast.started_at, Broadcast.closes_at, Broadcast.template_key)
        .where(
            Broadcast.organization_id == organization_id,
            Broadcast.state.in_((BroadcastState.SENDING, BroadcastState.OPEN)),
        )
        .order_by(Broadcast.started_at.desc(), Broadcast.id.desc())
        .limit(limit)
    ).all()
    return [RunningBroadcast(*row) for row in rows]


def answered_by(*, broadcast_id: int, principal: Principal, edges: Sequence[datetime]) -> list[int]:
    """How many people had answered by each moment in ``edges`` (the answer curve), in one query.

    ``answered_at`` is the time of a person's first answer: a changed answer does not move them on the curve.
    A scoped principal counts only the people of their scope, as the safety part's own figures do.
    """
    from ivr.models import Recipient

    if not edges:
        return []
    # count(*) FILTER (…) per edge over the people who have answered: one pass, read from the index
    # ix_ivr_recipients_counts alone (it holds answered_at), never the rows.
    columns = [
        func.count().filter(Recipient.answered_at <= edge).label(f"e{n}") for n, edge in enumerate(edges)
    ]
    query: Any = select(*columns).where(
        Recipient.broadcast_id == broadcast_id, Recipient.answered_at.is_not(None)
    )
    if not principal.is_org_wide(*ANSWER_ROLES):
        query = query.join(Staff, Staff.id == Recipient.staff_id).where(principal.staff_filter(*ANSWER_ROLES))
    row = db.session.execute(query).one()
    return [int(value or 0) for value in row]


# --- JMA ---------------------------------------------------------------------------------------------------------


def jma_sending_decisions(*, organization_id: int, since: datetime) -> int:
    """JMA decisions since ``since`` that started, held or widened a broadcast for this organization."""
    from ivr.jma.models import JmaDecision

    return int(
        db.session.scalar(
            select(func.count(JmaDecision.id)).where(
                JmaDecision.organization_id == organization_id,
                JmaDecision.created_at >= since,
                JmaDecision.action.in_(JMA_SENDING_ACTIONS),
            )
        )
        or 0
    )


# --- care follow-up ----------------------------------------------------------------------------------------------


def care_counts(*, principal: Principal) -> dict[str, int]:
    """Care cases by state (open, contacted) among the people the principal may see.

    The same visibility as the incidents part's care list: the principal's staff scope, and executives hidden
    from answer views are left out for anyone who is not organization-wide.
    """
    from incidents.models import CareCase, CareState

    if not principal.has(*CARE_ROLES):
        return {}
    condition = (CareCase.organization_id == principal.organization_id) & principal.staff_filter(*CARE_ROLES)
    if not principal.is_org_wide(*CARE_ROLES):
        condition = condition & Staff.hide_from_answer_views.is_(False)
    wanted = (CareState.OPEN, CareState.CONTACTED)
    rows = db.session.execute(
        select(CareCase.state, func.count(CareCase.id))
        .join(Staff, Staff.id == CareCase.staff_id)
        .where(condition, CareCase.state.in_(wanted))
        .group_by(CareCase.state)
    ).all()
    counts = {state.value: 0 for state in wanted}
    counts.update({state.value: int(count) for state, count in rows})
    return counts


# --- drills and corrective actions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionRow:
    id: int
    drill_id: int
    title: str
    owner: str
    due_on: date | None
    overdue: bool


@dataclass(frozen=True)
class ActionSummary:
    open: int
    overdue: int
    soonest: list[ActionRow]


def open_actions(*, organization_id: int, today: date, limit: int = 3) -> ActionSummary:
    """Open corrective actions: how many, how many are overdue, and the ones due soonest."""
    from reports.models import OPEN_ACTION_STATUSES, CorrectiveAction

    is_open = (CorrectiveAction.organization_id == organization_id) & CorrectiveAction.status.in_(
        OPEN_ACTION_STATUSES
    )
    total, overdue = db.session.execute(
        select(
            func.count(CorrectiveAction.id),
            func.coalesce(func.sum(case((CorrectiveAction.due_on < today, 1), else_=0)), 0),
        ).where(is_open)
    ).one()
    rows = db.session.execute(
        select(
            CorrectiveAction.id,
            CorrectiveAction.drill_id,
            CorrectiveAction.title,
            CorrectiveAction.owner,
            CorrectiveAction.due_on,
        )
        .where(is_open)
        .order_by(CorrectiveAction.due_on.is_(None), CorrectiveAction.due_on, CorrectiveAction.id)
        .limit(limit)
    ).all()
    return ActionSummary(
        open=int(total or 0),
        overdue=int(overdue or 0),
        soonest=[
            ActionRow(id, drill_id, title, owner or "", due_on, due_on is not None and due_on < today)
            for id, drill_id, title, owner, due_on in rows
        ],
    )


@dataclass(frozen=True)
class DrillRow:
    id: int
    title: str
    type: str
    state: str
    starts_at: datetime | None


def next_drill(*, organization_id: int, now: datetime) -> DrillRow | None:
    """The next planned drill that has a date and has not started yet (a real incident record is no drill)."""
    from reports.models import Drill, DrillState, RecordKind

    row = db.session.execute(
        select(Drill.id, Drill.title, Drill.type, Drill.state, Drill.planned_start_at)
        .where(
            Drill.organization_id == organization_id,
            Drill.kind == RecordKind.DRILL,
            Drill.state == DrillState.PLANNED,
            Drill.planned_start_at >= now,
        )
        .order_by(Drill.planned_start_at, Drill.id)
        .limit(1)
    ).first()
    if row is None:
        return None
    id, title, type_, state, starts_at = row
    return DrillRow(id, title, type_.value, state.value, starts_at)


def drills_in_progress(*, organization_id: int, limit: int = 3) -> list[DrillRow]:
    from reports.models import Drill, DrillState, RecordKind

    rows = db.session.execute(
        select(Drill.id, Drill.title, Drill.type, Drill.state, Drill.actual_start_at)
        .where(
            Drill.organization_id == organization_id,
            Drill.kind == RecordKind.DRILL,
            Drill.state == DrillState.IN_PROGRESS,
        )
        .order_by(Drill.actual_start_at.desc(), Drill.id.desc())
        .limit(limit)
    ).all()
    return [DrillRow(id, title, type_.value, state.value, at) for id, title, type_, state, at in rows]
