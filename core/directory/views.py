"""The directory screens: staff list and detail, the edit form, CSV import/export, self-service cards and the
person's own self-service page (no login: the link itself is the key)."""

from __future__ import annotations

import io
import math
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import qrcode
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response as BaseResponse

from core import db, ratelimit
from core.auth.models import Role
from core.auth.service import Principal, department_descendants
from core.directory import importer, service, uploads
from core.directory.importer import FIELDS, FileError, Mode
from core.directory.models import ContactKind, Department, Site, Staff
from core.directory.prefectures import PREFECTURES, prefecture_name
from core.errors import LifelineError, ValidationError
from core.i18n import gettext as _
from core.web import current_principal, require_roles, whole_number

bp = Blueprint("directory", __name__)

VIEW_ROLES = (Role.ADMIN, Role.CRISIS_MANAGER, Role.MANAGER)
PER_PAGE = 50
FIELD_LABELS = {
    "employee_id": "Employee ID",
    "name": "Full name",
    "name_kana": "Name (kana)",
    "department": "Department",
    "site": "Site",
    "work_phone": "Work phone",
    "work_email": "Work e-mail",
    "home_prefecture": "Home prefecture",
    "language": "Language",
    "can_work_from_home": "Can work from home",
    "manager_employee_id": "Manager (employee ID)",
}
KIND_LABELS = {
    ContactKind.WORK_PHONE: "Work phone",
    ContactKind.WORK_EMAIL: "Work e-mail",
    ContactKind.PRIVATE_PHONE: "Private phone",
    ContactKind.PRIVATE_EMAIL: "Private e-mail",
    ContactKind.FAMILY_PHONE: "Family phone",
    ContactKind.FAMILY_EMAIL: "Family e-mail",
}


@bp.record_once
def _plug_in(state: Any) -> None:
    from core.directory import init_directory

    init_directory(state.app)


@bp.app_template_filter("phone")
def _phone_filter(value: str) -> str:
    return importer.format_phone(value)


@bp.app_context_processor
def _labels() -> dict[str, Any]:
    return {"FIELD_LABELS": FIELD_LABELS, "KIND_LABELS": KIND_LABELS, "prefecture_name": prefecture_name}


def _settings() -> Any:
    return current_app.extensions["lifeline.settings"]


# --- who may see whom ---------------------------------------------------------------------------------------


def _visible(principal: Principal) -> ColumnElement[bool]:
    return (Staff.organization_id == principal.organization_id) & principal.staff_filter(*VIEW_ROLES)


def _visible_person(staff_id: int, *roles: Role) -> Staff:
    """The person, if this user may see them; 404 otherwise — a scoped user learns nothing about the rest."""
    principal = current_principal()
    person = db.session.scalar(
        select(Staff)
        .where(Staff.id == staff_id, Staff.organization_id == principal.organization_id)
        .where(principal.staff_filter(*(roles or VIEW_ROLES)))
        .options(selectinload(Staff.contacts))
    )
    if person is None:
        abort(404)
    return person


def _require_org_wide_admin() -> Principal:
    principal = current_principal()
    if not principal.is_org_wide(Role.ADMIN):
        # Imports and edits touch the whole organization; a scoped admin would change people outside the scope.
        abort(403)
    return principal


# --- list and detail ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonRow:
    """What a directory page may show about a person: work contacts, and only that private ones exist."""

    id: int
    employee_id: str
    name: str
    name_kana: str
    department: str
    site: str
    work_phone: str
    work_email: str
    can_work_from_home: bool
    hidden: bool
    private_count: int
    private_verified_at: datetime | None


def _row(person: Staff) -> PersonRow:
    registered = service.registered_contacts(person)
    verified = [c.verified_at for c in registered if c.verified_at is not None]
    work = service.work_contacts(person)
    return PersonRow(
        id=person.id,
        employee_id=person.employee_id,
        name=person.name,
        name_kana=person.name_kana,
        department=person.department.name if person.department else "",
        site=person.site.code if person.site else "",
        work_phone=work["work_phone"],
        work_email=work["work_email"],
        can_work_from_home=person.can_work_from_home,
        hidden=person.hide_from_answer_views,
        private_count=len(registered),
        private_verified_at=max(verified) if verified else None,
    )


def _katakana(text: str) -> str:
    # People search kana in hiragana; names are stored in katakana.
    return "".join(chr(ord(ch) + 0x60) if "ぁ" <= ch <= "ゖ" else ch for ch in text)


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "")
    return whole_number(value)


@bp.get("/staff")
@require_roles(*VIEW_ROLES)
def staff_list() -> str:
    principal = current_principal()
    q = unicodedata.normalize("NFKC", request.args.get("q", "")).strip()
    site_id = _int_arg("site")
    department_id = _int_arg("department")
    wfh = request.args.get("wfh", "")
    page = max(_int_arg("page") or 1, 1)

    query = select(Staff).where(_visible(principal))
    if q:
        words = q.split()
        for word in words:
            like = f"%{word}%"
            kana_like = f"%{_katakana(word)}%"
            query = query.where(
                or_(
                    Staff.name.ilike(like),
                    func.replace(Staff.name, " ", "").ilike(like),
                    Staff.name_kana.ilike(kana_like),
                    func.replace(Staff.name_kana, " ", "").ilike(kana_like),
                    Staff.employee_id.ilike(like),
                )
            )
    if site_id:
        query = query.where(Staff.site_id == site_id)
    if department_id:
        query = query.where(
            Staff.department_id.in_(department_descendants(principal.organization_id, [department_id]))
        )
    if wfh in ("yes", "no"):
        query = query.where(Staff.can_work_from_home.is_(wfh == "yes"))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(math.ceil(total / PER_PAGE), 1)
    page = min(page, pages)
    people = db.session.scalars(
        query.options(selectinload(Staff.contacts))
        .order_by(Staff.employee_id)
        .limit(PER_PAGE)
        .offset((page - 1) * PER_PAGE)
    ).all()
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template(
        "directory/staff_list.html",
        rows=[_row(p) for p in people],
        total=total,
        page=page,
        pages=pages,
        args=args,
        q=q,
        site_id=site_id,
        department_id=department_id,
        wfh=wfh,
        sites=service.sites_of(organization_id=principal.organization_id),
        departments=_department_options(principal.organization_id),
        is_admin=principal.is_org_wide(Role.ADMIN),
    )


def _department_options(organization_id: int) -> list[tuple[int, str]]:
    """Departments as an indented tree, for select boxes."""
    departments = service.departments_of(organization_id=organization_id)
    children: dict[int | None, list[Department]] = {}
    for d in departments:
        children.setdefault(d.parent_id, []).append(d)
    out: list[tuple[int, str]] = []

    def walk(parent: int | None, depth: int) -> None:
        for d in children.get(parent, []):
            out.append((d.id, "\u3000" * depth + d.name))
            walk(d.id, depth + 1)

    walk(None, 0)
    return out


@bp.get("/staff/<int:staff_id>")
@require_roles(*VIEW_ROLES)
def staff_detail(staff_id: int) -> str:
    person = _visible_person(staff_id)
    principal = current_principal()
    manager = db.session.get(Staff, person.manager_id) if person.manager_id else None
    reports = db.session.scalars(
        select(Staff).where(Staff.manager_id == person.id, _visible(principal)).order_by(Staff.employee_id)
    ).all()
    return render_template(
        "directory/staff_detail.html",
        person=person,
        row=_row(person),
        registered=service.registered_contacts(person),
        manager=manager if manager is not None and _can_see(principal, manager) else None,
        reports=reports,
        is_admin=Role.ADMIN in principal.roles,
        is_org_admin=principal.is_org_wide(Role.ADMIN),
    )


def _can_see(principal: Principal, person: Staff) -> bool:
    return (
        db.session.scalar(select(Staff.id).where(Staff.id == person.id, principal.staff_filter(*VIEW_ROLES)))
        is not None
    )


# --- edit ---------------------------------------------------------------------------------------------------


def _form_values(person: Staff | None) -> dict[str, Any]:
    if person is None:
        return {name: "" for name in FIELDS} | {"language": "ja", "can_work_from_home": False}
    manager_ids: dict[int, str] = {}
    if person.manager_id:
        manager = db.session.get(Staff, person.manager_id)
        manager_ids = {person.manager_id: manager.employee_id if manager else ""}
    return service.record_of(person, manager_ids).as_dict()


def _render_edit(
    person: Staff | None, values: dict[str, Any], errors: dict[str, str], status: int = 200
) -> Any:
    principal = current_principal()
    return render_template(
        "directory/staff_edit.html",
        person=person,
        values=values,
        errors=errors,
        hidden=person.hide_from_answer_views if person else False,
        sites=service.sites_of(organization_id=principal.organization_id),
        departments=service.departments_of(organization_id=principal.organization_id),
        prefectures=PREFECTURES,
        managers=service.manager_choices(
            organization_id=principal.organization_id, exclude=[person.id] if person else []
        ),
    ), status


@bp.route("/staff/new", methods=["GET", "POST"])
@require_roles(Role.ADMIN)
def staff_new() -> Any:
    _require_org_wide_admin()
    return _edit(None)


@bp.route("/staff/<int:staff_id>/edit", methods=["GET", "POST"])
@require_roles(Role.ADMIN)
def staff_edit(staff_id: int) -> Any:
    _require_org_wide_admin()
    return _edit(_visible_person(staff_id, Role.ADMIN))


def _edit(person: Staff | None) -> Any:
    if request.method == "GET":
        return _render_edit(person, _form_values(person), {})
    principal = current_principal()
    values = {name: request.form.get(name, "") for name in FIELDS}
    values["can_work_from_home"] = "yes" if request.form.get("can_work_from_home") else "no"
    if person is not None:
        values["employee_id"] = person.employee_id  # the key never changes through the form
    hidden = bool(request.form.get("hide_from_answer_views"))
    try:
        saved = service.save_staff(
            organization_id=principal.organization_id,
            values=values,
            hide_from_answer_views=hidden,
            creating=person is None,
            actor=principal.label,
            actor_user_id=principal.user_id,
            ip=request.remote_addr,
        )
    except service.BadRows as exc:
        errors = {e.field or "": _(e.message, **e.params) for e in exc.row_errors}
        return _render_edit(person, values, errors, 422)
    except ValidationError as exc:
        return _render_edit(person, values, {exc.field or "": _(str(exc))}, 422)
    flash(_("Saved."), "success")
    return redirect(url_for("directory.staff_detail", staff_id=saved.id))


# --- self-service cards (admin) ------------------------------------------------------------------------------


def _self_service_url(person: Staff) -> str:
    base = str(_settings().public_base_url).rstrip("/")
    return base + url_for("directory.self_service", token=person.self_service_token)


@bp.get("/staff/<int:staff_id>/self-service-card")
@require_roles(Role.ADMIN)
def self_service_card(staff_id: int) -> Any:
    person = _visible_person(staff_id, Role.ADMIN)
    response = make_response(
        render_template("directory/self_service_card.html", person=person, link=_self_service_url(person))
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/staff/<int:staff_id>/self-service-qr.png")
@require_roles(Role.ADMIN)
def self_service_qr(staff_id: int) -> Response:
    person = _visible_person(staff_id, Role.ADMIN)
    image = qrcode.make(_self_service_url(person), box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    response = Response(buffer.getvalue(), mimetype="image/png")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/staff/<int:staff_id>/self-service-link")
@require_roles(Role.ADMIN)
def regenerate_self_service_link(staff_id: int) -> BaseResponse:
    person = _visible_person(staff_id, Role.ADMIN)
    principal = current_principal()
    service.regenerate_self_service_token(
        staff=person, actor=principal.label, actor_user_id=principal.user_id, ip=request.remote_addr
    )
    flash(_("A new self-service link was made; the old one no longer works."), "success")
    return redirect(url_for("directory.self_service_card", staff_id=person.id))


# --- export and import --------------------------------------------------------------------------------------


@bp.get("/staff/export.csv")
@require_roles(Role.ADMIN)
def export_csv() -> Response:
    principal = _require_org_wide_admin()
    data = service.export_csv(organization_id=principal.organization_id)
    response = Response(data, mimetype="text/csv")
    response.headers["Content-Disposition"] = "attachment; filename=staff.csv"
    response.headers["Cache-Control"] = "no-store"
    return response


ENCODING_CHOICES = (("", "Detect automatically"), ("utf-8", "UTF-8"), ("cp932", "Shift_JIS (cp932)"))


def _mode(value: str | None) -> Mode:
    return "replace" if value == "replace" else "update"


@bp.route("/staff/import", methods=["GET", "POST"])
@require_roles(Role.ADMIN)
def import_upload() -> Any:
    principal = _require_org_wide_admin()
    if request.method == "GET":
        return render_template("directory/import_upload.html", encodings=ENCODING_CHOICES, error=None)
    file = request.files.get("file")
    data = file.read() if file is not None else b""
    if not data:
        error = _("Choose a CSV file to upload.")
        return render_template("directory/import_upload.html", encodings=ENCODING_CHOICES, error=error), 400
    encoding = request.form.get("encoding", "")
    if encoding not in dict(ENCODING_CHOICES):
        encoding = ""
    upload = uploads.save(
        _settings().instance_dir,
        data=data,
        organization_id=principal.organization_id,
        user_id=principal.user_id,
        filename=(file.filename if file is not None else "") or "upload.csv",
        encoding=encoding,
    )
    return redirect(
        url_for("directory.import_preview", upload_id=upload.id, mode=_mode(request.form.get("mode")))
    )


def _load_upload(upload_id: str) -> tuple[uploads.Upload, bytes]:
    principal = current_principal()
    try:
        return uploads.load(_settings().instance_dir, upload_id, organization_id=principal.organization_id)
    except uploads.UploadMissing:
        abort(404, description=_("This upload has expired or does not exist. Please upload the file again."))


def _render_preview(upload: uploads.Upload, data: bytes, mode: Mode, status: int = 200) -> Any:
    principal = current_principal()
    try:
        plan = service.plan_csv_import(
            organization_id=principal.organization_id,
            data=data,
            mode=mode,
            encoding=upload.encoding or None,
            region=_settings().default_region,
        )
    except FileError as exc:
        return render_template(
            "directory/import_preview.html", upload=upload, plan=None, file_error=_(exc.message, **exc.params)
        ), 422
    return render_template(
        "directory/import_preview.html",
        upload=upload,
        plan=plan,
        file_error=None,
        mode=mode,
        digest=plan.diff.digest(),
    ), status


@bp.get("/staff/import/<upload_id>")
@require_roles(Role.ADMIN)
def import_preview(upload_id: str) -> Any:
    _require_org_wide_admin()
    upload, data = _load_upload(upload_id)
    return _render_preview(upload, data, _mode(request.args.get("mode")))


@bp.post("/staff/import/<upload_id>/apply")
@require_roles(Role.ADMIN)
def import_apply(upload_id: str) -> Any:
    principal = _require_org_wide_admin()
    upload, data = _load_upload(upload_id)
    mode = _mode(request.form.get("mode"))
    skip_invalid = bool(request.form.get("skip_invalid"))
    try:
        plan = service.plan_csv_import(
            organization_id=principal.organization_id,
            data=data,
            mode=mode,
            encoding=upload.encoding or None,
            region=_settings().default_region,
        )
    except FileError:
        return _render_preview(upload, data, mode)
    if plan.diff.digest() != request.form.get("digest"):
        # Someone changed the directory since the preview: what would happen is no longer what was shown.
        flash(
            _("The directory changed since this preview. Check the new preview and apply again."), "warning"
        )
        return _render_preview(upload, data, mode, 409)
    if plan.errors and not skip_invalid:
        flash(_("Nothing was imported: fix the bad rows, or choose to skip them."), "error")
        return _render_preview(upload, data, mode, 422)
    counts = service.apply_import(
        plan=plan,
        skip_invalid=skip_invalid,
        actor=principal.label,
        actor_user_id=principal.user_id,
        source=upload.filename,
        ip=request.remote_addr,
    )
    instance_dir = _settings().instance_dir
    db.after_commit(lambda: uploads.discard(instance_dir, upload.id))
    flash(
        _(
            "Imported: {added} added, {changed} changed, {removed} removed, {bad_rows} bad rows skipped.",
            **{k: str(v) for k, v in counts.items()},
        ),
        "success",
    )
    return redirect(url_for("directory.staff_list"))


# --- the person's own page (no login) -----------------------------------------------------------------------


def _private_headers(response: BaseResponse) -> BaseResponse:
    # The URL is the key: keep it out of caches, referrers and search engines.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _self_service_person(token: str) -> Staff | None:
    ratelimit.refuse_if_exhausted(ratelimit.LINK_MISSES)
    person = service.staff_by_self_service_token(token)
    if person is None:
        ratelimit.note_failure(ratelimit.LINK_MISSES)
    elif "lang" not in request.args and "lang" not in session:
        g.language = person.language.value
    return person


def _missing_link() -> BaseResponse:
    response = make_response(render_template("directory/self_service_missing.html"), 404)
    return _private_headers(response)


def _render_self_service(person: Staff, error: str | None = None, status: int = 200) -> BaseResponse:
    site = db.session.get(Site, person.site_id) if person.site_id else None
    response = make_response(
        render_template(
            "directory/self_service.html",
            person=person,
            site=site,
            work=service.work_contacts(person),
            mine=service.masked_contacts(person, encryption_key=_settings().encryption_key),
            private_max=service.MAX_PRIVATE_CONTACTS,
            family_max=service.MAX_FAMILY_CONTACTS,
            error=error,
        ),
        status,
    )
    return _private_headers(response)


@bp.get("/me/<token>")
def self_service(token: str) -> BaseResponse:
    person = _self_service_person(token)
    if person is None:
        return _missing_link()
    return _render_self_service(person)


@bp.post("/me/<token>/contacts")
def self_service_add(token: str) -> BaseResponse:
    person = _self_service_person(token)
    if person is None:
        return _missing_link()
    group = (
        service.ContactGroup.FAMILY if request.form.get("group") == "family" else service.ContactGroup.PRIVATE
    )
    try:
        service.add_self_service_contact(
            staff=person,
            group=group,
            channel=request.form.get("channel", ""),
            value=request.form.get("value", ""),
            label=request.form.get("label", ""),
            encryption_key=_settings().encryption_key,
            region=_settings().default_region,
            ip=request.remote_addr,
        )
    except LifelineError as exc:
        return _render_self_service(person, error=_(str(exc)), status=422)
    flash(_("Saved. Thank you."), "success")
    return _private_headers(redirect(url_for("directory.self_service", token=token)))


@bp.post("/me/<token>/contacts/<int:contact_id>/remove")
def self_service_remove(token: str, contact_id: int) -> BaseResponse:
    person = _self_service_person(token)
    if person is None:
        return _missing_link()
    try:
        service.remove_self_service_contact(staff=person, contact_id=contact_id, ip=request.remote_addr)
    except LifelineError as exc:
        return _render_self_service(person, error=_(str(exc)), status=404)
    flash(_("Removed."), "success")
    return _private_headers(redirect(url_for("directory.self_service", token=token)))


@bp.post("/me/<token>/confirm")
def self_service_confirm(token: str) -> BaseResponse:
    person = _self_service_person(token)
    if person is None:
        return _missing_link()
    service.confirm_self_service_contacts(staff=person, ip=request.remote_addr)
    flash(_("Thank you: your contacts are marked as checked today."), "success")
    return _private_headers(redirect(url_for("directory.self_service", token=token)))
