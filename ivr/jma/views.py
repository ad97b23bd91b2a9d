"""The JMA page (``/jma``): feed health, held broadcasts with their countdown, recent bulletins with every decision
and why, and the organization's rules (crisis managers edit them; managers read)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from core.auth.models import Role
from core.auth.service import Principal
from core.errors import NotFound
from core.i18n import gettext as _
from core.time import utcnow
from core.web import current_principal, require_roles
from ivr.jma import service
from ivr.jma.models import FeedState, JmaRuleSet
from ivr.jma.parse import INTENSITY_SCALE
from ivr.jma.rules import MAX_AFTERSHOCK_WINDOW_HOURS, MAX_HOLD_MINUTES, RuleSet, RuleSetError

bp = Blueprint(
    "jma", __name__, template_folder="templates", static_folder="static", static_url_path="/jma/static"
)

READ = (Role.CRISIS_MANAGER, Role.MANAGER)
MANAGE = (Role.CRISIS_MANAGER,)
RULE_LISTS = ("intensity_rules", "tsunami_rules", "warning_rules")
ACTION_LABELS = {
    "start": "Started",
    "release": "Released after the hold",
    "hold": "Held",
    "widen": "Widened",
    "cancel": "Cancelled",
    "notify_only": "Crisis managers notified",
    "suppress": "Nothing sent",
    "replace": "Audience corrected",
}
STATE_LABELS = {
    "processed": "Processed",
    "claimed": "Being processed",
    "invalid": "Unreadable bulletin",
    "fetch_failed": "Download failed",
    "failed": "Processing failed",
}
SCOPE_LABELS = {
    "site_prefectures": "in a prefecture where a site is",
    "staff_home_prefectures": "in a prefecture where staff live",
    "everyone": "anywhere (to everyone)",
}
# A feed not read successfully for this long is shown as failing even before its errors pile up.
STALE_AFTER_S = 5 * 60


def _can_manage(principal: Principal) -> bool:
    # The rules and the holds concern the whole organization; a crisis manager scoped to a site may not change them.
    return principal.has(*MANAGE) and principal.is_org_wide(*MANAGE)


def _require_manager() -> Principal:
    principal = current_principal()
    if not _can_manage(principal):
        abort(403)
    return principal


def _feed_health(state: FeedState, now: datetime) -> str:
    if state.consecutive_failures >= 3:
        return "bad"
    if state.consecutive_failures or state.last_success_at is None:
        return "warn"
    if (now - state.last_success_at).total_seconds() > STALE_AFTER_S:
        return "warn"
    return "ok"


def _form_from(ruleset: RuleSet, row: JmaRuleSet | None) -> dict[str, Any]:
    document = ruleset.to_dict()
    form: dict[str, Any] = {
        "enabled": row is None or row.enabled,
        "allow_drill": document["allow_drill"],
        "hold_minutes": str(document["hold_minutes"]),
        "aftershock_window_hours": f"{document['aftershock_window_hours']:g}",
        "emergency_min_intensity": (row.emergency_min_intensity if row is not None else None) or "",
    }
    for name in RULE_LISTS:
        form[name] = json.dumps(document[name], ensure_ascii=False, indent=2)
    return form


def _broadcast_url(broadcast_id: int | None) -> str | None:
    if broadcast_id is None or "ivr.broadcast_watch" not in current_app.view_functions:
        return None
    return url_for("ivr.broadcast_watch", broadcast_id=broadcast_id)


def _render(
    form: dict[str, Any] | None = None, errors: dict[str, str] | None = None, status: int = 200
) -> Any:
    principal = current_principal()
    organization_id = principal.organization_id
    now = utcnow()
    row = service.rules_row(organization_id=organization_id)
    rules_error = None
    try:
        ruleset = service.ruleset_for(organization_id=organization_id)
    except RuleSetError as exc:
        rules_error = str(exc)
        ruleset = service.default_rules(organization_id=organization_id)
    feeds = [(state, _feed_health(state, now)) for state in service.feed_health()]
    return render_template(
        "jma/index.html",
        now=now,
        feeds=feeds,
        holds=service.waiting_holds(organization_id=organization_id),
        hold_outcomes=service.recent_hold_outcomes(organization_id=organization_id),
        bulletins=service.recent_bulletins(organization_id=organization_id),
        notifications=service.recent_notifications(organization_id=organization_id),
        ruleset=ruleset,
        rules_row=row,
        rules_error=rules_error,
        form=form or _form_from(ruleset, row),
        errors=errors or {},
        can_manage=_can_manage(principal),
        emergency_available=service.emergency_available(),
        intensities=INTENSITY_SCALE,
        max_hold=MAX_HOLD_MINUTES,
        max_window=MAX_AFTERSHOCK_WINDOW_HOURS,
        rule_lists=RULE_LISTS,
        broadcast_url=_broadcast_url,
        audience=lambda data: service.audience_from_json(data).describe(),
    ), status


@bp.context_processor
def _labels() -> dict[str, Any]:
    return {"action_labels": ACTION_LABELS, "state_labels": STATE_LABELS, "scope_labels": SCOPE_LABELS}


@bp.get("/jma")
@require_roles(*READ)
def index() -> Any:
    return _render()


def _form_field(field: str) -> str:
    """``intensity_rules[0].scope`` → the form field that holds it (``intensity_rules``)."""
    head = field.split("[", 1)[0].split(".", 1)[0]
    return head if head in (*RULE_LISTS, "hold_minutes", "aftershock_window_hours", "allow_drill",
                            "emergency_min_intensity") else "rules"  # fmt: skip


@bp.post("/jma/rules")
@require_roles(*MANAGE)
def save_rules() -> Any:
    principal = _require_manager()
    form = request.form
    errors: dict[str, str] = {}
    document: dict[str, Any] = {"version": 1, "allow_drill": form.get("allow_drill") == "on"}
    try:
        document["hold_minutes"] = int(form.get("hold_minutes", "").strip())
    except ValueError:
        errors["hold_minutes"] = _(
            "hold_minutes: must be a whole number of minutes (0-{max})", max=MAX_HOLD_MINUTES
        )
    try:
        document["aftershock_window_hours"] = float(form.get("aftershock_window_hours", "").strip())
    except ValueError:
        errors["aftershock_window_hours"] = _("aftershock_window_hours: must be a number of hours")
    for name in RULE_LISTS:
        text = form.get(name, "").strip() or "[]"
        try:
            document[name] = json.loads(text)
        except json.JSONDecodeError as exc:
            errors[name] = _(
                "{field}: not valid JSON ({problem} at line {line}, column {column})",
                field=name,
                problem=exc.msg,
                line=exc.lineno,
                column=exc.colno,
            )
    if not errors:
        try:
            service.save_rules(
                organization_id=principal.organization_id,
                document=document,
                enabled=form.get("enabled") == "on",
                emergency_min_intensity=form.get("emergency_min_intensity") or None,
                actor=principal.label,
                actor_user_id=principal.user_id,
            )
        except RuleSetError as exc:
            errors[_form_field(exc.field)] = str(exc)
    if errors:
        flash(_("The rules were not saved: {errors}", errors="; ".join(errors.values())), "error")
        submitted: dict[str, Any] = {
            key: form.get(key, "") for key in ("hold_minutes", "aftershock_window_hours", *RULE_LISTS)
        }
        submitted["enabled"] = form.get("enabled") == "on"
        submitted["allow_drill"] = form.get("allow_drill") == "on"
        submitted["emergency_min_intensity"] = form.get("emergency_min_intensity", "")
        return _render(form=submitted, errors=errors, status=400)
    flash(_("JMA rules saved."), "success")
    return redirect(url_for("jma.index") + "#rules")


@bp.post("/jma/rules/reset")
@require_roles(*MANAGE)
def reset_rules() -> BaseResponse:
    principal = _require_manager()
    row = service.rules_row(organization_id=principal.organization_id)
    service.save_rules(
        organization_id=principal.organization_id,
        document=service.default_rules(organization_id=principal.organization_id).to_dict(),
        enabled=row is None or row.enabled,
        emergency_min_intensity=row.emergency_min_intensity if row is not None else None,
        actor=principal.label,
        actor_user_id=principal.user_id,
    )
    flash(_("The default rules for your sites are back."), "success")
    return redirect(url_for("jma.index") + "#rules")


@bp.post("/jma/held/<int:held_id>/send-now")
@require_roles(*MANAGE)
def send_now(held_id: int) -> BaseResponse:
    principal = _require_manager()
    record = service.release_hold(
        held_id=held_id,
        actor=principal.label,
        actor_user_id=principal.user_id,
        organization_id=principal.organization_id,
        now=utcnow(),
    )
    if record is None:
        flash(_("That broadcast is no longer on hold (already sent or cancelled)."), "warning")
    else:
        flash(_("Sent: {outcome}", outcome=record.outcome), "success")
    return redirect(url_for("jma.index"))


@bp.post("/jma/held/<int:held_id>/cancel")
@require_roles(*MANAGE)
def cancel(held_id: int) -> BaseResponse:
    principal = _require_manager()
    record = service.cancel_hold(
        held_id=held_id,
        actor=principal.label,
        actor_user_id=principal.user_id,
        organization_id=principal.organization_id,
        reason=request.form.get("reason", ""),
        now=utcnow(),
    )
    if record is None:
        flash(_("That broadcast is no longer on hold (already sent or cancelled)."), "warning")
    else:
        flash(_("Cancelled; nobody was contacted."), "success")
    return redirect(url_for("jma.index"))


@bp.get("/jma/bulletins/<int:bulletin_id>")
@require_roles(*READ)
def bulletin(bulletin_id: int) -> Any:
    principal = current_principal()
    try:
        item = service.bulletin_with_decisions(
            bulletin_id=bulletin_id, organization_id=principal.organization_id
        )
    except NotFound:
        abort(404)
    row = item.bulletin
    return render_template(
        "jma/bulletin.html",
        row=row,
        document=json.dumps(row.document, ensure_ascii=False, indent=2) if row.document else None,
        decisions=item.decisions,
        broadcast_url=_broadcast_url,
        audience=lambda data: service.audience_from_json(data).describe(),
    )
