"""Drill screens: the list, a drill's page (log, observations, actions, linked broadcast, figures, printed report),
the phone page for observers, the corrective-action list and the schedule. Thin: parse, call the service, render."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import select

from core import db
from core.auth.models import User
from core.directory.models import Department, Organization, Site, Staff
from core.errors import LifelineError, ValidationError
from core.i18n import current_language, gettext
from core.time import utcnow
from core.web import current_principal, require_roles
from ivr import service as ivr_service
from reports import labels, schedule, service
from reports.document import format_duration, outcome_label
from reports.models import DEFAULT_ROTATION, DrillState, DrillType, EntryKind, Scenario

bp = Blueprint(
    "reports",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static/reports",
)

READ = service.READ_ROLES
MANAGE = service.MANAGE_ROLES


# --- helpers -----------------------------------------------------------------------------------------------------


def _tz() -> ZoneInfo:
    org = db.session.get(Organization, current_principal().organization_id)
    return ZoneInfo(org.timezone if org and org.timezone else "Asia/Tokyo")


def _local_input(value: datetime | None, tz: ZoneInfo) -> str:
    """A datetime as a ``datetime-local`` input wants it, in the organization's time zone."""
    return "" if value is None else value.astimezone(tz).strftime("%Y-%m-%dT%H:%M")


def _parse_local(name: str, tz: ZoneInfo) -> datetime | None:
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=tz)
    except ValueError as exc:
        raise ValidationError(
            gettext("{field}: not a date and time", field=gettext(name)), field=name
        ) from exc


def _parse_date(name: str) -> date | None:
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationError(gettext("{field}: not a date", field=gettext(name)), field=name) from exc


def _parse_int(name: str, default: int | None = None) -> int | None:
    raw = request.form.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValidationError(gettext("{field}: not a number", field=gettext(name)), field=name) from exc


def _failed(exc: LifelineError) -> None:
    g.rollback_only = True
    for message in getattr(exc, "errors", [str(exc)]):
        flash(gettext(message), "error")


def _drill(drill_id: int) -> Any:
    return service.get_drill(drill_id=drill_id, organization_id=current_principal().organization_id)


def _actor() -> tuple[str, int | None]:
    principal = current_principal()
    return principal.label, principal.user_id


def _back(drill_id: int, anchor: str = "") -> Any:
    return redirect(url_for("reports.drill_detail", drill_id=drill_id) + (f"#{anchor}" if anchor else ""))


def _choices() -> dict[str, Any]:
    return {
        "type_labels": labels.TYPE_LABELS,
        "scenario_labels": labels.SCENARIO_LABELS,
        "state_labels": labels.STATE_LABELS,
        "entry_labels": labels.ENTRY_LABELS,
        "action_labels": labels.ACTION_LABELS,
        "kind_labels": labels.KIND_LABELS,
        "duration": lambda seconds: format_duration(seconds, gettext),
        "outcome": lambda value: outcome_label(value, gettext),
        "scenario_name": lambda value: labels.SCENARIO_LABELS.get(Scenario(value), value),
    }


# --- list and creation -------------------------------------------------------------------------------------------


@bp.get("/drills")
@require_roles(*READ)
def drill_list() -> str:
    principal = current_principal()
    org_id = principal.organization_id
    drills = service.list_drills(organization_id=org_id)
    now = utcnow()
    upcoming = [d for d in drills if d.state is DrillState.PLANNED]
    upcoming.sort(key=lambda d: d.planned_start_at or now)
    past = [d for d in drills if d.state is not DrillState.PLANNED]
    incidents: list[Any] = []
    if principal.has(*MANAGE) and service.incidents_available():
        from incidents import service as incidents_service

        incidents = incidents_service.list_incidents(organization_id=org_id, limit=20)
    return render_template(
        "reports/drill_list.html",
        upcoming=upcoming,
        past=past,
        open_actions=len(service.list_actions(organization_id=org_id, only_open=True)),
        can_manage=principal.has(*MANAGE),
        schedule=service.get_schedule(organization_id=org_id),
        incidents=incidents,
        tz=_tz(),
        **_choices(),
    )


@bp.route("/drills/new", methods=["GET", "POST"])
@require_roles(*MANAGE)
def drill_new() -> Any:
    principal = current_principal()
    tz = _tz()
    if request.method == "POST":
        actor, actor_id = _actor()
        try:
            drill = service.create_drill(
                organization_id=principal.organization_id,
                type=request.form.get("type", ""),
                scenario=request.form.get("scenario", ""),
                title=request.form.get("title", ""),
                objectives=request.form.get("objectives", ""),
                planned_start_at=_parse_local("planned_start_at", tz),
                planned_end_at=_parse_local("planned_end_at", tz),
                actor=actor,
                actor_user_id=actor_id,
            )
        except LifelineError as exc:
            _failed(exc)
        else:
            flash(gettext("The drill was created."), "success")
            return _back(drill.id)
    return render_template("reports/drill_new.html", form=request.form, **_choices())


@bp.post("/drills/incident")
@require_roles(*MANAGE)
def incident_record() -> Any:
    actor, actor_id = _actor()
    try:
        incident_id = _parse_int("incident_id")
        if incident_id is None:
            raise ValidationError("choose an incident", field="incident_id")
        drill = service.open_incident_record(
            organization_id=current_principal().organization_id,
            incident_id=incident_id,
            actor=actor,
            actor_user_id=actor_id,
        )
    except LifelineError as exc:
        _failed(exc)
        return redirect(url_for("reports.drill_list"))
    return _back(drill.id)


# --- a drill's page ----------------------------------------------------------------------------------------------


@bp.get("/drills/<int:drill_id>")
@require_roles(*READ)
def drill_detail(drill_id: int) -> str:
    principal = current_principal()
    drill = _drill(drill_id)
    org_id = principal.organization_id
    tz = _tz()
    figures = service.drill_figures(drill=drill, principal=principal, tr=gettext)
    can_manage = principal.has(*MANAGE)
    today = utcnow().astimezone(tz).date()
    link = (
        url_for("reports.observe_by_link", token=drill.observation_token, _external=True)
        if drill.observation_token and can_manage
        else None
    )
    return render_template(
        "reports/drill_detail.html",
        drill=drill,
        figures=figures,
        actions=service.actions_of(drill=drill),
        today=today,
        can_manage=can_manage,
        can_observe=can_manage or service.is_participant(drill=drill, user_id=principal.user_id),
        observation_link=link,
        broadcasts=service.drill_broadcasts(organization_id=org_id) if can_manage else [],
        templates=ivr_service.list_templates(organization_id=org_id) if can_manage else [],
        sites=db.session.scalars(
            select(Site).where(Site.organization_id == org_id).order_by(Site.code)
        ).all(),
        departments=db.session.scalars(
            select(Department).where(Department.organization_id == org_id).order_by(Department.name)
        ).all()
        if can_manage
        else [],
        users=db.session.scalars(select(User).where(User.organization_id == org_id).order_by(User.name)).all()
        if can_manage
        else [],
        previous=service.previous_drills(drill=drill),
        tz=tz,
        local_input=lambda v: _local_input(v, tz),
        is_overdue=lambda a: service.is_overdue(a, today),
        **_choices(),
    )


@bp.post("/drills/<int:drill_id>/edit")
@require_roles(*MANAGE)
def drill_edit(drill_id: int) -> Any:
    drill = _drill(drill_id)
    actor, actor_id = _actor()
    tz = _tz()
    form = request.form
    try:
        changes: dict[str, Any] = {}
        if form.get("section") == "failover":
            changes["alternate_site_id"] = _parse_int("alternate_site_id")
            changes["decision_change_id"] = _parse_int("decision_change_id")
        elif form.get("section") == "summary":
            changes["summary"] = form.get("summary", "")
        else:
            changes.update(
                title=form.get("title", ""),
                type=form.get("type", drill.type.value),
                scenario=form.get("scenario", drill.scenario.value),
                objectives=form.get("objectives", ""),
                planned_start_at=_parse_local("planned_start_at", tz),
                planned_end_at=_parse_local("planned_end_at", tz),
                actual_start_at=_parse_local("actual_start_at", tz),
                actual_end_at=_parse_local("actual_end_at", tz),
            )
        service.update_drill(drill=drill, actor=actor, actor_user_id=actor_id, **changes)
    except LifelineError as exc:
        _failed(exc)
    else:
        flash(gettext("Saved."), "success")
    return _back(drill_id, form.get("section", ""))


@bp.post("/drills/<int:drill_id>/state")
@require_roles(*MANAGE)
def drill_state(drill_id: int) -> Any:
    drill = _drill(drill_id)
    actor, actor_id = _actor()
    verb = request.form.get("action")
    try:
        if verb == "start":
            service.start_drill(drill=drill, actor=actor, actor_user_id=actor_id)
        elif verb == "finish":
            service.finish_drill(drill=drill, actor=actor, actor_user_id=actor_id)
        elif verb == "cancel":
            service.cancel_drill(drill=drill, actor=actor, actor_user_id=actor_id)
        else:
            abort(400)
    except LifelineError as exc:
        _failed(exc)
    return _back(drill_id)


@bp.post("/drills/<int:drill_id>/participants")
@require_roles(*MANAGE)
def participant_add(drill_id: int) -> Any:
    drill = _drill(drill_id)
    actor, actor_id = _actor()
    try:
        staff_id = None
        employee_id = request.form.get("employee_id", "").strip()
        if employee_id:
            staff = db.session.scalar(
                select(Staff).where(
                    Staff.organization_id == drill.organization_id, Staff.employee_id == employee_id
                )
            )
            if staff is None:
                raise ValidationError(gettext("No member of staff with employee id {id}.", id=employee_id))
            staff_id = staff.id
        service.add_participant(
            drill=drill,
            actor=actor,
            actor_user_id=actor_id,
            user_id=_parse_int("user_id"),
            staff_id=staff_id,
            name=request.form.get("name", ""),
            role=request.form.get("role", ""),
        )
    except LifelineError as exc:
        _failed(exc)
    return _back(drill_id, "participants")


@bp.post("/drills/<int:drill_id>/participants/<int:participant_id>/remove")
@require_roles(*MANAGE)
def participant_remove(drill_id: int, participant_id: int) -> Any:
    drill = _drill(drill_id)
    actor, actor_id = _actor()
    try:
        service.remove_participant(
            drill=drill, participant_id=participant_id, actor=actor, actor_user_id=actor_id
        )
    except LifelineError as exc:
        _failed(exc)
    return _back(drill_id, "participants")


def _record_entry(drill: Any, author: str, author_user_id: int | None, via: str) -> bool:
    try:
        service.add_entry(
            drill=drill,
            text=request.form.get("text", ""),
            kind=request.form.get("kind", EntryKind.OBSERVATION.value),
            author=author,
            author_user_id=author_user_id,
            at=_parse_local("at", ZoneInfo(_org_tz(drill.organization_id))),
            via=via,
        )
    except LifelineError as exc:
        _failed(exc)
        return False
    flash(gettext("Recorded. Thank you."), "success")
    return True


def _org_tz(organization_id: int) -> str:
    org = db.session.get(Organization, organization_id)
    return org.timezone if org and org.timezone else "Asia/Tokyo"


@bp.route("/drills/<int:drill_id>/observe", methods=["GET", "POST"])
@login_required
def drill_observe(drill_id: int) -> Any:
    """The phone page: anyone taking part (or running drills) writes down what they see, as it happens."""
    principal = current_principal()
    drill = _drill(drill_id)
    if not (principal.has(*MANAGE) or service.is_participant(drill=drill, user_id=principal.user_id)):
        abort(403)
    if request.method == "POST":
        name = current_user.name or current_user.email
        if _record_entry(drill, name, principal.user_id, "web"):
            return redirect(url_for("reports.drill_observe", drill_id=drill_id))
    return render_template(
        "reports/observe.html",
        drill=drill,
        entries=list(reversed(drill.entries))[:20],
        post_url=url_for("reports.drill_observe", drill_id=drill_id),
        ask_name=False,
        tz=ZoneInfo(_org_tz(drill.organization_id)),
        **_choices(),
    )


@bp.route("/o/<token>", methods=["GET", "POST"])
def observe_by_link(token: str) -> Any:
    """The same page for staff without a login, through the drill's observation link. Opening it records
    nothing; only the form's POST does."""
    drill = service.drill_by_observation_token(token)
    if drill is None:
        return render_template(
            "error.html", code=404, message=gettext("This observation link is not valid any more.")
        ), 404
    if request.method == "POST":
        name = request.form.get("author", "").strip()
        if not name:
            flash(gettext("Please give your name."), "error")
        elif _record_entry(drill, name, None, "link"):
            return redirect(url_for("reports.observe_by_link", token=token))
    return render_template(
        "reports/observe.html",
        drill=drill,
        entries=[],
        post_url=url_for("reports.observe_by_link", token=token),
        ask_name=True,
        author=request.form.get("author", ""),
        tz=ZoneInfo(_org_tz(drill.organization_id)),
        **_choices(),
    )


@bp.post("/drills/<int:drill_id>/entries")
@login_required
def entry_add(drill_id: int) -> Any:
    principal = current_principal()
    drill = _drill(drill_id)
    if not (principal.has(*MANAGE) or service.is_participant(drill=drill, user_id=principal.user_id)):
        abort(403)
    _record_entry(drill, current_user.name or current_user.email, principal.user_id, "web")
    return _back(drill_id, "log")


@bp.post("/drills/<int:drill_id>/link")
@require_roles(*MANAGE)
def observation_link(drill_id: int) -> Any:
    drill = _drill(drill_id)
    actor, actor_id = _actor()
    if request.form.get("action") == "revoke":
        service.revoke_observation_token(drill=drill, actor=actor, actor_user_id=actor_id)
    else:
        service.observation_token(
            drill=drill, actor=actor, actor_user_id=actor_id, renew=request.form.get("action") == "renew"
        )
    return _back(drill_id, "link")


# --- corrective actions ------------------------------------------------------------------------------------------


@bp.post("/drills/<int:drill_id>/actions")
@require_roles(*MANAGE)
def action_add(drill_id: int) -> Any:
    drill = _drill(drill_id)
    actor, actor_id = _actor()
    try:
        service.add_action(
            drill=drill,
            title=request.form.get("title", ""),
            detail=request.form.get("detail", ""),
            owner=request.form.get("owner", ""),
            owner_user_id=_parse_int("owner_user_id"),
            due_on=_parse_date("due_on"),
            entry_id=_parse_int("entry_id"),
            actor=actor,
            actor_user_id=actor_id,
        )
    except LifelineError as exc:
        _failed(exc)
    else:
        flash(gettext("Corrective action added."), "success")
    return _back(drill_id, "actions")


@bp.post("/drills/actions/<int:action_id>")
@require_roles(*MANAGE)
def action_update(action_id: int) -> Any:
    principal = current_principal()
    action = service.get_action(action_id=action_id, organization_id=principal.organization_id)
    actor, actor_id = _actor()
    try:
        service.update_action(
            action=action,
            status=request.form.get("status") or None,
            owner=request.form.get("owner") if "owner" in request.form else None,
            due_on=_parse_date("due_on") if "due_on" in request.form else service.KEEP,
            actor=actor,
            actor_user_id=actor_id,
        )
    except LifelineError as exc:
        _failed(exc)
    else:
        flash(gettext("Saved."), "success")
    back = request.form.get("back", "")
    if back.startswith("/") and not back.startswith("//"):
        return redirect(back)
    return _back(action.drill_id, "actions")


@bp.get("/drills/actions")
@require_roles(*READ)
def action_list() -> str:
    principal = current_principal()
    only_open = request.args.get("all") != "1"
    today = utcnow().astimezone(_tz()).date()
    return render_template(
        "reports/actions.html",
        actions=service.list_actions(organization_id=principal.organization_id, only_open=only_open),
        only_open=only_open,
        can_manage=principal.has(*MANAGE),
        is_overdue=lambda a: service.is_overdue(a, today),
        **_choices(),
    )


def _csv(body: bytes, filename: str) -> Response:
    return Response(
        body,
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/drills/actions.csv")
@require_roles(*READ)
def actions_csv() -> Response:
    principal = current_principal()
    rows = service.actions_rows(organization_id=principal.organization_id, language=current_language())
    return _csv(service.csv_bytes(rows), "corrective-actions.csv")


@bp.get("/drills/<int:drill_id>/metrics.csv")
@require_roles(*READ)
def drill_metrics_csv(drill_id: int) -> Response:
    drill = _drill(drill_id)
    rows = service.metrics_rows(drill=drill, language=current_language(), principal=current_principal())
    return _csv(service.csv_bytes(rows), f"drill-{drill.id}-metrics.csv")


@bp.get("/drills/<int:drill_id>/report.pdf")
@require_roles(*READ)
def drill_report_pdf(drill_id: int) -> Response:
    drill = _drill(drill_id)
    asked = request.args.get("lang", "")
    language = asked if asked in ("ja", "en") else current_language()
    body = service.report_pdf(drill=drill, language=language, principal=current_principal())
    return Response(
        body,
        mimetype="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{service.report_filename(drill, language)}"',
            "Cache-Control": "no-store",
        },
    )


# --- the linked broadcast ----------------------------------------------------------------------------------------


@bp.post("/drills/<int:drill_id>/broadcast")
@require_roles(*MANAGE)
def drill_broadcast(drill_id: int) -> Any:
    drill = _drill(drill_id)
    actor, actor_id = _actor()
    form = request.form
    try:
        if form.get("action") == "start":
            audience_kind = form.get("audience", "all")
            audience = {
                "everyone": audience_kind == "all",
                "sites": form.getlist("sites") if audience_kind == "sites" else [],
                "departments": form.getlist("departments") if audience_kind == "departments" else [],
            }
            service.start_drill_broadcast(
                drill=drill,
                template=form.get("template", ""),
                audience=audience,
                channels=form.getlist("channels") or None,
                actor=actor,
                actor_user_id=actor_id,
            )
            flash(gettext("The drill broadcast has started."), "success")
        elif form.get("action") == "unlink":
            service.link_broadcast(drill=drill, broadcast_id=None, actor=actor, actor_user_id=actor_id)
        else:
            service.link_broadcast(
                drill=drill, broadcast_id=_parse_int("broadcast_id"), actor=actor, actor_user_id=actor_id
            )
    except LifelineError as exc:
        _failed(exc)
    return _back(drill_id, "broadcast")


# --- schedule ----------------------------------------------------------------------------------------------------


@bp.route("/drills/schedule", methods=["GET", "POST"])
@require_roles(*READ)
def drill_schedule() -> Any:
    principal = current_principal()
    org_id = principal.organization_id
    can_manage = principal.has(*MANAGE)
    if request.method == "POST":
        if not can_manage:
            abort(403)
        actor, actor_id = _actor()
        rotation = [s for s in request.form.getlist("scenarios") if s]
        try:
            service.save_schedule(
                organization_id=org_id,
                enabled=bool(request.form.get("enabled")),
                drill_type=request.form.get("drill_type", DrillType.NOTIFICATION_TEST.value),
                every_months=_parse_int("every_months", 1) or 1,
                day_of_month=_parse_int("day_of_month", 15) or 15,
                start_hour=_parse_int("start_hour", 10) or 0,
                duration_minutes=_parse_int("duration_minutes", 60) or 60,
                scenarios=rotation or None,
                remind_days_before=_parse_int("remind_days_before", 7) or 0,
                actor=actor,
                actor_user_id=actor_id,
            )
        except LifelineError as exc:
            _failed(exc)
        else:
            flash(gettext("The schedule was saved."), "success")
            return redirect(url_for("reports.drill_schedule"))
    saved = service.get_schedule(organization_id=org_id)
    tz = _tz()
    preview: list[tuple[date, str]] = []
    if saved is not None and saved.enabled:
        preview = schedule.upcoming(
            service.recurrence_of(saved),
            saved.scenarios or [],
            start_index=saved.next_index,
            after=utcnow().astimezone(tz).date(),
            count=6,
        )
    rotation_slots = list(saved.scenarios) if saved else list(DEFAULT_ROTATION)
    rotation_slots += [""] * max(0, 6 - len(rotation_slots))
    return render_template(
        "reports/schedule.html",
        saved=saved,
        can_manage=can_manage,
        preview=preview,
        rotation_slots=rotation_slots,
        scenarios=list(Scenario),
        types=list(DrillType),
        **_choices(),
    )
