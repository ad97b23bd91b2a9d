"""Incident screens: the list, declaring, one incident (team, checklist, decisions, closing), its timeline, the
status page editor and the user's notifications."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import abort, flash, g, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from core.auth.models import Role
from core.auth.service import Principal
from core.directory.service import sites_of
from core.errors import LifelineError, NotFound
from core.i18n import current_language
from core.i18n import gettext as _
from core.time import JST, as_utc
from core.web import current_principal, require_roles
from incidents import care, checklists, notifications, service, status, teams
from incidents.labels import label
from incidents.models import (
    ChecklistStep,
    Incident,
    IncidentSeverity,
    IncidentState,
    IncidentType,
    MemberRole,
    Phase,
    ServiceState,
    StepState,
)
from incidents.web import actor, attempt, bp, form_int, form_ints, user_id

VIEW_ROLES = service.VIEW_ROLES
COMMAND_ROLES = service.COMMAND_ROLES


def _incident(incident_id: int) -> Incident:
    try:
        return service.get_incident(
            incident_id=incident_id, organization_id=current_principal().organization_id
        )
    except NotFound:
        abort(404)


def _is_team(incident: Incident, uid: int | None) -> bool:
    return any(m.user_id == uid for m in incident.members)


def _may_command(principal: Principal, incident: Incident) -> bool:
    """Crisis managers, and the incident's own commander and deputies."""
    return principal.has(*COMMAND_ROLES) or _is_team(incident, principal.user_id)


def _may_update_step(principal: Principal, incident: Incident, step: ChecklistStep) -> bool:
    return _may_command(principal, incident) or step.owner_user_id == principal.user_id


def _back(incident: Incident) -> str:
    return url_for("incidents.detail", incident_id=incident.id)


@bp.app_template_global("incident_type_label")
def _type_label(value: Any) -> str:
    return service.type_label(value, current_language())


@bp.app_template_global("phase_label")
def _phase_label(value: str) -> str:
    ja, en = checklists.PHASE_LABELS[value]
    return en if current_language() == "en" else ja


@bp.app_context_processor
def _incident_globals() -> dict[str, Any]:
    return {
        "IncidentType": IncidentType,
        "IncidentSeverity": IncidentSeverity,
        "IncidentState": IncidentState,
        "StepState": StepState,
        "ServiceState": ServiceState,
        "Phase": Phase,
        "MemberRole": MemberRole,
        "label": label,
        "incident_roles": {"view": VIEW_ROLES, "status": status.EDIT_ROLES, "care": care.CARE_ROLES},
    }


# --- list and declaring ------------------------------------------------------------------------------------------


@bp.get("/")
@require_roles(*VIEW_ROLES)
def index() -> str:
    principal = current_principal()
    incidents = service.list_incidents(organization_id=principal.organization_id)
    uid = principal.user_id
    return render_template(
        "incidents/index.html",
        incidents=incidents,
        can_declare=principal.has(*COMMAND_ROLES),
        unread=notifications.unread_count(user_id=uid) if uid else 0,
        groups_unread=sum(teams.unread_counts(user_id=uid).values()) if uid else 0,
    )


def _parse_local(value: str) -> datetime | None:
    """A ``datetime-local`` field, read in Japan time (what people in the office mean)."""
    value = value.strip()
    if not value:
        return None
    try:
        return as_utc(datetime.fromisoformat(value).replace(tzinfo=JST))
    except ValueError:
        return None


@bp.route("/new", methods=["GET", "POST"])
@require_roles(*COMMAND_ROLES)
def declare() -> Any:
    principal = current_principal()
    sites = sites_of(organization_id=principal.organization_id)
    if request.method == "GET":
        return render_template("incidents/declare.html", sites=sites, values={}, error=None)
    values = request.form.to_dict()
    try:
        incident = service.declare_incident(
            organization_id=principal.organization_id,
            type=request.form.get("type", ""),
            severity=request.form.get("severity", ""),
            site_ids=form_ints("sites"),
            title=request.form.get("title", ""),
            description=request.form.get("description", ""),
            started_at=_parse_local(request.form.get("started_at", "")),
            actor=actor(),
            actor_user_id=user_id(),
            ip=request.remote_addr,
        )
        if request.form.get("me_commander"):
            service.assign_member(
                incident=incident,
                user_id=user_id(),
                role=MemberRole.COMMANDER,
                actor=actor(),
                actor_user_id=user_id(),
            )
    except LifelineError as exc:
        g.rollback_only = True
        return render_template("incidents/declare.html", sites=sites, values=values, error=_(str(exc))), 422
    flash(_("Incident declared."), "success")
    return redirect(_back(incident))


# --- one incident ------------------------------------------------------------------------------------------------


@bp.get("/<int:incident_id>")
@require_roles(*VIEW_ROLES)
def detail(incident_id: int) -> str:
    principal = current_principal()
    incident = _incident(incident_id)
    return render_template(
        "incidents/detail.html",
        incident=incident,
        commander=service.commander(incident),
        deputies=service.deputies(incident),
        phases=service.steps_by_phase(incident.steps),
        events=service.events(incident_id=incident.id)[-10:][::-1],
        users=service.org_users(organization_id=principal.organization_id),
        sites=sites_of(organization_id=principal.organization_id),
        can_command=_may_command(principal, incident),
        can_crisis=principal.has(*COMMAND_ROLES),
        may_update=lambda step: _may_update_step(principal, incident, step),
        figures=service.figures_of(incident),
    )


def _require_command(incident: Incident) -> None:
    if not _may_command(current_principal(), incident):
        abort(403)


@bp.post("/<int:incident_id>/confirm")
@require_roles(*COMMAND_ROLES)
def confirm(incident_id: int) -> BaseResponse:
    incident = _incident(incident_id)
    return attempt(
        lambda: service.confirm_incident(incident=incident, actor=actor(), actor_user_id=user_id()),
        done="Incident confirmed.",
        back=_back(incident),
    )


@bp.post("/<int:incident_id>/dismiss")
@require_roles(*COMMAND_ROLES)
def dismiss(incident_id: int) -> BaseResponse:
    incident = _incident(incident_id)
    return attempt(
        lambda: service.dismiss_incident(
            incident=incident, reason=request.form.get("reason", ""), actor=actor(), actor_user_id=user_id()
        ),
        done="Proposal dismissed.",
        back=_back(incident),
    )


@bp.post("/<int:incident_id>/change")
@require_roles(*VIEW_ROLES)
def change(incident_id: int) -> BaseResponse:
    incident = _incident(incident_id)
    _require_command(incident)
    return attempt(
        lambda: service.change_incident(
            incident=incident,
            severity=request.form.get("severity") or None,
            site_ids=form_ints("sites"),
            actor=actor(),
            actor_user_id=user_id(),
        ),
        done="Saved.",
        back=_back(incident),
    )


@bp.post("/<int:incident_id>/members")
@require_roles(*VIEW_ROLES)
def assign(incident_id: int) -> BaseResponse:
    incident = _incident(incident_id)
    _require_command(incident)
    uid = form_int("user_id")
    if uid is None:
        flash(_("Choose a person."), "error")
        return redirect(_back(incident))
    return attempt(
        lambda: service.assign_member(
            incident=incident,
            user_id=uid,
            role=request.form.get("role", "deputy"),
            actor=actor(),
            actor_user_id=user_id(),
        ),
        done="Saved.",
        back=_back(incident),
    )


@bp.post("/<int:incident_id>/members/<int:member_user_id>/remove")
@require_roles(*VIEW_ROLES)
def remove_member(incident_id: int, member_user_id: int) -> BaseResponse:
    incident = _incident(incident_id)
    _require_command(incident)
    return attempt(
        lambda: service.remove_member(
            incident=incident, user_id=member_user_id, actor=actor(), actor_user_id=user_id()
        ),
        done="Saved.",
        back=_back(incident),
    )


@bp.post("/<int:incident_id>/steps/<int:step_id>")
@require_roles(*VIEW_ROLES)
def update_step(incident_id: int, step_id: int) -> BaseResponse:
    incident = _incident(incident_id)
    try:
        step = service.get_step(incident=incident, step_id=step_id)
    except NotFound:
        abort(404)
    principal = current_principal()
    if not _may_update_step(principal, incident, step):
        abort(403)
    kwargs: dict[str, Any] = {}
    if "state" in request.form:
        kwargs["state"] = request.form["state"]
    if "owner" in request.form and _may_command(principal, incident):
        kwargs["owner_user_id"] = form_int("owner")
    if "note" in request.form:
        kwargs["note"] = request.form["note"]
    return attempt(
        lambda: service.update_step(step=step, actor=actor(), actor_user_id=user_id(), **kwargs),
        done="",
        back=_back(incident) + f"#step-{step.id}",
    )


@bp.post("/<int:incident_id>/steps")
@require_roles(*VIEW_ROLES)
def add_step(incident_id: int) -> BaseResponse:
    incident = _incident(incident_id)
    _require_command(incident)
    return attempt(
        lambda: service.add_step(
            incident=incident,
            phase=request.form.get("phase", Phase.INITIAL_RESPONSE.value),
            title_ja=request.form.get("title_ja", ""),
            title_en=request.form.get("title_en", ""),
            actor=actor(),
            actor_user_id=user_id(),
        ),
        done="Step added.",
        back=_back(incident),
    )


@bp.post("/<int:incident_id>/decisions")
@require_roles(*VIEW_ROLES)
def decide(incident_id: int) -> BaseResponse:
    incident = _incident(incident_id)
    _require_command(incident)
    return attempt(
        lambda: service.record_decision(
            incident=incident,
            text=request.form.get("text", ""),
            kind=request.form.get("kind", "decision"),
            actor=actor(),
            actor_user_id=user_id(),
        ),
        done="Recorded.",
        back=_back(incident),
    )


@bp.post("/<int:incident_id>/close")
@require_roles(*COMMAND_ROLES)
def close(incident_id: int) -> BaseResponse:
    incident = _incident(incident_id)
    return attempt(
        lambda: service.close_incident(
            incident=incident, summary=request.form.get("summary", ""), actor=actor(), actor_user_id=user_id()
        ),
        done="Incident closed.",
        back=_back(incident),
    )


@bp.get("/<int:incident_id>/timeline")
@require_roles(*VIEW_ROLES)
def timeline(incident_id: int) -> Any:
    principal = current_principal()
    incident = _incident(incident_id)
    # The audit log of the whole organization is for organization-wide eyes; a scoped user sees the incident's own.
    full = principal.is_org_wide(*VIEW_ROLES)
    entries = service.incident_timeline(incident.id, include_audit=full)
    if request.args.get("format") == "json":
        return jsonify(incident=incident.id, entries=[e.as_dict() for e in entries])
    return render_template("incidents/timeline.html", incident=incident, entries=entries, full=full)


# --- status page editor ------------------------------------------------------------------------------------------


@bp.route("/status-page", methods=["GET", "POST"])
@require_roles(*status.EDIT_ROLES)
def status_page() -> Any:
    principal = current_principal()
    if request.method == "POST":
        changes = []
        keys = request.form.getlist("key")
        for index, key in enumerate(keys):
            changes.append(
                status.EntryChange(
                    key=key,
                    label_ja=request.form.get(f"label_ja_{index}", ""),
                    label_en=request.form.get(f"label_en_{index}", ""),
                    state=request.form.get(f"state_{index}", ServiceState.NORMAL.value),
                    site_id=form_int(f"site_{index}"),
                    remove=bool(request.form.get(f"remove_{index}")),
                )
            )
        everything = status.can_edit_everything(principal)
        return attempt(
            lambda: status.update_status_page(
                principal=principal,
                changes=changes,
                announcement_ja=request.form.get("announcement_ja") if everything else None,
                announcement_en=request.form.get("announcement_en") if everything else None,
                actor=actor(),
                ip=request.remote_addr,
            ),
            done="The status page is updated.",
            back=url_for("incidents.status_page"),
        )
    page = status.ensure_status_page(organization_id=principal.organization_id)
    limited = status.editable_site_ids(principal)
    return render_template(
        "incidents/status_edit.html",
        page=page,
        snapshot=status.snapshot_of(page),
        everything=limited is None,
        editable=lambda entry: limited is None or (entry.site_id is not None and entry.site_id in limited),
        sites=sites_of(organization_id=principal.organization_id),
    )


# --- notifications -----------------------------------------------------------------------------------------------


@bp.get("/notifications")
@require_roles(*tuple(Role))
def notifications_page() -> str:
    uid = user_id()
    items = notifications.recent(user_id=uid)
    return render_template("incidents/notifications.html", items=items)


@bp.post("/notifications/read")
@require_roles(*tuple(Role))
def notifications_read() -> BaseResponse:
    notifications.mark_read(user_id=user_id())
    return redirect(url_for("incidents.notifications_page"))
