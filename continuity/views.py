"""The supervisor's routing board, the "where would a call go" page, and the home agents' own pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from continuity import service
from continuity.models import CallbackRequest, InboundLine, LineKind, Voicemail
from continuity.routing import EmergencyScope, SiteState, zone
from core import db, ratelimit
from core.auth.models import Role
from core.config import Settings
from core.directory.models import Organization
from core.errors import ValidationError
from core.i18n import gettext as _
from core.time import utcnow
from core.web import current_principal, require_roles, whole_number

bp = Blueprint("continuity", __name__, template_folder="templates")
home_bp = Blueprint("home_agent", __name__, template_folder="templates")

READERS = (Role.SUPERVISOR, Role.CRISIS_MANAGER)


def _settings() -> Settings:
    settings: Settings = current_app.extensions["lifeline.settings"]
    return settings


def _back() -> Response:
    return redirect(url_for("continuity.board"))


def _failed(exc: ValidationError) -> Response:
    db.session.rollback()  # a redirect is not an error response: keep nothing half-done
    flash(_(str(exc)), "error")
    return _back()


# --- the board -----------------------------------------------------------------------------------------------


@bp.get("/continuity")
@require_roles(*READERS)
def board() -> str:
    principal = current_principal()
    data = service.board(organization_id=principal.organization_id)
    sites_by_code = {row.site.code: row.site for row in data.sites}
    settings = _settings()

    def caller(record: Voicemail | CallbackRequest) -> str:
        line = next((row.line for row in data.lines if row.line.id == record.line_id), None)
        if line is not None and service.can_change_line(principal, line, sites_by_code):
            return service.caller_number(record=record, settings=settings)
        return record.caller_masked

    return render_template(
        "continuity/board.html",
        board=data,
        states=list(SiteState),
        scopes=list(EmergencyScope),
        can_site=lambda site_id: service.can_change_site(principal, site_id),
        can_line=lambda line: service.can_change_line(principal, line, sites_by_code),
        can_any=principal.has(Role.SUPERVISOR),
        org_wide=principal.has(Role.SUPERVISOR) and principal.is_org_wide(Role.SUPERVISOR),
        caller=caller,
        customer=LineKind.CUSTOMER,
    )


@bp.get("/continuity/explain")
@require_roles(*READERS)
def explain() -> str:
    principal = current_principal()
    lines = [
        line
        for line in service.lines_of(organization_id=principal.organization_id)
        if line.kind is LineKind.CUSTOMER
    ]
    chosen_line: InboundLine | None = None
    line_id = whole_number(request.args.get("line", ""))
    if line_id is not None:
        chosen_line = service.get_line(organization_id=principal.organization_id, line_id=line_id)
    elif lines:
        chosen_line = lines[0]
    chain = []
    at_text = request.args.get("at", "")
    error = None
    if chosen_line is not None and chosen_line.plan is not None:
        tz = zone(service.plan_of_line(chosen_line).timezone)
        if at_text:
            try:
                at = datetime.fromisoformat(at_text)
            except ValueError:
                error = _("Give the time as YYYY-MM-DD HH:MM.")
                at = utcnow()
            else:
                at = at if at.tzinfo else at.replace(tzinfo=tz)
        else:
            at = utcnow()
        at_text = at.astimezone(tz).strftime("%Y-%m-%dT%H:%M")
        chain = service.explain_chain(line=chosen_line, at=at)
    return render_template(
        "continuity/explain.html", lines=lines, line=chosen_line, chain=chain, at_text=at_text, error=error
    )


# --- changes -------------------------------------------------------------------------------------------------


@bp.post("/continuity/sites/<int:site_id>/state")
@require_roles(Role.SUPERVISOR)
def set_site_state(site_id: int) -> Response:
    principal = current_principal()
    site = service.get_site(organization_id=principal.organization_id, site_id=site_id)
    state = request.form.get("state", "")
    if state not in SiteState._value2member_map_:
        abort(400)
    try:
        # One click on the board: the reason is optional there (the audit log still says who and when).
        reason = request.form.get("reason", "").strip() or _("set on the routing board")
        service.declare_site_state(site=site, state=SiteState(state), reason=reason, actor=principal)
    except ValidationError as exc:
        return _failed(exc)
    flash(_("Site {code} is now {state}.", code=site.code, state=_(state)), "success")
    return _back()


@bp.post("/continuity/sites/<int:site_id>/heartbeat")
@require_roles(Role.SUPERVISOR)
def heartbeat_settings(site_id: int) -> Response:
    principal = current_principal()
    site = service.get_site(organization_id=principal.organization_id, site_id=site_id)
    limit = request.form.get("heartbeat_limit_s", "")
    try:
        limit_s = whole_number(limit)
        if limit_s is None:
            raise ValidationError("the heartbeat limit is between 15 seconds and a day")
        service.update_heartbeat_settings(
            site=site,
            heartbeat_limit_s=limit_s,
            auto_return=request.form.get("auto_return") == "on",
            actor=principal,
        )
    except ValidationError as exc:
        return _failed(exc)
    flash(_("Heartbeat settings saved."), "success")
    return _back()


@bp.post("/continuity/sites/<int:site_id>/token")
@require_roles(Role.SUPERVISOR)
def site_token(site_id: int) -> Any:
    principal = current_principal()
    site = service.get_site(organization_id=principal.organization_id, site_id=site_id)
    token = service.generate_site_token(site=site, actor=principal)
    url = f"{_settings().public_base_url.rstrip('/')}/api/v1/sites/{site.code}/heartbeat"
    response = current_app.make_response(
        render_template("continuity/token.html", site=site, token=token, url=url)
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _line(line_id: int) -> InboundLine:
    return service.get_line(organization_id=current_principal().organization_id, line_id=line_id)


@bp.post("/continuity/lines/<int:line_id>/move")
@require_roles(Role.SUPERVISOR)
def move_line(line_id: int) -> Response:
    principal = current_principal()
    line = _line(line_id)
    plan_id = request.form.get("plan", "")
    plan = next(
        (p for p in service.plans_of(organization_id=principal.organization_id) if str(p.id) == plan_id), None
    )
    if plan is None:
        abort(400)
    try:
        service.move_line(line=line, plan=plan, reason=request.form.get("reason", ""), actor=principal)
    except ValidationError as exc:
        return _failed(exc)
    flash(_("Line {number} rerouted.", number=line.number), "success")
    return _back()


@bp.post("/continuity/lines/<int:line_id>/split")
@require_roles(Role.SUPERVISOR)
def split_line(line_id: int) -> Response:
    principal = current_principal()
    line = _line(line_id)
    try:
        shares = service.parse_split(request.form.get("split", ""))
        service.split_line(line=line, shares=shares, reason=request.form.get("reason", ""), actor=principal)
    except ValidationError as exc:
        return _failed(exc)
    flash(_("Line {number} rerouted.", number=line.number), "success")
    return _back()


@bp.post("/continuity/lines/<int:line_id>/reset")
@require_roles(Role.SUPERVISOR)
def reset_line(line_id: int) -> Response:
    principal = current_principal()
    line = _line(line_id)
    try:
        service.reset_line(line=line, reason=request.form.get("reason", ""), actor=principal)
    except ValidationError as exc:
        return _failed(exc)
    flash(_("Line {number} is back on its own plan.", number=line.number), "success")
    return _back()


@bp.post("/continuity/changes/<int:change_id>/undo")
@require_roles(Role.SUPERVISOR)
def undo(change_id: int) -> Response:
    principal = current_principal()
    service.undo_change(change_id=change_id, organization_id=principal.organization_id, actor=principal)
    flash(_("Change undone."), "success")
    return _back()


@bp.post("/continuity/emergencies")
@require_roles(Role.SUPERVISOR)
def start_emergency() -> Response:
    principal = current_principal()
    scope = request.form.get("scope", "")
    if scope not in EmergencyScope._value2member_map_:
        abort(400)
    ends_at = None
    ends_text = request.form.get("ends_at", "").strip()
    try:
        if ends_text:
            try:
                ends_at = datetime.fromisoformat(ends_text)
            except ValueError:
                raise ValidationError("Give the time as YYYY-MM-DD HH:MM.") from None
            if ends_at.tzinfo is None:  # typed on the board: the organization's own clock
                org = db.session.get(Organization, principal.organization_id)
                ends_at = ends_at.replace(tzinfo=zone(org.timezone if org else "Asia/Tokyo"))
        service.start_emergency(
            organization_id=principal.organization_id,
            scope=EmergencyScope(scope),
            announcement_ja=request.form.get("announcement_ja", ""),
            announcement_en=request.form.get("announcement_en", ""),
            recording_url=request.form.get("recording_url", "").strip() or None,
            ends_at=ends_at,
            site_code=request.form.get("site") or None,
            line_number=request.form.get("line") or None,
            reason=request.form.get("reason", ""),
            actor=principal,
        )
    except ValidationError as exc:
        return _failed(exc)
    flash(_("Emergency mode is on."), "success")
    return _back()


@bp.post("/continuity/emergencies/<int:emergency_id>/end")
@require_roles(Role.SUPERVISOR)
def end_emergency(emergency_id: int) -> Response:
    principal = current_principal()
    service.end_emergency(
        emergency_id=emergency_id, organization_id=principal.organization_id, actor=principal
    )
    flash(_("Emergency mode is off."), "success")
    return _back()


@bp.post("/continuity/agents/<int:agent_id>/availability")
@require_roles(Role.SUPERVISOR)
def agent_availability(agent_id: int) -> Response:
    principal = current_principal()
    service.set_agent_available(
        agent_id=agent_id,
        organization_id=principal.organization_id,
        available=request.form.get("available") == "1",
        actor=principal,
    )
    return _back()


@bp.post("/continuity/<any(voicemail, callback):kind>/<int:record_id>/handled")
@require_roles(Role.SUPERVISOR)
def handled(kind: str, record_id: int) -> Response:
    principal = current_principal()
    service.mark_handled(
        kind=kind, record_id=record_id, organization_id=principal.organization_id, actor=principal
    )
    flash(_("Marked as handled."), "success")
    return _back()


# --- home agents: their own pages, no login (the personal link is the key) ----------------------------------


def _home_staff(token: str) -> Any:
    ratelimit.refuse_if_exhausted(ratelimit.LINK_MISSES)
    staff = service.staff_by_token(token=token)
    if staff is None:
        ratelimit.note_failure(ratelimit.LINK_MISSES)
        abort(404)
    agent = service.home_agent_of(staff_id=staff.id)
    if agent is None and not staff.can_work_from_home:
        abort(404)
    return staff, agent


@home_bp.get("/home-agent/<token>")
def home_agent(token: str) -> Any:
    # Opening the link never changes anything (link scanners open links): only the forms do.
    staff, agent = _home_staff(token)
    number = service.own_number(home_agent=agent, settings=_settings()) if agent else None
    response = current_app.make_response(
        render_template(
            "continuity/home_agent.html",
            staff=staff,
            agent=agent,
            masked=service.mask_number(number) if number else None,
            action=url_for("home_agent.home_agent_post", token=token),
        )
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@home_bp.post("/home-agent/<token>")
def home_agent_post(token: str) -> Response:
    staff, agent = _home_staff(token)
    action = request.form.get("action", "")
    here = url_for("home_agent.home_agent", token=token)
    try:
        if action == "register":
            service.join_home_agent_pool(
                staff=staff,
                number=request.form.get("number", ""),
                pin=request.form.get("pin", "").strip() or None,
                settings=_settings(),
            )
            flash(_("Your number is registered."), "success")
        elif action in {"available", "away"} and agent is not None:
            service.set_home_agent_available(home_agent=agent, available=action == "available", via="web")
            flash(
                _("You are available: calls will ring your phone.")
                if action == "available"
                else _("You are away: calls will not ring your phone."),
                "success",
            )
        elif action == "pin" and agent is not None:
            service.set_home_agent_pin(home_agent=agent, pin=request.form.get("pin", ""))
            db.session.flush()
            flash(_("Your PIN is set."), "success")
        elif action == "leave" and agent is not None:
            service.leave_home_agent_pool(home_agent=agent)
            flash(_("You have left the home-agent pool; your number is deleted."), "success")
        else:
            abort(400)
    except ValidationError as exc:
        db.session.rollback()
        flash(_(str(exc)), "error")
    return redirect(here)


@home_bp.route("/home-agent/join/<token>", methods=["GET", "POST"])
def join(token: str) -> Any:
    ratelimit.refuse_if_exhausted(ratelimit.LINK_MISSES)
    invitation = service.invitation_by_token(token=token)
    if invitation is None:
        ratelimit.note_failure(ratelimit.LINK_MISSES)
        abort(404)
    if request.method == "POST":
        try:
            service.accept_invitation(
                token=token,
                number=request.form.get("number", ""),
                pin=request.form.get("pin", "").strip() or None,
                settings=_settings(),
            )
        except ValidationError as exc:
            db.session.rollback()
            flash(_(str(exc)), "error")
            return redirect(url_for("home_agent.join", token=token))
        flash(_("Welcome to the home-agent pool. Say when you are available."), "success")
        return redirect(url_for("home_agent.home_agent", token=invitation.staff.self_service_token))
    response = current_app.make_response(render_template("continuity/join.html", invitation=invitation))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
