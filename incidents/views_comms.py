"""Crisis communication screens: partner contacts and their CSV import, notices, the care follow-up list and the
team conversations."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from flask import abort, flash, g, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse

from core.auth.models import Role
from core.directory.importer import FileError
from core.errors import LifelineError, NotFound
from core.i18n import gettext as _
from core.web import current_principal, require_roles
from incidents import care, notices, service, teams
from incidents.models import CareState, DeliveryState, PartnerKind
from incidents.web import actor, attempt, bp, form_int, form_ints, settings, user_id

MAX_CSV_BYTES = 2 * 1024 * 1024
ENCODINGS = (("", "Detect automatically"), ("utf-8", "UTF-8"), ("cp932", "Shift_JIS (Excel)"))


# --- partner contacts --------------------------------------------------------------------------------------------


@bp.get("/partners")
@require_roles(*notices.VIEW_ROLES)
def partners() -> str:
    principal = current_principal()
    return render_template(
        "incidents/partners.html",
        contacts=notices.list_partners(organization_id=principal.organization_id),
        can_edit=principal.has(*notices.SEND_ROLES),
        encodings=ENCODINGS,
        kinds=list(PartnerKind),
        values={},
    )


@bp.post("/partners")
@require_roles(*notices.SEND_ROLES)
def partner_add() -> BaseResponse:
    principal = current_principal()
    return attempt(
        lambda: notices.save_partner(
            organization_id=principal.organization_id,
            values=request.form.to_dict(),
            region=settings().default_region,
            actor=actor(),
            actor_user_id=user_id(),
        ),
        done="Saved.",
        back=url_for("incidents.partners"),
    )


@bp.post("/partners/<int:partner_id>/remove")
@require_roles(*notices.SEND_ROLES)
def partner_remove(partner_id: int) -> BaseResponse:
    principal = current_principal()
    return attempt(
        lambda: notices.deactivate_partner(
            organization_id=principal.organization_id,
            partner_id=partner_id,
            actor=actor(),
            actor_user_id=user_id(),
        ),
        done="Removed.",
        back=url_for("incidents.partners"),
    )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@bp.post("/partners/import")
@require_roles(*notices.SEND_ROLES)
def partner_import_preview() -> Any:
    """The dry run: shows what the list would change and every bad line; changes nothing."""
    principal = current_principal()
    file = request.files.get("file")
    data = file.read(MAX_CSV_BYTES + 1) if file else b""
    encoding = request.form.get("encoding", "")
    error = None
    if not data:
        error = _("Choose a CSV file.")
    elif len(data) > MAX_CSV_BYTES:
        error = _("The file is larger than 2 MB.")
    plan = None
    if error is None:
        try:
            plan = notices.plan_partner_import(
                organization_id=principal.organization_id,
                data=data,
                encoding=encoding or None,
                region=settings().default_region,
            )
        except FileError as exc:
            error = _(exc.message, **exc.params)
    if plan is None:
        flash(error or _("The file cannot be read."), "error")
        return redirect(url_for("incidents.partners"))
    return render_template(
        "incidents/partners_preview.html",
        plan=plan,
        filename=file.filename if file else "",
        data=base64.b64encode(data).decode("ascii"),
        digest=_digest(data),
        encoding=encoding,
    )


@bp.post("/partners/import/apply")
@require_roles(*notices.SEND_ROLES)
def partner_import_apply() -> BaseResponse:
    principal = current_principal()
    try:
        data = base64.b64decode(request.form.get("data", ""), validate=True)
    except (binascii.Error, ValueError):
        abort(400)
    if not data or len(data) > MAX_CSV_BYTES or _digest(data) != request.form.get("digest"):
        abort(400)
    encoding = request.form.get("encoding") or None
    try:
        plan = notices.apply_partner_import(
            organization_id=principal.organization_id,
            data=data,
            encoding=encoding,
            region=settings().default_region,
            actor=actor(),
            actor_user_id=user_id(),
        )
    except FileError as exc:
        g.rollback_only = True
        flash(_(exc.message, **exc.params), "error")
        return redirect(url_for("incidents.partners"))
    except notices.BadPartnerRows as exc:
        g.rollback_only = True
        flash(_("{count} bad rows; nothing was changed", count=exc.plan.counts["bad_lines"]), "error")
        return redirect(url_for("incidents.partners"))
    counts = plan.counts
    flash(
        _("Imported: {added} added, {updated} updated.", added=counts["added"], updated=counts["updated"]),
        "success",
    )
    return redirect(url_for("incidents.partners"))


# --- notices -----------------------------------------------------------------------------------------------------


@bp.get("/notices")
@require_roles(*notices.VIEW_ROLES)
def notices_list() -> str:
    principal = current_principal()
    return render_template(
        "incidents/notices.html",
        rows=notices.list_notices(organization_id=principal.organization_id),
        can_send=principal.has(*notices.SEND_ROLES),
    )


@bp.route("/notices/new", methods=["GET", "POST"])
@require_roles(*notices.SEND_ROLES)
def notice_new() -> Any:
    principal = current_principal()
    open_incidents = service.open_incidents(organization_id=principal.organization_id)
    values: dict[str, Any]
    if request.method == "GET":
        values = {"channels": ["sms", "email"], "kinds": ["customer", "partner"]}
        if request.args.get("incident", "").isdigit():
            values["incident_id"] = int(request.args["incident"])
        return render_template(
            "incidents/notice_new.html", incidents=open_incidents, values=values, error=None
        )
    values = dict(request.form.items())
    values["channels"] = request.form.getlist("channels")
    values["kinds"] = request.form.getlist("kinds")
    incident_id = form_int("incident_id")
    if incident_id is not None and incident_id not in {i.id for i in open_incidents}:
        incident_id = None
    try:
        notice = notices.send_partner_notice(
            organization_id=principal.organization_id,
            subject_ja=request.form.get("subject_ja", ""),
            subject_en=request.form.get("subject_en", ""),
            body_ja=request.form.get("body_ja", ""),
            body_en=request.form.get("body_en", ""),
            channels=values["channels"],
            kinds=values["kinds"],
            incident_id=incident_id,
            actor=actor(),
            actor_user_id=user_id(),
        )
    except LifelineError as exc:
        g.rollback_only = True
        return (
            render_template(
                "incidents/notice_new.html", incidents=open_incidents, values=values, error=_(str(exc))
            ),
            422,
        )
    flash(_("The notice is on its way."), "success")
    return redirect(url_for("incidents.notice_detail", notice_id=notice.id))


@bp.get("/notices/<int:notice_id>")
@require_roles(*notices.VIEW_ROLES)
def notice_detail(notice_id: int) -> str:
    principal = current_principal()
    try:
        notice = notices.get_notice(organization_id=principal.organization_id, notice_id=notice_id)
    except NotFound:
        abort(404)
    rows = notices.deliveries(notice_id=notice.id)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state.value] = counts.get(row.state.value, 0) + 1
    return render_template(
        "incidents/notice_detail.html",
        notice=notice,
        rows=rows,
        counts=counts,
        states=list(DeliveryState),
        can_send=principal.has(*notices.SEND_ROLES),
    )


@bp.post("/notices/<int:notice_id>/retry")
@require_roles(*notices.SEND_ROLES)
def notice_retry(notice_id: int) -> BaseResponse:
    principal = current_principal()
    try:
        notice = notices.get_notice(organization_id=principal.organization_id, notice_id=notice_id)
    except NotFound:
        abort(404)
    return attempt(
        lambda: notices.requeue_failed(notice=notice, actor=actor(), actor_user_id=user_id()),
        done="Failed messages queued again.",
        back=url_for("incidents.notice_detail", notice_id=notice.id),
    )


# --- care follow-up ----------------------------------------------------------------------------------------------


@bp.get("/care")
@require_roles(*care.CARE_ROLES)
def care_list() -> str:
    principal = current_principal()
    show_closed = request.args.get("closed") == "1"
    states = tuple(CareState) if show_closed else (CareState.OPEN, CareState.CONTACTED)
    return render_template(
        "incidents/care.html",
        cases=care.list_cases(principal=principal, states=states),
        users=service.org_users(organization_id=principal.organization_id),
        show_closed=show_closed,
        states=list(CareState),
    )


@bp.post("/care/<int:case_id>")
@require_roles(*care.CARE_ROLES)
def care_update(case_id: int) -> BaseResponse:
    principal = current_principal()
    try:
        case = care.get_case(principal=principal, case_id=case_id)
    except NotFound:
        abort(404)
    kwargs: dict[str, Any] = {}
    if request.form.get("state"):
        kwargs["state"] = request.form["state"]
    if request.form.get("take"):
        kwargs["owner_user_id"] = user_id()
    elif "owner" in request.form:
        kwargs["owner_user_id"] = form_int("owner")
    return attempt(
        lambda: care.update_case(
            case=case, principal=principal, actor=actor(), note=request.form.get("note", ""), **kwargs
        ),
        done="Saved.",
        back=url_for("incidents.care_list") + f"#case-{case.id}",
    )


# --- team conversations ------------------------------------------------------------------------------------------

TEAM_ROLES = tuple(Role)


@bp.get("/groups")
@require_roles(*TEAM_ROLES)
def groups() -> str:
    principal = current_principal()
    is_admin = Role.ADMIN in principal.roles
    return render_template(
        "incidents/groups.html",
        mine=teams.groups_of(user_id=user_id()),
        unread=teams.unread_counts(user_id=user_id()),
        all_groups=teams.all_groups(organization_id=principal.organization_id) if is_admin else [],
        users=service.org_users(organization_id=principal.organization_id) if is_admin else [],
        is_admin=is_admin,
    )


@bp.post("/groups")
@require_roles(Role.ADMIN)
def group_save() -> BaseResponse:
    principal = current_principal()
    return attempt(
        lambda: teams.save_group(
            organization_id=principal.organization_id,
            name=request.form.get("name", ""),
            member_ids=form_ints("members"),
            group_id=form_int("group_id"),
            actor=actor(),
            actor_user_id=user_id(),
        ),
        done="Saved.",
        back=url_for("incidents.groups"),
    )


def _group(group_id: int) -> Any:
    principal = current_principal()
    try:
        group = teams.get_group(organization_id=principal.organization_id, group_id=group_id)
        teams.membership(group, principal.user_id)
    except NotFound:
        abort(404)
    except LifelineError:
        abort(403)
    return group


def _message_json(message: Any, reads: dict[int, teams.ReadState]) -> dict[str, Any]:
    state = reads.get(message.id)
    return {
        "id": message.id,
        "author": message.author_name,
        "mine": message.user_id == user_id(),
        "body": message.body,
        "at": message.created_at.isoformat(),
        "read_by": list(state.read_by) if state else [],
        "unread_by": list(state.unread_by) if state else [],
    }


@bp.get("/groups/<int:group_id>")
@require_roles(*TEAM_ROLES)
def group_view(group_id: int) -> str:
    group = _group(group_id)
    items = teams.messages(group=group)
    if items:
        teams.mark_read(group=group, user_id=user_id(), up_to=items[-1].id)
    return render_template(
        "incidents/group.html",
        group=group,
        items=items,
        reads=teams.read_states(group, items),
        last_id=items[-1].id if items else 0,
    )


@bp.post("/groups/<int:group_id>/messages")
@require_roles(*TEAM_ROLES)
def group_post(group_id: int) -> BaseResponse:
    group = _group(group_id)
    return attempt(
        lambda: teams.post_message(group=group, user=current_user, body=request.form.get("body", "")),
        done="",
        back=url_for("incidents.group_view", group_id=group.id) + "#compose",
    )


@bp.get("/groups/<int:group_id>/poll")
@require_roles(*TEAM_ROLES)
def group_poll(group_id: int) -> Any:
    """What changed since ``after``: new messages, and the read marks of the recent ones (for the script)."""
    group = _group(group_id)
    after = request.args.get("after", "0")
    after_id = int(after) if after.isdigit() else 0
    fresh = teams.messages(group=group, after_id=after_id)
    recent = teams.messages(group=group, limit=30)
    reads = teams.read_states(group, {m.id: m for m in [*recent, *fresh]}.values())
    response = jsonify(
        messages=[_message_json(m, reads) for m in fresh],
        reads={
            str(k): {"read_by": list(v.read_by), "unread_by": list(v.unread_by)} for k, v in reads.items()
        },
        last_id=fresh[-1].id if fresh else after_id,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/groups/<int:group_id>/read")
@require_roles(*TEAM_ROLES)
def group_read(group_id: int) -> Any:
    group = _group(group_id)
    up_to = request.form.get("up_to", "0")
    teams.mark_read(group=group, user_id=user_id(), up_to=int(up_to) if up_to.isdigit() else 0)
    return ("", 204)
