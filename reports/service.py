"""Drills and incident records: every change, and the reads that turn what happened into a report.

Keyword-only arguments; ``flush()`` only (the edge commits); e-mails leave after commit. The figures come from
the other parts' own reads — :func:`ivr.service.broadcast_status` for the counts, so a report never disagrees with
the broadcast's status page — plus the per-person answer times, attempts, routing changes and inbound calls that
:mod:`reports.metrics` turns into curves, percentiles and failover timings.
"""

from __future__ import annotations

import csv
import enum
import io
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import selectinload

from continuity.models import CallLeg, ChangeKind, InboundCall, RoutingChange
from core import db
from core.auth.models import Role, RoleAssignment, User
from core.auth.service import Principal, audit
from core.directory.models import ContactKind, ContactPoint, Department, Organization, Site, Staff
from core.errors import Conflict, NotFound, ValidationError
from core.i18n import gettext
from core.mail import Mail, MailBackend, MailError
from core.time import utcnow
from ivr import service as ivr_service
from ivr.models import Attempt, Broadcast, BroadcastMode, Recipient, RecipientState
from reports import labels, metrics
from reports.document import (
    ActionRow,
    BroadcastSection,
    ComparisonSection,
    DrillReport,
    FailoverSection,
    KeyFigure,
    ParticipantRow,
    PersonRow,
    RoutingRow,
    TimelineRow,
    Translate,
    outcome_label,
)
from reports.models import (
    DEFAULT_ROTATION,
    OPEN_ACTION_STATUSES,
    ActionStatus,
    CorrectiveAction,
    Drill,
    DrillSchedule,
    DrillState,
    DrillType,
    EntryKind,
    LogEntry,
    Participant,
    RecordKind,
    Scenario,
    new_observation_token,
)
from reports.schedule import Recurrence, drill_window, next_drill_date, reminder_due, scenario_at

log = logging.getLogger(__name__)

READ_ROLES = (Role.CRISIS_MANAGER, Role.MANAGER)
MANAGE_ROLES = (Role.CRISIS_MANAGER,)
UNREACHED_LISTED = 200  # people printed by name; the rest are counted (the broadcast's CSV has them all)
COMPARED_DRILLS = 3
FAILOVER_DECISION_STATES = ("down", "evacuated")


def translator(language: str) -> Translate:
    def tr(message: str) -> str:
        return gettext(message, language=language)

    return tr


def _clean(text: str | None, limit: int) -> str:
    return (text or "").strip()[:limit]


def _audit_drill(
    drill: Drill, action: str, summary: str, actor: str, actor_user_id: int | None, **detail: Any
) -> None:
    audit(
        action=f"reports.{action}",
        organization_id=drill.organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="drill",
        target_id=drill.id,
        summary=summary,
        detail=detail or None,
    )


# --- drills ------------------------------------------------------------------------------------------------------


def get_drill(*, drill_id: int, organization_id: int | None = None) -> Drill:
    drill = db.session.get(Drill, drill_id)
    if drill is None or (organization_id is not None and drill.organization_id != organization_id):
        raise NotFound(f"no drill {drill_id}")
    return drill


def list_drills(*, organization_id: int, limit: int = 200) -> list[Drill]:
    """Newest first by when they (are to) take place; undated ones first."""
    when = func.coalesce(Drill.actual_start_at, Drill.planned_start_at, Drill.created_at)
    return list(
        db.session.scalars(
            select(Drill)
            .where(Drill.organization_id == organization_id)
            .order_by(when.desc(), Drill.id.desc())
            .limit(limit)
        )
    )


def _check_window(start: datetime | None, end: datetime | None, what: str) -> None:
    if start is not None and end is not None and end < start:
        raise ValidationError(f"the {what} end is before its start", field=f"{what}_end_at")


def create_drill(
    *,
    organization_id: int,
    type: DrillType | str,
    scenario: Scenario | str,
    title: str,
    actor: str,
    actor_user_id: int | None = None,
    objectives: str = "",
    planned_start_at: datetime | None = None,
    planned_end_at: datetime | None = None,
    kind: RecordKind | str = RecordKind.DRILL,
    incident_id: int | None = None,
    origin: str = "manual",
) -> Drill:
    title = _clean(title, 200)
    if not title:
        raise ValidationError("give the drill a title", field="title")
    try:
        drill_type, drill_scenario, record_kind = DrillType(type), Scenario(scenario), RecordKind(kind)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    _check_window(planned_start_at, planned_end_at, "planned")
    drill = Drill(
        organization_id=organization_id,
        kind=record_kind,
        type=drill_type,
        scenario=drill_scenario,
        title=title,
        objectives=_clean(objectives, 10000),
        planned_start_at=planned_start_at,
        planned_end_at=planned_end_at,
        incident_id=incident_id,
        origin=origin,
        created_by=actor,
        created_by_user_id=actor_user_id,
    )
    db.session.add(drill)
    db.session.flush()
    _audit_drill(
        drill, f"{record_kind.value}.create", f"{record_kind.value} {title!r} created", actor, actor_user_id
    )
    return drill


EDITABLE = (
    "title",
    "type",
    "scenario",
    "objectives",
    "summary",
    "planned_start_at",
    "planned_end_at",
    "actual_start_at",
    "actual_end_at",
    "alternate_site_id",
    "decision_change_id",
)


def update_drill(*, drill: Drill, actor: str, actor_user_id: int | None = None, **changes: Any) -> Drill:
    """Change the fields named in ``changes`` (see :data:`EDITABLE`); the audit log keeps what changed."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValidationError(f"cannot change {', '.join(sorted(unknown))}")
    if "title" in changes:
        changes["title"] = _clean(changes["title"], 200)
        if not changes["title"]:
            raise ValidationError("give the drill a title", field="title")
    for name, limit in (("objectives", 10000), ("summary", 20000)):
        if name in changes:
            changes[name] = _clean(changes[name], limit)
    try:
        if "type" in changes:
            changes["type"] = DrillType(changes["type"])
        if "scenario" in changes:
            changes["scenario"] = Scenario(changes["scenario"])
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    if changes.get("alternate_site_id") is not None:
        site = db.session.get(Site, changes["alternate_site_id"])
        if site is None or site.organization_id != drill.organization_id:
            raise ValidationError("no such site", field="alternate_site_id")
    if changes.get("decision_change_id") is not None:
        change = db.session.get(RoutingChange, changes["decision_change_id"])
        if change is None or change.organization_id != drill.organization_id:
            raise ValidationError("no such routing change", field="decision_change_id")
    _check_window(
        changes.get("planned_start_at", drill.planned_start_at),
        changes.get("planned_end_at", drill.planned_end_at),
        "planned",
    )
    _check_window(
        changes.get("actual_start_at", drill.actual_start_at),
        changes.get("actual_end_at", drill.actual_end_at),
        "actual",
    )
    changed = {}
    for name, value in changes.items():
        before = getattr(drill, name)
        if before != value:
            changed[name] = [_plain(before), _plain(value)]
            setattr(drill, name, value)
    if changed:
        db.session.flush()
        _audit_drill(
            drill,
            "drill.update",
            f"drill {drill.title!r} changed: {', '.join(changed)}",
            actor,
            actor_user_id,
            changes=changed,
        )
    return drill


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    return value


def start_drill(
    *, drill: Drill, actor: str, actor_user_id: int | None = None, now: datetime | None = None
) -> Drill:
    now = now or utcnow()
    if drill.state is not DrillState.PLANNED:
        raise Conflict(f"the drill is {drill.state.value}; only a planned drill can start")
    drill.state = DrillState.IN_PROGRESS
    drill.actual_start_at = drill.actual_start_at or now
    db.session.flush()
    _audit_drill(drill, "drill.start", f"drill {drill.title!r} started", actor, actor_user_id)
    return drill


def finish_drill(
    *, drill: Drill, actor: str, actor_user_id: int | None = None, now: datetime | None = None
) -> Drill:
    now = now or utcnow()
    if drill.state not in (DrillState.PLANNED, DrillState.IN_PROGRESS):
        raise Conflict(f"the drill is already {drill.state.value}")
    drill.actual_start_at = drill.actual_start_at or drill.planned_start_at or now
    drill.actual_end_at = drill.actual_end_at or max(now, drill.actual_start_at)
    drill.state = DrillState.COMPLETED
    db.session.flush()
    _audit_drill(drill, "drill.finish", f"drill {drill.title!r} completed", actor, actor_user_id)
    return drill


def cancel_drill(*, drill: Drill, actor: str, actor_user_id: int | None = None) -> Drill:
    if drill.state is DrillState.COMPLETED:
        raise Conflict("a completed drill cannot be cancelled")
    drill.state = DrillState.CANCELLED
    db.session.flush()
    _audit_drill(drill, "drill.cancel", f"drill {drill.title!r} cancelled", actor, actor_user_id)
    return drill


# --- participants ------------------------------------------------------------------------------------------------


def add_participant(
    *,
    drill: Drill,
    actor: str,
    actor_user_id: int | None = None,
    user_id: int | None = None,
    staff_id: int | None = None,
    name: str = "",
    role: str = "",
) -> Participant:
    """A user, a member of staff or an outside party (name only) takes part in the drill."""
    display = _clean(name, 200)
    if user_id is not None:
        user = db.session.get(User, user_id)
        if user is None or user.organization_id != drill.organization_id:
            raise ValidationError("no such user", field="user_id")
        display = display or user.name or user.email
    if staff_id is not None:
        staff = db.session.get(Staff, staff_id)
        if staff is None or staff.organization_id != drill.organization_id:
            raise ValidationError("no such member of staff", field="staff_id")
        display = display or staff.name
    if not display:
        raise ValidationError("choose a user or a member of staff, or type a name", field="name")
    for existing in drill.participants:
        if (user_id is not None and existing.user_id == user_id) or (
            staff_id is not None and existing.staff_id == staff_id
        ):
            raise Conflict(f"{display} already takes part")
    participant = Participant(
        drill_id=drill.id, user_id=user_id, staff_id=staff_id, name=display, role=_clean(role, 100)
    )
    drill.participants.append(participant)
    db.session.flush()
    _audit_drill(
        drill, "drill.participant.add", f"{display} joins drill {drill.title!r}", actor, actor_user_id
    )
    return participant


def remove_participant(
    *, drill: Drill, participant_id: int, actor: str, actor_user_id: int | None = None
) -> None:
    participant = next((p for p in drill.participants if p.id == participant_id), None)
    if participant is None:
        raise NotFound("no such participant")
    drill.participants.remove(participant)
    db.session.flush()
    _audit_drill(
        drill,
        "drill.participant.remove",
        f"{participant.name} leaves drill {drill.title!r}",
        actor,
        actor_user_id,
    )


def is_participant(*, drill: Drill, user_id: int | None) -> bool:
    return user_id is not None and any(p.user_id == user_id for p in drill.participants)


# --- the log -----------------------------------------------------------------------------------------------------


def add_entry(
    *,
    drill: Drill,
    text: str,
    author: str,
    kind: EntryKind | str = EntryKind.OBSERVATION,
    author_user_id: int | None = None,
    at: datetime | None = None,
    via: str = "web",
    now: datetime | None = None,
) -> LogEntry:
    """A line of the drill's log. ``at`` may be earlier than now (written down after the fact), never later."""
    now = now or utcnow()
    body = _clean(text, 4000)
    if not body:
        raise ValidationError("write what you observed", field="text")
    if drill.state is DrillState.CANCELLED:
        raise Conflict("the drill was cancelled")
    try:
        entry_kind = EntryKind(kind)
    except ValueError as exc:
        raise ValidationError(str(exc), field="kind") from exc
    when = at or now
    if when > now + timedelta(minutes=1):
        raise ValidationError("the time of an observation cannot be in the future", field="at")
    entry = LogEntry(
        drill_id=drill.id,
        at=when,
        kind=entry_kind,
        text=body,
        author=_clean(author, 200) or "-",
        author_user_id=author_user_id,
        via=via,
        created_at=now,
    )
    drill.entries.append(entry)
    db.session.flush()
    _audit_drill(
        drill,
        f"drill.{entry_kind.value}",
        f"{entry_kind.value} on drill {drill.title!r}: {body[:80]}",
        entry.author,
        author_user_id,
    )
    return entry


def observation_token(
    *, drill: Drill, actor: str, actor_user_id: int | None = None, renew: bool = False
) -> str:
    """The drill's observation link token (created on first use); ``renew`` makes the old link stop working."""
    if drill.observation_token and not renew:
        return drill.observation_token
    drill.observation_token = new_observation_token()
    db.session.flush()
    _audit_drill(
        drill,
        "drill.link",
        f"observation link of drill {drill.title!r} {'renewed' if renew else 'created'}",
        actor,
        actor_user_id,
    )
    return drill.observation_token


def revoke_observation_token(*, drill: Drill, actor: str, actor_user_id: int | None = None) -> None:
    drill.observation_token = None
    db.session.flush()
    _audit_drill(
        drill, "drill.link", f"observation link of drill {drill.title!r} revoked", actor, actor_user_id
    )


def drill_by_observation_token(token: str) -> Drill | None:
    if not token or len(token) > 64:
        return None
    drill = db.session.scalar(select(Drill).where(Drill.observation_token == token))
    if drill is None or drill.state in (DrillState.CANCELLED,):
        return None
    return drill


# --- corrective actions ------------------------------------------------------------------------------------------


def add_action(
    *,
    drill: Drill,
    title: str,
    actor: str,
    actor_user_id: int | None = None,
    detail: str = "",
    owner: str = "",
    owner_user_id: int | None = None,
    due_on: date | None = None,
    entry_id: int | None = None,
) -> CorrectiveAction:
    title = _clean(title, 300)
    if not title:
        raise ValidationError("say what has to be done", field="title")
    if owner_user_id is not None:
        user = db.session.get(User, owner_user_id)
        if user is None or user.organization_id != drill.organization_id:
            raise ValidationError("no such user", field="owner_user_id")
        owner = owner or user.name or user.email
    if entry_id is not None and not any(e.id == entry_id for e in drill.entries):
        raise ValidationError("no such issue on this drill", field="entry_id")
    action = CorrectiveAction(
        organization_id=drill.organization_id,
        drill_id=drill.id,
        entry_id=entry_id,
        title=title,
        detail=_clean(detail, 4000),
        owner=_clean(owner, 200),
        owner_user_id=owner_user_id,
        due_on=due_on,
    )
    db.session.add(action)
    db.session.flush()
    _audit_drill(
        drill,
        "action.create",
        f"corrective action #{action.id} {title!r} (owner {action.owner or '-'})",
        actor,
        actor_user_id,
    )
    return action


def get_action(*, action_id: int, organization_id: int) -> CorrectiveAction:
    action = db.session.get(CorrectiveAction, action_id)
    if action is None or action.organization_id != organization_id:
        raise NotFound(f"no corrective action {action_id}")
    return action


class Keep(enum.Enum):
    """ "Leave this field as it is" for arguments where ``None`` means "clear it"."""

    KEEP = "keep"


KEEP = Keep.KEEP


def update_action(
    *,
    action: CorrectiveAction,
    actor: str,
    actor_user_id: int | None = None,
    status: ActionStatus | str | None = None,
    owner: str | None = None,
    due_on: date | Keep | None = KEEP,
    title: str | None = None,
    detail: str | None = None,
    now: datetime | None = None,
) -> CorrectiveAction:
    """Change the given fields of an action; ``due_on`` left out keeps the due date, ``None`` clears it."""
    now = now or utcnow()
    changed: dict[str, Any] = {}
    if status is not None:
        try:
            new_status = ActionStatus(status)
        except ValueError as exc:
            raise ValidationError(str(exc), field="status") from exc
        if new_status is not action.status:
            changed["status"] = [action.status.value, new_status.value]
            action.status = new_status
            action.closed_at = now if new_status.is_closed else None
    if owner is not None and _clean(owner, 200) != action.owner:
        changed["owner"] = [action.owner, _clean(owner, 200)]
        action.owner = _clean(owner, 200)
    if not isinstance(due_on, Keep) and due_on != action.due_on:
        changed["due_on"] = [_plain(action.due_on), _plain(due_on)]
        action.due_on = due_on
    if title is not None:
        cleaned = _clean(title, 300)
        if not cleaned:
            raise ValidationError("say what has to be done", field="title")
        if cleaned != action.title:
            changed["title"] = [action.title, cleaned]
            action.title = cleaned
    if detail is not None and _clean(detail, 4000) != action.detail:
        changed["detail"] = True
        action.detail = _clean(detail, 4000)
    if changed:
        db.session.flush()
        audit(
            action="reports.action.update",
            organization_id=action.organization_id,
            actor=actor,
            actor_user_id=actor_user_id,
            target_type="corrective_action",
            target_id=action.id,
            summary=f"corrective action #{action.id} changed: {', '.join(changed)}",
            detail={"changes": changed},
        )
    return action


def _drill_moment(drill: Drill) -> datetime:
    return drill.actual_start_at or drill.planned_start_at or drill.created_at


def actions_of(*, drill: Drill) -> list[tuple[CorrectiveAction, bool]]:
    """The drill's own corrective actions, then those carried over: raised by an earlier drill of the
    organization and not yet done or cancelled when this one took place. Each with ``carried_over``."""
    moment = _drill_moment(drill)
    own = list(
        db.session.scalars(
            select(CorrectiveAction)
            .where(CorrectiveAction.drill_id == drill.id)
            .order_by(CorrectiveAction.id)
        )
    )
    origin_moment = func.coalesce(Drill.actual_start_at, Drill.planned_start_at, Drill.created_at)
    carried = list(
        db.session.scalars(
            select(CorrectiveAction)
            .join(Drill, Drill.id == CorrectiveAction.drill_id)
            .where(
                CorrectiveAction.organization_id == drill.organization_id,
                CorrectiveAction.drill_id != drill.id,
                origin_moment < moment,
                Drill.state != DrillState.CANCELLED,
                or_(CorrectiveAction.closed_at.is_(None), CorrectiveAction.closed_at > moment),
            )
            .order_by(CorrectiveAction.due_on.is_(None), CorrectiveAction.due_on, CorrectiveAction.id)
        )
    )
    return [(a, False) for a in own] + [(a, True) for a in carried]


def list_actions(*, organization_id: int, only_open: bool = False) -> list[CorrectiveAction]:
    query = select(CorrectiveAction).where(CorrectiveAction.organization_id == organization_id)
    if only_open:
        query = query.where(CorrectiveAction.status.in_(OPEN_ACTION_STATUSES))
    return list(
        db.session.scalars(
            query.options(selectinload(CorrectiveAction.drill)).order_by(
                CorrectiveAction.due_on.is_(None), CorrectiveAction.due_on, CorrectiveAction.id
            )
        )
    )


def is_overdue(action: CorrectiveAction, today: date) -> bool:
    return not action.status.is_closed and action.due_on is not None and action.due_on < today


# --- links to what happened --------------------------------------------------------------------------------------


def drill_broadcasts(*, organization_id: int, limit: int = 50) -> list[Broadcast]:
    """The organization's drill broadcasts, newest first (a notification-test drill links one of them)."""
    return list(
        db.session.scalars(
            select(Broadcast)
            .where(Broadcast.organization_id == organization_id, Broadcast.mode == BroadcastMode.DRILL)
            .order_by(Broadcast.id.desc())
            .limit(limit)
        )
    )


def link_broadcast(
    *, drill: Drill, broadcast_id: int | None, actor: str, actor_user_id: int | None = None
) -> Drill:
    if broadcast_id is not None:
        broadcast = db.session.get(Broadcast, broadcast_id)
        if broadcast is None or broadcast.organization_id != drill.organization_id:
            raise ValidationError("no such broadcast", field="broadcast_id")
        if drill.kind is RecordKind.DRILL and broadcast.mode is not BroadcastMode.DRILL:
            raise ValidationError("a drill links a drill broadcast, not a real one", field="broadcast_id")
    drill.broadcast_id = broadcast_id
    db.session.flush()
    _audit_drill(
        drill,
        "drill.link_broadcast",
        f"drill {drill.title!r} linked to broadcast {broadcast_id}"
        if broadcast_id
        else f"drill {drill.title!r} unlinked from its broadcast",
        actor,
        actor_user_id,
    )
    return drill


def start_drill_broadcast(
    *,
    drill: Drill,
    template: str,
    audience: Any,
    actor: str,
    actor_user_id: int | None = None,
    channels: Iterable[str] | None = None,
    now: datetime | None = None,
) -> Broadcast:
    """Start the drill's safety broadcast (always in drill mode) and link it; the drill starts with it."""
    now = now or utcnow()
    if drill.state in (DrillState.COMPLETED, DrillState.CANCELLED):
        raise Conflict(f"the drill is {drill.state.value}")
    if drill.broadcast_id is not None:
        raise Conflict("this drill already has its broadcast")
    broadcast = ivr_service.start_broadcast(
        organization_id=drill.organization_id,
        template=template,
        audience=audience,
        actor=actor,
        actor_user_id=actor_user_id,
        mode=BroadcastMode.DRILL,
        channels=list(channels) if channels else None,
        origin=f"drill:{drill.id}",
        title=f"【訓練】{drill.title}"[:200],
        now=now,
    )
    link_broadcast(drill=drill, broadcast_id=broadcast.id, actor=actor, actor_user_id=actor_user_id)
    if drill.state is DrillState.PLANNED:
        start_drill(drill=drill, actor=actor, actor_user_id=actor_user_id, now=now)
    return broadcast


def incidents_available() -> bool:
    try:
        import incidents.service  # noqa: F401
    except ImportError:
        return False
    return True


def open_incident_record(
    *, organization_id: int, incident_id: int, actor: str, actor_user_id: int | None = None
) -> Drill:
    """The record (timeline, observations, actions, report) of a real incident; one per incident."""
    existing = db.session.scalar(
        select(Drill).where(Drill.organization_id == organization_id, Drill.incident_id == incident_id)
    )
    if existing is not None:
        return existing
    if not incidents_available():
        raise NotFound("the incidents part is not installed")
    from incidents import service as incidents_service

    summary = incidents_service.incident_summary(incident_id)
    if summary["organization_id"] != organization_id:
        raise NotFound(f"no incident {incident_id}")
    scenario = {
        "earthquake": Scenario.EARTHQUAKE,
        "tsunami": Scenario.TSUNAMI,
        "heavy_rain": Scenario.TYPHOON,
        "pandemic": Scenario.PANDEMIC,
        "system_outage": Scenario.SYSTEM_OUTAGE,
    }.get(summary["type"], Scenario.OTHER)
    drill = create_drill(
        organization_id=organization_id,
        type=DrillType.OTHER,
        scenario=scenario,
        title=summary["title"],
        kind=RecordKind.INCIDENT,
        incident_id=incident_id,
        actor=actor,
        actor_user_id=actor_user_id,
        origin="incident",
    )
    drill.actual_start_at = summary["started_at"]
    drill.actual_end_at = summary["closed_at"]
    drill.state = DrillState.COMPLETED if summary["closed_at"] else DrillState.IN_PROGRESS
    drill.summary = summary.get("summary") or ""
    db.session.flush()
    return drill


def window(drill: Drill, now: datetime | None = None) -> tuple[datetime, datetime] | None:
    """The stretch of time whose routing changes and calls belong to the drill (actual, else planned)."""
    start = drill.actual_start_at or drill.planned_start_at
    if start is None:
        return None
    end = (
        drill.actual_end_at
        or (drill.planned_end_at if drill.actual_start_at is None else None)
        or now
        or utcnow()
    )
    return start, max(start, end)


def routing_changes_in(*, drill: Drill, now: datetime | None = None) -> list[RoutingChange]:
    span = window(drill, now)
    if span is None:
        return []
    return list(
        db.session.scalars(
            select(RoutingChange)
            .where(RoutingChange.organization_id == drill.organization_id, RoutingChange.at.between(*span))
            .order_by(RoutingChange.at, RoutingChange.id)
        )
    )


def decision_of(drill: Drill, changes: Sequence[RoutingChange]) -> RoutingChange | None:
    """The reroute that counts as the failover decision: the one chosen on the drill, otherwise the first site
    marked down or evacuated, or line moved, in the window."""
    if drill.decision_change_id is not None:
        chosen = db.session.get(RoutingChange, drill.decision_change_id)
        if chosen is not None:
            return chosen
    for change in changes:
        if change.undoes_id is not None:
            continue
        if (
            change.kind is ChangeKind.SITE_STATE
            and (change.after or {}).get("state") in FAILOVER_DECISION_STATES
        ):
            return change
        if change.kind is ChangeKind.LINE_OVERRIDE and (change.after or {}).get("override"):
            return change
    return None


def call_facts(*, drill: Drill, now: datetime | None = None) -> list[metrics.CallFact]:
    span = window(drill, now)
    if span is None:
        return []
    calls = db.session.scalars(
        select(InboundCall)
        .where(InboundCall.organization_id == drill.organization_id, InboundCall.started_at.between(*span))
        .options(selectinload(InboundCall.legs))
        .order_by(InboundCall.started_at)
    )
    return [
        metrics.CallFact(
            started_at=call.started_at,
            ended_at=call.ended_at,
            outcome=call.outcome,
            legs=tuple(_leg_fact(leg) for leg in call.legs),
        )
        for call in calls
    ]


def _leg_fact(leg: CallLeg) -> metrics.LegFact:
    return metrics.LegFact(
        kind=leg.kind.value,
        site_code=leg.site_code,
        outcome=leg.outcome.value if leg.outcome is not None else None,
        started_at=leg.started_at,
        ended_at=leg.ended_at,
        duration_s=leg.duration_s,
    )


# --- figures -----------------------------------------------------------------------------------------------------


@dataclass
class BroadcastFigures:
    """A drill broadcast's figures: the counts exactly as :func:`ivr.service.broadcast_status` gives them, and
    what :mod:`reports.metrics` adds from the answer times and attempts."""

    status: dict[str, Any]
    started_at: datetime
    facts: list[metrics.RecipientFact]
    times: dict[int, float | None]
    median_seconds: float | None
    curve: list[metrics.CurvePoint]
    by_department: list[metrics.GroupFigures]
    by_site: list[metrics.GroupFigures]
    unreachable_contacts: list[metrics.UnreachableContact] = field(default_factory=list)
    started_by: str = ""

    @property
    def recipients(self) -> int:
        return int(self.status["recipients"])

    @property
    def answered(self) -> int:
        return int(self.status["answered"])

    @property
    def answer_rate(self) -> float:
        return metrics.rate(self.answered, self.recipients)


def _scoped(query: Any, principal: Principal | None) -> Any:
    if principal is None or principal.is_org_wide(*READ_ROLES):
        return query
    return query.join(Staff, Staff.id == Recipient.staff_id).where(principal.staff_filter(*READ_ROLES))


def recipient_facts(*, broadcast_id: int, principal: Principal | None = None) -> list[metrics.RecipientFact]:
    query = (
        select(Recipient.state, Recipient.answered_at, Department.name, Site.code)
        .outerjoin(Department, Department.id == Recipient.department_id)
        .outerjoin(Site, Site.id == Recipient.site_id)
        .where(Recipient.broadcast_id == broadcast_id)
    )
    return [
        metrics.RecipientFact(
            department=department or "",
            site=site or "",
            # The state decides, as on the broadcast's own page: an answer time alone does not count.
            answered_at=answered_at if state is RecipientState.ANSWERED else None,
        )
        for state, answered_at, department, site in db.session.execute(_scoped(query, principal)).all()
    ]


def _contact_label(
    kind: ContactKind | None, position: int | None, masked: str, channel: str, tr: Translate
) -> str:
    if kind is None:
        return tr("deleted contact point") + f" ({tr(channel)})"
    label = tr(
        {
            ContactKind.WORK_PHONE: "work phone",
            ContactKind.WORK_EMAIL: "work e-mail",
            ContactKind.PRIVATE_PHONE: "private phone",
            ContactKind.PRIVATE_EMAIL: "private e-mail",
            ContactKind.FAMILY_PHONE: "family phone",
            ContactKind.FAMILY_EMAIL: "family e-mail",
        }[kind]
    )
    # Private and family values are their owner's: not even masked on paper.
    return label if kind.is_private else f"{label} {masked}".strip()


def attempt_facts(
    *, broadcast_id: int, principal: Principal | None = None, tr: Translate
) -> list[metrics.AttemptFact]:
    query = (
        select(
            Attempt.contact_point_id,
            Attempt.to_masked,
            Attempt.channel,
            Attempt.state,
            Attempt.error_code,
            Attempt.error_reason,
            func.coalesce(Attempt.ended_at, Attempt.updated_at),
            ContactPoint.kind,
            ContactPoint.position,
            Staff.name,
            Staff.hide_from_answer_views,
            Department.name,
            Site.code,
        )
        .join(Recipient, Recipient.id == Attempt.recipient_id)
        .join(Staff, Staff.id == Recipient.staff_id)
        .outerjoin(ContactPoint, ContactPoint.id == Attempt.contact_point_id)
        .outerjoin(Department, Department.id == Recipient.department_id)
        .outerjoin(Site, Site.id == Recipient.site_id)
        .where(Attempt.broadcast_id == broadcast_id, Attempt.purpose == "ladder")
    )
    if principal is not None and not principal.is_org_wide(*READ_ROLES):
        query = query.where(principal.staff_filter(*READ_ROLES))
    out = []
    for (
        cp_id,
        masked,
        channel,
        state,
        code,
        reason,
        at,
        kind,
        position,
        name,
        hidden,
        dept,
        site,
    ) in db.session.execute(query):
        out.append(
            metrics.AttemptFact(
                contact_key=f"cp:{cp_id}" if cp_id is not None else f"addr:{masked}:{channel.value}",
                person=ivr_service.HIDDEN_NAME if hidden else name,
                department=dept or "",
                site=site or "",
                contact_label=_contact_label(kind, position, masked or "", channel.value, tr),
                channel=channel.value,
                state=state.value,
                error_code=code,
                error_reason=reason,
                at=at,
            )
        )
    return out


def broadcast_figures(
    *,
    broadcast_id: int,
    principal: Principal | None = None,
    tr: Translate | None = None,
    with_contacts: bool = True,
) -> BroadcastFigures:
    status = ivr_service.broadcast_status(broadcast_id=broadcast_id, principal=principal)
    broadcast = ivr_service.get_broadcast(broadcast_id=broadcast_id)
    started = broadcast.started_at or broadcast.created_at
    facts = recipient_facts(broadcast_id=broadcast_id, principal=principal)
    answered = [f.answered_at for f in facts]
    recipients = int(status["recipients"])
    dept_medians = metrics.medians_by(started, facts, lambda f: f.department)
    site_medians = metrics.medians_by(started, facts, lambda f: f.site)
    return BroadcastFigures(
        status=status,
        started_at=started,
        facts=facts,
        times=metrics.times_to_percentiles(started, answered, recipients),
        median_seconds=metrics.median_seconds(started, answered),
        curve=metrics.answer_curve(started, answered, recipients),
        by_department=_groups(status["by_department"], dept_medians),
        by_site=_groups(status["by_site"], site_medians),
        unreachable_contacts=(
            metrics.unreachable_contacts(
                attempt_facts(broadcast_id=broadcast_id, principal=principal, tr=tr or (lambda m: m))
            )
            if with_contacts
            else []
        ),
        started_by=broadcast.created_by,
    )


def _groups(rows: list[dict[str, Any]], medians: dict[str, float | None]) -> list[metrics.GroupFigures]:
    """The status page's per-group counts, with the median answer time of each group beside them."""
    return [
        metrics.GroupFigures(
            name=str(row["name"]),
            recipients=int(row["recipients"]),
            answered=int(row["answered"]),
            rate=metrics.rate(int(row["answered"]), int(row["recipients"])),
            median_seconds=medians.get(str(row["name"])),
        )
        for row in rows
    ]


@dataclass
class DrillFigures:
    broadcast: BroadcastFigures | None
    failover: metrics.FailoverFigures | None
    changes: list[RoutingChange]
    decision: RoutingChange | None

    def headline(self) -> dict[str, float | None]:
        """The figures compared from drill to drill."""
        out: dict[str, float | None] = {}
        if self.broadcast is not None:
            b = self.broadcast
            out.update(
                recipients=float(b.recipients),
                answered=float(b.answered),
                answer_rate=b.answer_rate,
                t25=b.times.get(25),
                t50=b.times.get(50),
                t75=b.times.get(75),
                t90=b.times.get(90),
                median=b.median_seconds,
                unreachable_contacts=float(len(b.unreachable_contacts)),
            )
        if self.failover is not None:
            out.update(
                failover_seconds=self.failover.seconds_to_alternate, calls_lost=float(self.failover.lost)
            )
        return out


def has_failover(drill: Drill, changes: Sequence[RoutingChange]) -> bool:
    return drill.type is DrillType.RELOCATION or (drill.kind is RecordKind.INCIDENT and bool(changes))


def drill_figures(
    *,
    drill: Drill,
    principal: Principal | None = None,
    tr: Translate | None = None,
    now: datetime | None = None,
) -> DrillFigures:
    broadcast = (
        broadcast_figures(broadcast_id=drill.broadcast_id, principal=principal, tr=tr)
        if drill.broadcast_id is not None
        else None
    )
    changes = routing_changes_in(drill=drill, now=now)
    decision = decision_of(drill, changes)
    failover = None
    if has_failover(drill, changes):
        alternate = db.session.get(Site, drill.alternate_site_id) if drill.alternate_site_id else None
        down_site = None
        if decision is not None and decision.kind is ChangeKind.SITE_STATE:
            site = db.session.get(Site, decision.subject_id)
            down_site = site.code if site else None
        failover = metrics.failover_figures(
            decision_at=decision.at if decision else None,
            calls=call_facts(drill=drill, now=now),
            alternate_site=alternate.code if alternate else None,
            down_site=down_site,
        )
    return DrillFigures(broadcast=broadcast, failover=failover, changes=changes, decision=decision)


def previous_drills(*, drill: Drill, limit: int = COMPARED_DRILLS) -> list[Drill]:
    """Earlier completed drills of the same organization and type, most recent first."""
    moment = func.coalesce(Drill.actual_start_at, Drill.planned_start_at, Drill.created_at)
    return list(
        db.session.scalars(
            select(Drill)
            .where(
                Drill.organization_id == drill.organization_id,
                Drill.kind == RecordKind.DRILL,
                Drill.type == drill.type,
                Drill.state == DrillState.COMPLETED,
                Drill.id != drill.id,
                moment < _drill_moment(drill),
            )
            .order_by(moment.desc(), Drill.id.desc())
            .limit(limit)
        )
    )


# --- the report --------------------------------------------------------------------------------------------------


def _timeline(
    drill: Drill, figures: DrillFigures, tr: Translate, incident_rows: list[TimelineRow]
) -> list[TimelineRow]:
    rows = [
        TimelineRow(at=e.at, source=tr(labels.ENTRY_LABELS[e.kind]), actor=e.author, text=e.text)
        for e in drill.entries
    ]
    b = figures.broadcast
    if b is not None:
        source = tr("Safety call")
        rows.append(
            TimelineRow(
                at=b.started_at,
                source=source,
                actor=b.started_by,
                text=tr("Drill broadcast started to {n} people").format(n=b.recipients),
            )
        )
        for percent in (50, 90):
            seconds = b.times.get(percent)
            if seconds is not None:
                rows.append(
                    TimelineRow(
                        at=b.started_at + timedelta(seconds=seconds),
                        source=source,
                        actor="",
                        text=tr("{p} % had answered").format(p=percent),
                    )
                )
        closed = b.status.get("closed_at")
        if closed:
            rows.append(
                TimelineRow(
                    at=datetime.fromisoformat(closed),
                    source=source,
                    actor="",
                    text=tr("Broadcast closed: {a} of {n} answered").format(a=b.answered, n=b.recipients),
                )
            )
    for change in figures.changes:
        rows.append(
            TimelineRow(
                at=change.at,
                source=tr("Routing"),
                actor=change.actor,
                text=change.summary + (f" — {change.reason}" if change.reason else ""),
            )
        )
    if figures.failover is not None and figures.failover.first_alternate_answer_at is not None:
        rows.append(
            TimelineRow(
                at=figures.failover.first_alternate_answer_at,
                source=tr("Routing"),
                actor="",
                text=tr("First call answered at the alternate site"),
            )
        )
    rows += incident_rows
    return sorted(rows, key=lambda r: r.at)


def _incident_parts(drill: Drill, tr: Translate) -> tuple[list[KeyFigure], list[TimelineRow]]:
    if drill.incident_id is None or not incidents_available():
        return [], []
    from incidents import service as incidents_service

    try:
        summary = incidents_service.incident_summary(drill.incident_id)
        entries = incidents_service.incident_timeline(drill.incident_id)
    except NotFound:
        return [], []
    figures = [
        KeyFigure(label=tr(str(f["label"])), value=str(f["value"])) for f in summary.get("key_figures", [])
    ]
    rows = [
        TimelineRow(
            at=e.at,
            source=tr("Incident") if e.source == "incident" else tr(e.part or "audit"),
            actor=e.actor,
            text=e.text + (f" (× {e.count})" if e.count > 1 else ""),
        )
        for e in entries
    ]
    return figures, rows


def _comparison(
    drill: Drill, current: dict[str, float | None], principal: Principal | None, tr: Translate, tz: ZoneInfo
) -> ComparisonSection | None:
    earlier = previous_drills(drill=drill)
    if not earlier or not current:
        return None
    previous = [drill_figures(drill=d, principal=principal, tr=tr).headline() for d in earlier]
    keys = [k for k in labels.FIGURES if k in current]
    headers = [
        f"{(d.actual_start_at or d.planned_start_at or d.created_at).astimezone(tz):%Y-%m-%d} {tr(labels.SCENARIO_LABELS[d.scenario])}"
        for d in earlier
    ]
    return ComparisonSection(
        headers=headers,
        rows=metrics.compare(current, previous, keys),
        labels={k: tr(labels.FIGURES[k][0]) for k in keys},
        units={k: labels.FIGURES[k][1] for k in keys},
    )


def _org(organization_id: int) -> Organization:
    org = db.session.get(Organization, organization_id)
    if org is None:
        raise NotFound("no such organization")
    return org


def _local_today(org: Organization, now: datetime) -> date:
    return now.astimezone(ZoneInfo(org.timezone or "Asia/Tokyo")).date()


def build_report(
    *,
    drill: Drill,
    language: str = "ja",
    principal: Principal | None = None,
    now: datetime | None = None,
) -> DrillReport:
    """Everything the printed report shows, read now from the drill and what actually happened."""
    now = now or utcnow()
    tr = translator(language)
    org = _org(drill.organization_id)
    tz = ZoneInfo(org.timezone or "Asia/Tokyo")
    figures = drill_figures(drill=drill, principal=principal, tr=tr, now=now)
    incident_figures, incident_rows = _incident_parts(drill, tr)
    section = None
    if figures.broadcast is not None:
        b = figures.broadcast
        people = ivr_service.unreached(
            broadcast_id=drill.broadcast_id or 0, principal=principal, limit=UNREACHED_LISTED
        )
        section = BroadcastSection(
            id=int(b.status["id"]),
            title=str(b.status["title"]),
            state=tr(str(b.status["state"])),
            started_at=b.started_at,
            closed_at=datetime.fromisoformat(b.status["closed_at"]) if b.status.get("closed_at") else None,
            recipients=b.recipients,
            answered=b.answered,
            unreached=int(b.status["unreached"]),
            in_progress=int(b.status["in_progress"]),
            answer_rate=b.answer_rate,
            times=b.times,
            median_seconds=b.median_seconds,
            curve=b.curve,
            by_department=b.by_department,
            by_site=b.by_site,
            unreachable_contacts=b.unreachable_contacts,
            unreached_people=[
                PersonRow(
                    employee_id=p.employee_id,
                    name=p.name,
                    department=p.department,
                    site=p.site,
                    last_attempt=_attempt_words(p.last_attempt, tr),
                )
                for p in people
            ],
            unreached_people_total=int(b.status["unreached"]),
        )
    failover = None
    if figures.failover is not None:
        alternate = db.session.get(Site, drill.alternate_site_id) if drill.alternate_site_id else None
        down = ""
        if figures.decision is not None and figures.decision.kind is ChangeKind.SITE_STATE:
            site = db.session.get(Site, figures.decision.subject_id)
            down = f"{site.code} {site.name}" if site else ""
        failover = FailoverSection(
            figures=figures.failover,
            changes=[
                RoutingRow(
                    at=c.at,
                    actor=c.actor,
                    summary=c.summary,
                    reason=c.reason,
                    is_decision=figures.decision is not None and c.id == figures.decision.id,
                )
                for c in figures.changes
            ],
            alternate_site_label=f"{alternate.code} {alternate.name}" if alternate else tr("any other site"),
            down_site_label=down,
        )
    today = _local_today(org, now)
    actions = [
        ActionRow(
            id=a.id,
            title=a.title,
            detail=a.detail,
            owner=a.owner,
            due_on=a.due_on,
            status=a.status.value,
            status_label=tr(labels.ACTION_LABELS[a.status]),
            raised_in=a.drill.title if carried else drill.title,
            carried_over=carried,
            overdue=is_overdue(a, today),
        )
        for a, carried in actions_of(drill=drill)
    ]
    participants = []
    for p in drill.participants:
        affiliation = ""
        if p.staff_id is not None:
            staff = db.session.get(Staff, p.staff_id)
            if staff is not None and staff.department is not None:
                affiliation = staff.department.name
        participants.append(ParticipantRow(name=p.name, role=p.role, affiliation=affiliation))
    scope_note = ""
    if principal is not None and not principal.is_org_wide(*READ_ROLES):
        scope_note = tr("Figures are limited to the departments and sites you are responsible for.")
    return DrillReport(
        id=drill.id,
        language=language,
        timezone=org.timezone or "Asia/Tokyo",
        organization=org.name,
        kind=drill.kind.value,
        title=drill.title,
        type_label=tr(labels.TYPE_LABELS[drill.type])
        if drill.kind is RecordKind.DRILL
        else tr("Real incident"),
        scenario_label=tr(labels.SCENARIO_LABELS[drill.scenario]),
        state_label=tr(labels.STATE_LABELS[drill.state]),
        planned_start=drill.planned_start_at,
        planned_end=drill.planned_end_at,
        actual_start=drill.actual_start_at,
        actual_end=drill.actual_end_at,
        objectives=drill.objectives,
        summary=drill.summary,
        generated_at=now,
        participants=participants,
        broadcast=section,
        failover=failover,
        incident_figures=incident_figures,
        timeline=_timeline(drill, figures, tr, incident_rows),
        observations=[
            TimelineRow(at=e.at, source=tr(labels.ENTRY_LABELS[e.kind]), actor=e.author, text=e.text)
            for e in drill.entries
        ],
        issues=[
            TimelineRow(at=e.at, source=tr(labels.ENTRY_LABELS[e.kind]), actor=e.author, text=e.text)
            for e in drill.entries
            if e.kind is EntryKind.ISSUE
        ],
        actions=actions,
        comparison=_comparison(drill, figures.headline(), principal, tr, tz),
        scope_note=scope_note,
    )


def _attempt_words(text: str, tr: Translate) -> str:
    """ivr's "voice no_answer (21211)" in the reader's words."""
    words = text.split(" ", 2)
    if len(words) < 2:
        return text
    rest = f" {words[2]}" if len(words) > 2 else ""
    return f"{tr(words[0])} {outcome_label(words[1], tr)}{rest}"


def report_pdf(
    *, drill: Drill, language: str = "ja", principal: Principal | None = None, now: datetime | None = None
) -> bytes:
    from reports.pdf import render_pdf

    report = build_report(drill=drill, language=language, principal=principal, now=now)
    return render_pdf(report, translator(language))


def report_filename(drill: Drill, language: str) -> str:
    moment = _drill_moment(drill)
    return f"{drill.kind.value}-report-{drill.id}-{moment:%Y%m%d}-{language}.pdf"


# --- CSV ---------------------------------------------------------------------------------------------------------


def csv_bytes(rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 with a BOM (Excel needs it to read UTF-8), CRLF line ends."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8")


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def metrics_rows(
    *, drill: Drill, language: str = "ja", principal: Principal | None = None, now: datetime | None = None
) -> list[list[Any]]:
    """The drill's figures as a table: section, name, figure, value, unit (seconds are plain numbers)."""
    tr = translator(language)
    figures = drill_figures(drill=drill, principal=principal, tr=tr, now=now)
    rows: list[list[Any]] = [[tr("Section"), tr("Name"), tr("Figure"), tr("Value"), tr("Unit")]]
    headline = figures.headline()
    for key, (label, unit) in labels.FIGURES.items():
        if key in headline:
            value = headline[key]
            text = (
                _seconds(value)
                if unit == "seconds"
                else ("" if value is None else f"{value:.1f}" if unit == "percent" else f"{value:g}")
            )
            rows.append([tr("Drill"), drill.title, tr(label), text, tr(unit)])
    b = figures.broadcast
    if b is not None:
        for section, groups in ((tr("Department"), b.by_department), (tr("Site"), b.by_site)):
            for g in groups:
                rows.append([section, g.name, tr("Recipients"), g.recipients, tr("count")])
                rows.append([section, g.name, tr("Answered"), g.answered, tr("count")])
                rows.append([section, g.name, tr("Answer rate"), f"{g.rate:.1f}", tr("percent")])
                rows.append(
                    [section, g.name, tr("Median time to answer"), _seconds(g.median_seconds), tr("seconds")]
                )
        for point in b.curve:
            rows.append(
                [
                    tr("Answer curve"),
                    f"{point.minute}",
                    tr("Answered (%)"),
                    f"{point.percent:.1f}",
                    tr("percent"),
                ]
            )
    return rows


def actions_rows(
    *, organization_id: int, language: str = "ja", now: datetime | None = None
) -> list[list[Any]]:
    tr = translator(language)
    today = _local_today(_org(organization_id), now or utcnow())
    rows: list[list[Any]] = [
        [
            "#",
            tr("Action"),
            tr("Detail"),
            tr("Owner"),
            tr("Due"),
            tr("Status"),
            tr("Overdue"),
            tr("Raised in"),
            tr("Raised on"),
            tr("Closed on"),
        ]
    ]
    for a in list_actions(organization_id=organization_id):
        moment = _drill_moment(a.drill)
        rows.append(
            [
                a.id,
                a.title,
                a.detail,
                a.owner,
                a.due_on.isoformat() if a.due_on else "",
                tr(labels.ACTION_LABELS[a.status]),
                tr("yes") if is_overdue(a, today) else "",
                a.drill.title,
                moment.date().isoformat(),
                a.closed_at.date().isoformat() if a.closed_at else "",
            ]
        )
    return rows


# --- schedule and reminders --------------------------------------------------------------------------------------


def get_schedule(*, organization_id: int) -> DrillSchedule | None:
    return db.session.scalar(select(DrillSchedule).where(DrillSchedule.organization_id == organization_id))


def recurrence_of(schedule: DrillSchedule) -> Recurrence:
    return Recurrence(
        every_months=schedule.every_months,
        day_of_month=schedule.day_of_month,
        start_hour=schedule.start_hour,
        duration_minutes=schedule.duration_minutes,
    )


def save_schedule(
    *,
    organization_id: int,
    actor: str,
    actor_user_id: int | None = None,
    enabled: bool = True,
    drill_type: DrillType | str = DrillType.NOTIFICATION_TEST,
    every_months: int = 1,
    day_of_month: int = 15,
    start_hour: int = 10,
    duration_minutes: int = 60,
    scenarios: Sequence[str] | None = None,
    remind_days_before: int = 7,
) -> DrillSchedule:
    errors = []
    if not 1 <= every_months <= 12:
        errors.append("every 1 to 12 months")
    if not 1 <= day_of_month <= 31:
        errors.append("the day of the month is 1 to 31")
    if not 0 <= start_hour <= 23:
        errors.append("the hour is 0 to 23")
    if not 5 <= duration_minutes <= 24 * 60:
        errors.append("a drill lasts 5 minutes to 24 hours")
    if not 0 <= remind_days_before <= 60:
        errors.append("remind 0 to 60 days before")
    rotation = [str(s) for s in (scenarios or DEFAULT_ROTATION)]
    unknown = [s for s in rotation if s not in {x.value for x in Scenario}]
    if unknown:
        errors.append(f"unknown scenarios: {', '.join(unknown)}")
    if errors:
        raise ValidationError(errors[0], errors=errors)
    schedule = get_schedule(organization_id=organization_id)
    if schedule is None:
        schedule = DrillSchedule(organization_id=organization_id)
        db.session.add(schedule)
    schedule.enabled = enabled
    schedule.drill_type = DrillType(drill_type)
    schedule.every_months = every_months
    schedule.day_of_month = day_of_month
    schedule.start_hour = start_hour
    schedule.duration_minutes = duration_minutes
    if list(schedule.scenarios or []) != rotation:
        schedule.scenarios = rotation
        schedule.next_index = 0
    schedule.remind_days_before = remind_days_before
    schedule.updated_by = actor
    db.session.flush()
    audit(
        action="reports.schedule.save",
        organization_id=organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="drill_schedule",
        target_id=schedule.id,
        summary=f"drill schedule {'on' if enabled else 'off'}: every {every_months} month(s) on day {day_of_month}, "
        f"{' → '.join(rotation)}",
    )
    return schedule


def _last_scheduled(organization_id: int) -> Drill | None:
    return db.session.scalar(
        select(Drill)
        .where(
            Drill.organization_id == organization_id,
            Drill.origin == "schedule",
            Drill.planned_start_at.is_not(None),
        )
        .order_by(Drill.planned_start_at.desc(), Drill.id.desc())
        .limit(1)
    )


def ensure_next_scheduled_drill(*, schedule: DrillSchedule, now: datetime | None = None) -> Drill | None:
    """Create the schedule's next planned drill unless one is already coming up. Idempotent."""
    now = now or utcnow()
    if not schedule.enabled:
        return None
    org = _org(schedule.organization_id)
    tz = ZoneInfo(org.timezone or "Asia/Tokyo")
    last = _last_scheduled(schedule.organization_id)
    if (
        last is not None
        and last.planned_start_at is not None
        and last.planned_start_at > now
        and last.state is DrillState.PLANNED
    ):
        return None
    last_day = last.planned_start_at.astimezone(tz).date() if last and last.planned_start_at else None
    day = next_drill_date(recurrence_of(schedule), after=now.astimezone(tz).date(), last=last_day)
    start, end = drill_window(recurrence_of(schedule), day, tz)
    scenario = Scenario(scenario_at(schedule.scenarios or DEFAULT_ROTATION, schedule.next_index))
    language = str((org.settings or {}).get("language", "ja"))
    tr = translator(language)
    drill = create_drill(
        organization_id=schedule.organization_id,
        type=schedule.drill_type,
        scenario=scenario,
        title=tr("{date} {scenario} drill").format(
            date=f"{day:%Y-%m}", scenario=tr(labels.SCENARIO_LABELS[scenario])
        ),
        objectives=tr("Scheduled drill: check that everyone can be reached and answers in time."),
        planned_start_at=start,
        planned_end_at=end,
        actor="system: drill schedule",
        origin="schedule",
    )
    schedule.next_index += 1
    db.session.flush()
    return drill


def crisis_managers(*, organization_id: int) -> list[User]:
    return list(
        db.session.scalars(
            select(User)
            .join(RoleAssignment, RoleAssignment.user_id == User.id)
            .where(
                User.organization_id == organization_id,
                User.is_active.is_(True),
                RoleAssignment.role == Role.CRISIS_MANAGER,
            )
            .distinct()
            .order_by(User.email)
        )
    )


def reminder_mail(*, drill: Drill, user: User, tz: ZoneInfo, base_url: str = "") -> Mail:
    tr = translator(user.language or "ja")
    when = drill.planned_start_at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if drill.planned_start_at else "-"
    link = f"{base_url.rstrip('/')}/drills/{drill.id}" if base_url else f"/drills/{drill.id}"
    subject = tr("Drill reminder: {title} on {when}").format(title=drill.title, when=when)
    body = "\n".join(
        [
            tr("A drill is coming up."),
            "",
            f"{tr('Drill')}: {drill.title}",
            f"{tr('Type')}: {tr(labels.TYPE_LABELS[drill.type])}",
            f"{tr('Scenario')}: {tr(labels.SCENARIO_LABELS[drill.scenario])}",
            f"{tr('Planned')}: {when}",
            "",
            tr(
                "Prepare the objectives, the participants and, for a notification test, the audience: {link}"
            ).format(link=link),
        ]
    )
    return Mail(to=user.email, subject=subject, text=body)


@dataclass
class ReminderRun:
    created: list[int] = field(default_factory=list)  # drill ids created from schedules
    reminded: list[int] = field(default_factory=list)  # drill ids whose reminder went out
    mails: int = 0


def run_drill_reminders(
    *, now: datetime | None = None, mailer: MailBackend | None = None, base_url: str = ""
) -> ReminderRun:
    """The daily job: create each schedule's next drill, then remind the crisis managers of drills that start
    within the schedule's reminder period (once per drill: an audit entry, and an e-mail after commit)."""
    now = now or utcnow()
    run = ReminderRun()
    schedules = list(db.session.scalars(select(DrillSchedule).where(DrillSchedule.enabled.is_(True))))
    remind_days = {s.organization_id: s.remind_days_before for s in schedules}
    for schedule in schedules:
        created = ensure_next_scheduled_drill(schedule=schedule, now=now)
        if created is not None:
            run.created.append(created.id)
    horizon = now + timedelta(days=max([*remind_days.values(), 7]))
    due = db.session.scalars(
        select(Drill).where(
            Drill.state == DrillState.PLANNED,
            Drill.reminded_at.is_(None),
            Drill.planned_start_at.is_not(None),
            and_(Drill.planned_start_at > now, Drill.planned_start_at <= horizon),
        )
    ).all()
    outgoing: list[Mail] = []
    for drill in due:
        days = remind_days.get(drill.organization_id, 7)
        if drill.planned_start_at is None or not reminder_due(drill.planned_start_at, now, days):
            continue
        org = _org(drill.organization_id)
        tz = ZoneInfo(org.timezone or "Asia/Tokyo")
        users = crisis_managers(organization_id=drill.organization_id)
        drill.reminded_at = now
        outgoing += [reminder_mail(drill=drill, user=u, tz=tz, base_url=base_url) for u in users]
        _audit_drill(
            drill,
            "drill.reminder",
            f"reminder for drill {drill.title!r} on {drill.planned_start_at.astimezone(tz):%Y-%m-%d %H:%M} "
            f"to {len(users)} crisis manager(s)",
            "system: drill schedule",
            None,
            to=[u.email for u in users],
        )
        run.reminded.append(drill.id)
    db.session.flush()
    if mailer is not None and outgoing:
        run.mails = len(outgoing)
        db.after_commit(_sender(mailer, outgoing))
    return run


def _sender(mailer: MailBackend, mails: list[Mail]) -> Callable[[], None]:
    def send() -> None:
        for mail in mails:
            try:
                mailer.send(mail)
            except MailError:
                # The audit entry and the drill list still show the drill; one lost e-mail is not worth a retry storm.
                log.warning("drill reminder to %s could not be sent", mail.to, exc_info=True)

    return send
