"""Sign-in, users and roles, API tokens, the audit log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from core import db, ratelimit
from core.auth import service
from core.auth.models import AuditEntry, Role, User
from core.directory.models import Department, Site
from core.errors import ValidationError
from core.i18n import gettext as _
from core.web import current_principal, require_roles

bp = Blueprint("auth", __name__)


@bp.get("/")
def home() -> Response:
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    if "dashboards.overview" in current_app.view_functions:
        return redirect(url_for("dashboards.overview"))
    return redirect(url_for("directory.staff_list"))


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("auth.home")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "")
        # Per address, on top of each account's own lockout: one client trying many accounts is stopped too.
        ratelimit.refuse_if_exhausted(ratelimit.LOGIN_FAILURES)
        try:
            user = service.authenticate(
                email=email, password=request.form.get("password", ""), ip=request.remote_addr
            )
        except service.LoginRefused as exc:
            error = _(str(exc))
            # Keep the failed-attempt counters even though the response is an error.
            ratelimit.note_failure(ratelimit.LOGIN_FAILURES)
            return render_template("auth/login.html", error=error, email=email), 401
        login_user(user)
        return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", error=error, email=email)


@bp.post("/logout")
@login_required
def logout() -> Response:
    logout_user()
    return redirect(url_for("auth.login"))


@bp.get("/admin/users")
@require_roles(Role.ADMIN)
def users() -> str:
    principal = current_principal()
    rows = db.session.scalars(
        select(User).where(User.organization_id == principal.organization_id).order_by(User.email)
    ).all()
    return render_template(
        "auth/users.html", users=rows, roles=list(Role), describe=service.describe_roles, **_scope_choices()
    )


def _scope_choices() -> dict[str, Any]:
    org = current_principal().organization_id
    return {
        "sites": db.session.scalars(
            select(Site).where(Site.organization_id == org).order_by(Site.code)
        ).all(),
        "departments": db.session.scalars(
            select(Department).where(Department.organization_id == org).order_by(Department.name)
        ).all(),
    }


@bp.post("/admin/users")
@require_roles(Role.ADMIN)
def create_user() -> Response:
    principal = current_principal()
    roles = [Role(r) for r in request.form.getlist("roles") if r in Role._value2member_map_]
    try:
        service.create_user(
            organization_id=principal.organization_id,
            email=request.form.get("email", ""),
            name=request.form.get("name", "").strip() or request.form.get("email", ""),
            password=request.form.get("password", ""),
            language=request.form.get("language", "ja"),
            roles=roles,
            actor=principal.label,
            actor_user_id=principal.user_id,
        )
    except ValidationError as exc:
        flash(_(str(exc)), "error")
        return redirect(url_for("auth.users"))
    flash(_("User created."), "success")
    return redirect(url_for("auth.users"))


@bp.post("/admin/users/<int:user_id>/roles")
@require_roles(Role.ADMIN)
def set_roles(user_id: int) -> Response:
    principal = current_principal()
    user = db.session.get(User, user_id)
    if user is None or user.organization_id != principal.organization_id:
        abort(404)
    org_sites = {s.id: s for s in _scope_choices()["sites"]}
    org_departments = {d.id: d for d in _scope_choices()["departments"]}
    assignments = []
    for role in Role:
        if request.form.get(f"role_{role.value}") != "on":
            continue
        sites = [
            org_sites[int(i)] for i in request.form.getlist(f"sites_{role.value}") if int(i) in org_sites
        ]
        departments = [
            org_departments[int(i)]
            for i in request.form.getlist(f"departments_{role.value}")
            if int(i) in org_departments
        ]
        assignments.append((role, sites, departments))
    service.set_roles(
        user=user, assignments=assignments, actor=principal.label, actor_user_id=principal.user_id
    )
    flash(_("Roles saved."), "success")
    return redirect(url_for("auth.users"))


@bp.get("/admin/audit")
@require_roles(Role.ADMIN)
def audit_log() -> str:
    principal = current_principal()
    action = request.args.get("action", "").strip()
    query = select(AuditEntry).where(AuditEntry.organization_id == principal.organization_id)
    if action:
        query = query.where(AuditEntry.action.startswith(action))
    entries = db.session.scalars(query.order_by(AuditEntry.id.desc()).limit(500)).all()
    return render_template("auth/audit.html", entries=entries, action=action)


@bp.route("/admin/api-tokens", methods=["GET", "POST"])
@require_roles(Role.ADMIN)
def api_tokens() -> str:
    from core.auth.models import ApiToken

    principal = current_principal()
    new_token = None
    if request.method == "POST":
        name = request.form.get("name", "").strip() or "HR sync"
        new_token = service.create_api_token(
            organization_id=principal.organization_id,
            name=name,
            actor=principal.label,
            actor_user_id=principal.user_id,
        )
    tokens = db.session.scalars(
        select(ApiToken).where(ApiToken.organization_id == principal.organization_id).order_by(ApiToken.id)
    ).all()
    return render_template("auth/api_tokens.html", tokens=tokens, new_token=new_token)
