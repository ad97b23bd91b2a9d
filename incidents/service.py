"""Incident command: declaring (or confirming a proposed) incident, its commander and deputies, the activation
checklist, decisions, the timeline and the closing summary.

Every change flushes, writes an :class:`IncidentEvent` (the incident's own history) and an audit entry; the edge
commits. :func:`incident_timeline` and :func:`incident_summary` are the read functions the reports part prints.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from core import db
from core.auth.models import AuditEntry, Role, User
from core.auth.service import audit
from core.directory.models import Site
from core.errors import Conflict, NotFound, ValidationError
from core.time import utcnow
from incidents import checklists, notifications
from incidents.models import (
    Board,
    CareCase,
    ChecklistStep,
    DeliveryState,
    Incident,
    IncidentEvent,
    IncidentMember,
    IncidentSeverity,
    IncidentState,
    IncidentType,
    MemberRole,
    Notice,
    NoticeDelivery,
    Phase,
    Post,
    StepState,
)
from incidents.timeline import TimelineEntry, merge, part_of
from ivr.models import Broadcast, Recipient, RecipientState

VIEW_ROLES = (Role.CRISIS_MANAGER, Role.SUPERVISOR, Role.MANAGER)
COMMAND_ROLES = (Role.CRISIS_MANAGER,)

TYPE_LABELS: dict[IncidentType, tuple[str, str]] = {
    IncidentType.EARTHQUAKE: ("地震", "Earthquake"),
    IncidentType.TSUNAMI: ("津波", "Tsunami"),
    IncidentType.HEAVY_RAIN: ("大雨・台風", "Heavy rain / typhoon"),
    IncidentType.PANDEMIC: ("感染症", "Pandemic"),
    IncidentType.SYSTEM_OUTAGE: ("システム障害", "System outage"),
    IncidentType.OTHER: ("その他", "Other"),
}


def type_label(incident_type: IncidentType | str, language: str = "ja") -> str:
    ja, en = TYPE_LABELS[IncidentType(incident_type)]
    return en if language == "en" else ja


# --- reading -----------------------------------------------------------------------------------------------------


def get_incident(*, incident_id: int, organization_id: int | None = None) -> Incident:
    incident = db.session.get(Incident, incident_id)
    if incident is None or (organization_id is not None and incident.organization_id != organization_id):
        raise NotFound("This incident does not exist.")
    return incident


def list_incidents(*, organization_id: int, limit: int = 50) -> list[Incident]:
    """Open incidents first (proposed before active), then the most recent others."""
    order = {
        IncidentState.PROPOSED: 0,
        IncidentState.ACTIVE: 1,
        IncidentState.CLOSED: 2,
        IncidentState.DISMISSED: 3,
    }
    rows = list(
        db.session.scalars(
            select(Incident)
            .where(Incident.organization_id == organization_id)
            .order_by(Incident.created_at.desc(), Incident.id.desc())
            .limit(limit)
        )
    )
    return sorted(rows, key=lambda i: order[i.state])


def open_incidents(*, organization_id: int) -> list[Incident]:
    return list(
        db.session.scalars(
            select(Incident)
            .where(
                Incident.organization_id == organization_id,
                Incident.state.in_((IncidentState.PROPOSED, IncidentState.ACTIVE)),
            )
            .order_by(Incident.created_at.desc())
        )
    )


def org_users(*, organization_id: int) -> list[User]:
    return list(
        db.session.scalars(
            select(User)
            .where(User.organization_id == organization_id, User.is_active.is_(True))
            .order_by(User.name, User.email)
        )
    )


def commander(incident: Incident) -> User | None:
    return next((m.user for m in incident.members if m.role is MemberRole.COMMANDER), None)


def deputies(incident: Incident) -> list[User]:
    return [m.user for m in incident.members if m.role is MemberRole.DEPUTY]


def events(*, incident_id: int) -> list[IncidentEvent]:
    return list(
        db.session.scalars(
            select(IncidentEvent)
            .where(IncidentEvent.incident_id == incident_id)
            .order_by(IncidentEvent.at, IncidentEvent.id)
        )
    )


# --- helpers -----------------------------------------------------------------------------------------------------


def _event(
    incident: Incident,
    kind: str,
    text: str,
    *,
    actor: str,
    actor_user_id: int | None,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> IncidentEvent:
    event = IncidentEvent(
        incident_id=incident.id,
        at=now,
        kind=kind,
        actor=actor,
        actor_user_id=actor_user_id,
        text=text,
        detail=detail or {},
    )
    db.session.add(event)
    return event


def _audit(
    incident: Incident,
    action: str,
    summary: str,
    *,
    actor: str,
    actor_user_id: int | None,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
) -> None:
    audit(
        action=action,
        organization_id=incident.organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="incident",
        target_id=incident.id,
        summary=summary,
        detail=detail,
        ip=ip,
    )


def _sites(organization_id: int, site_ids: Iterable[int]) -> list[Site]:
    wanted = {int(s) for s in site_ids}
    if not wanted:
        return []
    sites = list(
        db.session.scalars(select(Site).where(Site.organization_id == organization_id, Site.id.in_(wanted)))
    )
    if len(sites) != len(wanted):
        raise ValidationError("unknown site", field="sites")
    return sorted(sites, key=lambda s: s.code)


def _org_user(organization_id: int, user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None or user.organization_id != organization_id or not user.is_active:
        raise ValidationError("unknown user", field="user")
    return user


def _require_open(incident: Incident) -> None:
    if not incident.is_open:
        raise Conflict("This incident is closed.")


def _seed_checklist(incident: Incident, now: datetime) -> None:
    for position, step in enumerate(checklists.default_steps(incident.type.value)):
        incident.steps.append(
            ChecklistStep(
                position=position,
                phase=Phase(step.phase),
                title_ja=step.title_ja,
                title_en=step.title_en,
                state=StepState.TODO,
                updated_at=now,
            )
        )


# --- declaring ---------------------------------------------------------------------------------------------------


def declare_incident(
    *,
    organization_id: int,
    type: IncidentType | str,
    severity: IncidentSeverity | str,
    site_ids: Iterable[int] = (),
    title: str = "",
    description: str = "",
    started_at: datetime | None = None,
    actor: str,
    actor_user_id: int | None = None,
    now: datetime | None = None,
    ip: str | None = None,
) -> Incident:
    """A crisis manager declares an incident: it is active at once and its checklist is seeded."""
    now = now or utcnow()
    try:
        incident_type = IncidentType(type)
        level = IncidentSeverity(severity)
    except ValueError:
        raise ValidationError("unknown type or severity", field="type") from None
    if started_at is not None and started_at > now:
        raise ValidationError("the start cannot be in the future", field="started_at")
    sites = _sites(organization_id, site_ids)
    incident = Incident(
        organization_id=organization_id,
        type=incident_type,
        title=(title.strip() or type_label(incident_type))[:200],
        severity=level,
        state=IncidentState.ACTIVE,
        source="manual",
        description=description.strip(),
        started_at=started_at or now,
        declared_at=now,
        declared_by=actor,
        declared_by_user_id=actor_user_id,
        created_at=now,
    )
    incident.sites = sites
    _seed_checklist(incident, now)
    db.session.add(incident)
    db.session.flush()
    _event(
        incident,
        "declared",
        f"{incident.title} ({incident_type.value}, {level.value})",
        actor=actor,
        actor_user_id=actor_user_id,
        now=now,
        detail={"sites": [s.code for s in sites]},
    )
    _audit(
        incident,
        "incidents.declare",
        f"incident {incident.title!r} declared ({incident_type.value}, {level.value})",
        actor=actor,
        actor_user_id=actor_user_id,
        detail={"sites": [s.code for s in sites], "severity": level.value},
        ip=ip,
    )
    return incident


def propose_incident(
    *,
    org_id: int,
    type: IncidentType | str,
    sites: Iterable[int],
    severity: IncidentSeverity | str,
    source: str,
    summary: str,
    started_at: datetime | None = None,
    now: datetime | None = None,
) -> Incident:
    """An incident suggested by an automatic rule (a JMA bulletin); crisis managers confirm or dismiss it.

    One incident per source: a later bulletin of the same event widens the sites and raises the severity of the
    incident already proposed (or running) instead of proposing a second one.
    """
    now = now or utcnow()
    incident_type = IncidentType(type)
    level = IncidentSeverity(severity)
    wanted = _sites(org_id, sites)
    source = (source or "rule")[:120]
    existing = db.session.scalar(
        select(Incident)
        .where(Incident.organization_id == org_id, Incident.source == source)
        .order_by(Incident.id.desc())
        .limit(1)
    )
    if existing is not None:
        if existing.is_open:
            added = [s for s in wanted if s not in existing.sites]
            raised = level.rank > existing.severity.rank
            if added or raised:
                existing.sites = sorted([*existing.sites, *added], key=lambda s: s.code)
                if raised:
                    existing.severity = level
                _event(
                    existing,
                    "widened",
                    summary,
                    actor=source,
                    actor_user_id=None,
                    now=now,
                    detail={"added_sites": [s.code for s in added], "severity": existing.severity.value},
                )
                db.session.flush()
                _audit(
                    existing,
                    "incidents.widen",
                    f"incident {existing.title!r} widened by {source}",
                    actor=source,
                    actor_user_id=None,
                    detail={"added_sites": [s.code for s in added], "severity": existing.severity.value},
                )
        return existing
    incident = Incident(
        organization_id=org_id,
        type=incident_type,
        title=(summary.strip().splitlines()[0] if summary.strip() else type_label(incident_type))[:200],
        severity=level,
        state=IncidentState.PROPOSED,
        source=source,
        description=summary.strip(),
        started_at=started_at or now,
        declared_by=source,
        created_at=now,
    )
    incident.sites = wanted
    _seed_checklist(incident, now)
    db.session.add(incident)
    db.session.flush()
    _event(incident, "proposed", summary, actor=source, actor_user_id=None, now=now)
    _audit(
        incident,
        "incidents.propose",
        f"incident {incident.title!r} proposed by {source}",
        actor=source,
        actor_user_id=None,
        detail={"sites": [s.code for s in wanted], "severity": level.value},
    )
    for user in notifications.users_with_role(organization_id=org_id, roles=COMMAND_ROLES):
        notifications.notify(
            organization_id=org_id,
            user_id=user.id,
            kind="incident.proposed",
            message="Incident proposed: {title} — {summary}",
            params={"title": incident.title, "summary": summary.strip()[:300]},
            link=f"/incidents/{incident.id}",
            now=now,
        )
    return incident


def confirm_incident(
    *, incident: Incident, actor: str, actor_user_id: int | None = None, now: datetime | None = None
) -> Incident:
    now = now or utcnow()
    if incident.state is not IncidentState.PROPOSED:
        raise Conflict("Only a proposed incident can be confirmed.")
    incident.state = IncidentState.ACTIVE
    incident.declared_at = now
    incident.declared_by = actor
    incident.declared_by_user_id = actor_user_id
    _event(incident, "confirmed", "", actor=actor, actor_user_id=actor_user_id, now=now)
    db.session.flush()
    _audit(
        incident,
        "incidents.confirm",
        f"incident {incident.title!r} confirmed",
        actor=actor,
        actor_user_id=actor_user_id,
    )
    return incident


def dismiss_incident(
    *,
    incident: Incident,
    reason: str,
    actor: str,
    actor_user_id: int | None = None,
    now: datetime | None = None,
) -> Incident:
    now = now or utcnow()
    if incident.state is not IncidentState.PROPOSED:
        raise Conflict("Only a proposed incident can be dismissed.")
    incident.state = IncidentState.DISMISSED
    incident.closed_at = now
    incident.closed_by = actor
    incident.closing_summary = reason.strip()
    _event(incident, "dismissed", reason.strip(), actor=actor, actor_user_id=actor_user_id, now=now)
    db.session.flush()
    _audit(
        incident,
        "incidents.dismiss",
        f"proposed incident {incident.title!r} dismissed",
        actor=actor,
        actor_user_id=actor_user_id,
        detail={"reason": reason.strip()[:500]},
    )
    return incident


def change_incident(
    *,
    incident: Incident,
    severity: IncidentSeverity | str | None = None,
    site_ids: Iterable[int] | None = None,
    actor: str,
    actor_user_id: int | None = None,
    now: datetime | None = None,
) -> Incident:
    now = now or utcnow()
    _require_open(incident)
    changes: dict[str, Any] = {}
    if severity is not None and IncidentSeverity(severity) is not incident.severity:
        changes["severity"] = [incident.severity.value, IncidentSeverity(severity).value]
        incident.severity = IncidentSeverity(severity)
    if site_ids is not None:
        sites = _sites(incident.organization_id, site_ids)
        before = sorted(s.code for s in incident.sites)
        after = [s.code for s in sites]
        if before != after:
            changes["sites"] = [before, after]
            incident.sites = sites
    if not changes:
        return incident
    text = "; ".join(f"{name}: {old} → {new}" for name, (old, new) in changes.items())
    _event(incident, "changed", text, actor=actor, actor_user_id=actor_user_id, now=now, detail=changes)
    db.session.flush()
    _audit(
        incident,
        "incidents.change",
        f"incident {incident.title!r}: {text}",
        actor=actor,
        actor_user_id=actor_user_id,
    )
    return incident


# --- command -----------------------------------------------------------------------------------------------------


def assign_member(
    *,
    incident: Incident,
    user_id: int,
    role: MemberRole | str,
    actor: str,
    actor_user_id: int | None = None,
    now: datetime | None = None,
) -> IncidentMember:
    """Make a user the commander (replacing the previous one, who stays as a deputy) or a deputy."""
    now = now or utcnow()
    _require_open(incident)
    role = MemberRole(role)
    user = _org_user(incident.organization_id, user_id)
    member = next((m for m in incident.members if m.user_id == user.id), None)
    if role is MemberRole.COMMANDER:
        for other in incident.members:
            if other.role is MemberRole.COMMANDER and other.user_id != user.id:
                other.role = MemberRole.DEPUTY
    if member is None:
        member = IncidentMember(user_id=user.id, role=role, assigned_at=now)
        incident.members.append(member)
    else:
        member.role = role
        member.assigned_at = now
    db.session.flush()
    _event(
        incident,
        role.value,
        user.name or user.email,
        actor=actor,
        actor_user_id=actor_user_id,
        now=now,
        detail={"user_id": user.id},
    )
    _audit(
        incident,
        f"incidents.{role.value}",
        f"{user.email} is {role.value} of incident {incident.title!r}",
        actor=actor,
        actor_user_id=actor_user_id,
        detail={"user_id": user.id},
    )
    if user.id != actor_user_id:
        notifications.notify(
            organization_id=incident.organization_id,
            user_id=user.id,
            kind=f"incident.{role.value}",
            message="You are now the incident commander of {title}"
            if role is MemberRole.COMMANDER
            else "You are now a deputy for {title}",
            params={"title": incident.title},
            link=f"/incidents/{incident.id}",
            now=now,
        )
    return member


def remove_member(
    *,
    incident: Incident,
    user_id: int,
    actor: str,
    actor_user_id: int | None = None,
    now: datetime | None = None,
) -> None:
    now = now or utcnow()
    _require_open(incident)
    member = next((m for m in incident.members if m.user_id == user_id), None)
    if member is None:
        raise NotFound("This person is not part of the incident team.")
    incident.members.remove(member)
    db.session.flush()
    name = member.user.name or member.user.email
    _event(
        incident,
        "removed",
        name,
        actor=actor,
        actor_user_id=actor_user_id,
        now=now,
        detail={"user_id": user_id},
    )
    _audit(
        incident,
        "incidents.member.remove",
        f"{member.user.email} removed from incident {incident.title!r}",
        actor=actor,
        actor_user_id=actor_user_id,
    )


def get_step(*, incident: Incident, step_id: int) -> ChecklistStep:
    step = next((s for s in incident.steps if s.id == step_id), None)
    if step is None:
        raise NotFound("This step does not exist.")
    return step


_UNSET: Any = object()


def update_step(
    *,
    step: ChecklistStep,
    state: StepState | str | None = None,
    owner_user_id: int | None = _UNSET,
    note: str | None = None,
    actor: str,
    actor_user_id: int | None = None,
    now: datetime | None = None,
) -> ChecklistStep:
    """Change a step's state, owner or note; each change is a line in the timeline."""
    now = now or utcnow()
    incident = step.incident
    _require_open(incident)
    changes: list[str] = []
    detail: dict[str, Any] = {"step_id": step.id}
    if state is not None and StepState(state) is not step.state:
        new = StepState(state)
        changes.append(f"{step.state.value} → {new.value}")
        detail["state"] = [step.state.value, new.value]
        step.state = new
        if new is StepState.DOING and step.started_at is None:
            step.started_at = now
        if new in (StepState.DONE, StepState.SKIPPED):
            step.finished_at = now
        elif new is StepState.TODO:
            step.started_at = step.finished_at = None
        else:
            step.finished_at = None
    if owner_user_id is not _UNSET and owner_user_id != step.owner_user_id:
        owner = _org_user(incident.organization_id, owner_user_id) if owner_user_id is not None else None
        step.owner_user_id = owner.id if owner else None
        step.owner = owner
        changes.append(f"owner: {owner.name or owner.email if owner else '-'}")
        detail["owner_user_id"] = step.owner_user_id
        if owner is not None and owner.id != actor_user_id:
            notifications.notify(
                organization_id=incident.organization_id,
                user_id=owner.id,
                kind="incident.step",
                message="A checklist step was given to you: {title} — {step}",
                params={
                    "title": incident.title,
                    "step": {"ja": step.title_ja, "en": step.title_en or step.title_ja},
                },
                link=f"/incidents/{incident.id}",
                now=now,
            )
    if note is not None and note.strip() != step.note:
        step.note = note.strip()
        changes.append("note")
    if not changes:
        return step
    step.updated_at = now
    text = f"{step.title_ja} / {step.title_en}: " + ", ".join(changes)
    _event(incident, "step", text, actor=actor, actor_user_id=actor_user_id, now=now, detail=detail)
    db.session.flush()
    _audit(incident, "incidents.step", text, actor=actor, actor_user_id=actor_user_id, detail=detail)
    return step


def add_step(
    *,
    incident: Incident,
    phase: Phase | str,
    title_ja: str,
    title_en: str = "",
    actor: str,
    actor_user_id: int | None = None,
    now: datetime | None = None,
) -> ChecklistStep:
    now = now or utcnow()
    _require_open(incident)
    if not title_ja.strip() and not title_en.strip():
        raise ValidationError("a step needs a title", field="title_ja")
    phase = Phase(phase)
    same_phase = [s.position for s in incident.steps if s.phase is phase]
    after = max(same_phase) if same_phase else max([s.position for s in incident.steps], default=-1)
    for s in incident.steps:
        if s.position > after:
            s.position += 1
    step = ChecklistStep(
        phase=phase,
        position=after + 1,
        title_ja=(title_ja.strip() or title_en.strip())[:200],
        title_en=title_en.strip()[:200],
        updated_at=now,
    )
    incident.steps.append(step)
    db.session.flush()
    _event(
        incident,
        "step.add",
        step.title_ja,
        actor=actor,
        actor_user_id=actor_user_id,
        now=now,
        detail={"step_id": step.id},
    )
    _audit(
        incident,
        "incidents.step.add",
        f"step {step.title_ja!r} added",
        actor=actor,
        actor_user_id=actor_user_id,
    )
    return step


def record_decision(
    *,
    incident: Incident,
    text: str,
    kind: str = "decision",
    actor: str,
    actor_user_id: int | None = None,
    now: datetime | None = None,
) -> IncidentEvent:
    """A decision or a note for the record ("moved Osaka lines to Fukuoka at 14:05")."""
    now = now or utcnow()
    _require_open(incident)
    if kind not in ("decision", "note"):
        raise ValidationError("unknown kind", field="kind")
    if not text.strip():
        raise ValidationError("Write what was decided.", field="text")
    event = _event(incident, kind, text.strip()[:4000], actor=actor, actor_user_id=actor_user_id, now=now)
    db.session.flush()
    _audit(incident, f"incidents.{kind}", text.strip()[:300], actor=actor, actor_user_id=actor_user_id)
    return event


def close_incident(
    *,
    incident: Incident,
    summary: str,
    actor: str,
    actor_user_id: int | None = None,
    now: datetime | None = None,
) -> Incident:
    """Close with a summary; the key figures are computed now and kept with the incident."""
    now = now or utcnow()
    if incident.state is not IncidentState.ACTIVE:
        raise Conflict("Only an active incident can be closed.")
    if not summary.strip():
        raise ValidationError("Write a short summary before closing.", field="summary")
    incident.state = IncidentState.CLOSED
    incident.closed_at = now
    incident.closed_by = actor
    incident.closing_summary = summary.strip()
    _event(incident, "closed", summary.strip()[:4000], actor=actor, actor_user_id=actor_user_id, now=now)
    db.session.flush()
    incident.key_figures = {"figures": key_figures(incident, until=now)}
    db.session.flush()
    _audit(
        incident,
        "incidents.close",
        f"incident {incident.title!r} closed",
        actor=actor,
        actor_user_id=actor_user_id,
    )
    return incident


# --- timeline and summary ----------------------------------------------------------------------------------------


def window(incident: Incident, now: datetime | None = None) -> tuple[datetime, datetime]:
    return incident.started_at, incident.closed_at or now or utcnow()


def incident_timeline(incident_id: int, *, include_audit: bool = True) -> list[TimelineEntry]:
    """The incident's own events and the organization's audit log inside its window, in time order.

    Audit entries about this or any other incident are left out (the events already tell this one's story).
    """
    incident = get_incident(incident_id=incident_id)
    start, end = window(incident)
    own = [
        TimelineEntry(
            at=e.at,
            source="incident",
            kind=e.kind,
            actor=e.actor,
            text=e.text,
            part="incidents",
            detail=dict(e.detail or {}),
        )
        for e in events(incident_id=incident.id)
    ]
    logged: list[TimelineEntry] = []
    if include_audit:
        rows = db.session.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.organization_id == incident.organization_id,
                AuditEntry.at >= start,
                AuditEntry.at <= end,
                (AuditEntry.target_type.is_(None)) | (AuditEntry.target_type != "incident"),
            )
            .order_by(AuditEntry.at, AuditEntry.id)
        )
        logged = [
            TimelineEntry(
                at=row.at,
                source="audit",
                kind=row.action,
                actor=row.actor,
                text=row.summary,
                part=part_of(row.action),
                detail={"target_type": row.target_type, "target_id": row.target_id},
            )
            for row in rows
        ]
    return merge(own, logged)


def _count(query: Any) -> int:
    return int(db.session.scalar(query) or 0)


def key_figures(incident: Incident, *, until: datetime | None = None) -> list[dict[str, Any]]:
    """The figures a report prints for an incident, each ``{"key", "label", "value"}`` (label: English message id)."""
    start, end = window(incident, until)
    org = incident.organization_id
    minutes = max(0, int((end - start).total_seconds() // 60))
    steps = list(incident.steps)
    done = sum(1 for s in steps if s.state is StepState.DONE)
    skipped = sum(1 for s in steps if s.state is StepState.SKIPPED)
    broadcast_ids = list(
        db.session.scalars(
            select(Broadcast.id).where(
                Broadcast.organization_id == org, Broadcast.started_at >= start, Broadcast.started_at <= end
            )
        )
    )
    recipients = answered = care_cases = 0
    if broadcast_ids:
        recipients = _count(select(func.count(Recipient.id)).where(Recipient.broadcast_id.in_(broadcast_ids)))
        answered = _count(
            select(func.count(Recipient.id)).where(
                Recipient.broadcast_id.in_(broadcast_ids), Recipient.state == RecipientState.ANSWERED
            )
        )
        care_cases = _count(select(func.count(CareCase.id)).where(CareCase.broadcast_id.in_(broadcast_ids)))
    notice_ids = select(Notice.id).where(
        Notice.organization_id == org,
        (Notice.incident_id == incident.id)
        | (Notice.created_at.between(start, end) & Notice.incident_id.is_(None)),
    )
    delivery_counts = dict(
        db.session.execute(
            select(NoticeDelivery.state, func.count(NoticeDelivery.id))
            .where(NoticeDelivery.notice_id.in_(notice_ids))
            .group_by(NoticeDelivery.state)
        ).all()
    )
    posts = _count(
        select(func.count(Post.id))
        .join(Board, Board.id == Post.board_id)
        .where(Board.organization_id == org, Post.created_at.between(start, end))
    )
    reached = delivery_counts.get(DeliveryState.SENT, 0) + delivery_counts.get(DeliveryState.DELIVERED, 0)
    figures: list[tuple[str, str, Any]] = [
        ("duration_minutes", "Duration (minutes)", minutes),
        ("sites", "Sites affected", len(incident.sites)),
        ("steps_done", "Checklist steps done", done),
        ("steps_skipped", "Checklist steps skipped", skipped),
        ("steps_open", "Checklist steps still open", len(steps) - done - skipped),
        ("broadcasts", "Safety broadcasts", len(broadcast_ids)),
        ("recipients", "People asked", recipients),
        ("answered", "People who answered", answered),
        ("answer_rate", "Answer rate (%)", round(100.0 * answered / recipients, 1) if recipients else 0.0),
        ("care_cases", "People on the care list", care_cases),
        ("notices_sent", "Partner and family messages sent", reached),
        ("notices_failed", "Messages that failed", delivery_counts.get(DeliveryState.FAILED, 0)),
        ("board_posts", "Board posts", posts),
    ]
    return [{"key": key, "label": label, "value": value} for key, label, value in figures]


def figures_of(incident: Incident) -> list[dict[str, Any]]:
    """The figures frozen at closing for a closed incident, the live ones otherwise."""
    stored = (incident.key_figures or {}).get("figures")
    if incident.state is IncidentState.CLOSED and stored:
        return list(stored)
    return key_figures(incident)


def incident_summary(incident_id: int) -> dict[str, Any]:
    """Everything a report needs about an incident, as plain values (datetimes are aware UTC).

    A closed incident's figures are the ones frozen when it closed; an open one's are computed now.
    """
    incident = get_incident(incident_id=incident_id)
    boss = commander(incident)
    figures = figures_of(incident)
    start, end = window(incident)
    return {
        "id": incident.id,
        "organization_id": incident.organization_id,
        "title": incident.title,
        "type": incident.type.value,
        "type_label": {"ja": type_label(incident.type, "ja"), "en": type_label(incident.type, "en")},
        "severity": incident.severity.value,
        "state": incident.state.value,
        "source": incident.source,
        "description": incident.description,
        "summary": incident.closing_summary,
        "sites": [{"id": s.id, "code": s.code, "name": s.name, "name_en": s.name_en} for s in incident.sites],
        "started_at": start,
        "declared_at": incident.declared_at,
        "closed_at": incident.closed_at,
        "ended_at": end,
        "declared_by": incident.declared_by,
        "closed_by": incident.closed_by,
        "commander": None if boss is None else {"id": boss.id, "name": boss.name, "email": boss.email},
        "deputies": [{"id": u.id, "name": u.name, "email": u.email} for u in deputies(incident)],
        "checklist": [
            {
                "phase": s.phase.value,
                "title_ja": s.title_ja,
                "title_en": s.title_en,
                "state": s.state.value,
                "owner": None if s.owner is None else (s.owner.name or s.owner.email),
                "started_at": s.started_at,
                "finished_at": s.finished_at,
                "note": s.note,
            }
            for s in incident.steps
        ],
        "key_figures": figures,
    }


def steps_by_phase(steps: Sequence[ChecklistStep]) -> list[tuple[str, list[ChecklistStep]]]:
    return [(phase, [s for s in steps if s.phase.value == phase]) for phase in checklists.PHASES]
