"""Facilities screens: all sites at a glance, one site's stock, lots, settings, import and purchase lists.

Facilities (and admins) change stock for the sites in their scope; crisis managers read. A site outside the
reader's scope does not exist for them (404), as elsewhere in Lifeline.
"""

from __future__ import annotations

import base64
import binascii
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from core.auth.models import Role
from core.auth.service import Principal
from core.directory.models import Site
from core.i18n import current_language
from core.i18n import gettext as _
from core.web import current_principal, require_roles
from stockpile import importer, service
from stockpile.calculator import RateKind
from stockpile.models import StockLot

bp = Blueprint(
    "stockpile",
    __name__,
    url_prefix="/stockpile",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

READ_ROLES = (Role.FACILITIES, Role.CRISIS_MANAGER)
EDIT_ROLES = (Role.FACILITIES,)
MAX_UPLOAD = 5 * 1024 * 1024


@bp.app_template_filter("qty")
def quantity_filter(value: Decimal | int | None) -> str:
    return "" if value is None else service.format_quantity(value)


@bp.app_template_filter("percent")
def percent_filter(value: Decimal | None) -> str:
    return "" if value is None else service.format_quantity((Decimal(value) * 100).quantize(Decimal("0.1")))


def _visible_site_ids(principal: Principal) -> frozenset[int] | None:
    scope = principal.scope_ids(*READ_ROLES)
    return None if scope is None else scope[0]


def _site(code: str, *, edit: bool = False) -> Site:
    principal = current_principal()
    site = service.find_site(organization_id=principal.organization_id, code=code)
    if site is None or not principal.can_see_site(site.id, *READ_ROLES):
        abort(404)
    if edit and not principal.can_see_site(site.id, *EDIT_ROLES):
        abort(403)
    return site


def _can_edit(principal: Principal, site_id: int) -> bool:
    return principal.can_see_site(site_id, *EDIT_ROLES)


def _actor() -> dict[str, Any]:
    principal = current_principal()
    return {"actor": principal.label, "actor_user_id": principal.user_id}


def _flash_invalid(exc: service.InvalidInput) -> None:
    for text in exc.texts(_):
        flash(text, "error")


def _lang() -> str:
    return current_language()


@bp.get("")
@require_roles(*READ_ROLES)
def overview() -> str:
    principal = current_principal()
    statuses = service.statuses_for(
        organization_id=principal.organization_id, site_ids=_visible_site_ids(principal)
    )
    return render_template(
        "stockpile/overview.html",
        statuses=statuses,
        can_import=principal.has(*EDIT_ROLES),
        can_edit_catalogue=principal.is_org_wide(*EDIT_ROLES),
    )


@bp.get("/sites/<code>")
@require_roles(*READ_ROLES)
def site_detail(code: str) -> str:
    site = _site(code)
    principal = current_principal()
    status = service.site_status(site=site)
    catalogue = service.ensure_catalogue(organization_id=site.organization_id)
    return render_template(
        "stockpile/site.html",
        status=status,
        site=site,
        can_edit=_can_edit(principal, site.id),
        catalogue=catalogue,
        locations=service.locations_of(site_id=site.id),
        today=status.as_of,
    )


@bp.get("/sites/<code>/status.json")
@require_roles(*READ_ROLES)
def site_status_json(code: str) -> Response:
    site = _site(code)
    return jsonify(service.status_as_dict(service.site_status(site=site), language=_lang()))


# --- settings ---------------------------------------------------------------------------------------------------


def _int(name: str, default: int) -> int:
    raw = importer.normalize(request.form.get(name, ""))
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        return -1  # out of every allowed range: the service says what is wrong


def _percent(name: str, default: Decimal) -> Decimal:
    raw = importer.normalize(request.form.get(name, "")).rstrip("%").strip()
    if not raw:
        return default
    try:
        return Decimal(raw) / 100
    except InvalidOperation:
        return Decimal(-1)


@bp.post("/sites/<code>/settings")
@require_roles(*EDIT_ROLES)
def update_settings(code: str) -> WerkzeugResponse:
    site = _site(code, edit=True)
    current = service.settings_for(site_id=site.id)
    try:
        service.update_site_settings(
            site=site,
            visitor_ratio=_percent("visitor_percent", current.visitor_ratio),
            extra_people=_int("extra_people", current.extra_people),
            days=_int("days", current.days),
            max_location_share=_percent("max_location_percent", current.max_location_share),
            expiry_horizon_months=_int("expiry_horizon_months", current.expiry_horizon_months),
            **_actor(),
        )
    except service.InvalidInput as exc:
        _flash_invalid(exc)
        return redirect(url_for("stockpile.site_detail", code=site.code, _anchor="settings"))
    flash(_("Settings saved."), "success")
    return redirect(url_for("stockpile.site_detail", code=site.code, _anchor="settings"))


# --- lots -------------------------------------------------------------------------------------------------------


def _lot_form() -> dict[str, Any]:
    """The lot fields from the form; an unreadable date is an error, an empty one means "does not expire"."""
    expires_raw = request.form.get("expires_on", "")
    expires_on: date | None = None
    try:
        expires_on = importer.parse_date(expires_raw)
    except importer.CellError as exc:
        raise service.InvalidInput([(exc.message, exc.params)], field="expires_on") from exc
    return {
        "item_key": request.form.get("item", ""),
        "quantity": request.form.get("quantity", ""),
        "location": request.form.get("location", ""),
        "expires_on": expires_on,
        "note": request.form.get("note", ""),
    }


@bp.post("/sites/<code>/lots")
@require_roles(*EDIT_ROLES)
def add_lot(code: str) -> WerkzeugResponse:
    site = _site(code, edit=True)
    try:
        lot = service.add_lot(site=site, **_lot_form(), **_actor())
    except service.InvalidInput as exc:
        _flash_invalid(exc)
        return redirect(url_for("stockpile.site_detail", code=site.code, _anchor="add-lot"))
    flash(
        _(
            "Added {quantity} {unit} of {item}.",
            quantity=service.format_quantity(lot.quantity),
            unit=_(lot.unit),
            item=lot.item.name(_lang()),
        ),
        "success",
    )
    return redirect(url_for("stockpile.site_detail", code=site.code, _anchor="lots"))


def _lot(site: Site, lot_id: int) -> StockLot:
    lot = service.get_lot(site=site, lot_id=lot_id)
    if lot is None:
        abort(404)
    return lot


@bp.route("/sites/<code>/lots/<int:lot_id>", methods=["GET", "POST"])
@require_roles(*EDIT_ROLES)
def edit_lot(code: str, lot_id: int) -> Any:
    site = _site(code, edit=True)
    lot = _lot(site, lot_id)
    if request.method == "POST":
        try:
            service.update_lot(lot=lot, **_lot_form(), **_actor())
        except service.InvalidInput as exc:
            _flash_invalid(exc)
            return redirect(url_for("stockpile.edit_lot", code=site.code, lot_id=lot_id))
        flash(_("Lot saved."), "success")
        return redirect(url_for("stockpile.site_detail", code=site.code, _anchor="lots"))
    return render_template(
        "stockpile/lot_edit.html",
        site=site,
        lot=lot,
        catalogue=service.ensure_catalogue(organization_id=site.organization_id),
        locations=service.locations_of(site_id=site.id),
    )


@bp.post("/sites/<code>/lots/<int:lot_id>/delete")
@require_roles(*EDIT_ROLES)
def delete_lot(code: str, lot_id: int) -> WerkzeugResponse:
    site = _site(code, edit=True)
    lot = _lot(site, lot_id)
    service.delete_lot(lot=lot, **_actor())
    flash(_("Lot removed."), "success")
    return redirect(url_for("stockpile.site_detail", code=site.code, _anchor="lots"))


# --- import -----------------------------------------------------------------------------------------------------


@bp.route("/import", methods=["GET", "POST"])
@require_roles(*EDIT_ROLES)
def import_lots() -> Any:
    principal = current_principal()
    scope = principal.scope_ids(*EDIT_ROLES)
    allowed = None if scope is None else scope[0]
    sites = service.list_sites(organization_id=principal.organization_id, site_ids=allowed)
    default_site = request.values.get("site", "")
    if default_site and default_site not in {site.code for site in sites}:
        abort(404)
    if request.method == "GET":
        return render_template("stockpile/import.html", result=None, sites=sites, default_site=default_site)

    data = _uploaded_bytes()
    if data is None:
        flash(_("Choose a CSV file to import."), "error")
        return render_template(
            "stockpile/import.html", result=None, sites=sites, default_site=default_site
        ), 400
    dry_run = request.form.get("mode", "preview") != "import"
    skip_invalid = bool(request.form.get("skip_invalid"))
    result = service.import_lots(
        organization_id=principal.organization_id,
        data=data,
        allowed_site_ids=allowed,
        dry_run=dry_run,
        skip_invalid=skip_invalid,
        default_site_code=default_site,
        **_actor(),
    )
    if result.imported:
        flash(_("Imported {count} lots.", count=result.imported), "success")
        if result.problems:
            flash(_("{count} rows with problems were skipped.", count=len(result.problems)), "warning")
        # Redirect so that reloading the page cannot import the same file twice.
        if default_site:
            return redirect(url_for("stockpile.site_detail", code=default_site, _anchor="lots"))
        return redirect(url_for("stockpile.overview"))
    if not dry_run:
        flash(_("Nothing was imported."), "error")
    return render_template(
        "stockpile/import.html",
        result=result,
        sites=sites,
        default_site=default_site,
        payload=base64.b64encode(data).decode("ascii"),
    ), (200 if dry_run else 400)


def _uploaded_bytes() -> bytes | None:
    """The file from the upload, or the file carried over from the preview (so it need not be chosen twice)."""
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        data = upload.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            abort(413)
        return data
    carried = request.form.get("payload", "")
    if carried:
        try:
            return base64.b64decode(carried, validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


# --- purchase list ----------------------------------------------------------------------------------------------


def _purchase_statuses() -> tuple[list[service.SiteStatus], str]:
    principal = current_principal()
    code = request.args.get("site", "")
    if code:
        site = _site(code)
        return [service.site_status(site=site)], f"{site.code} {site.name}"
    statuses = service.statuses_for(
        organization_id=principal.organization_id, site_ids=_visible_site_ids(principal)
    )
    return statuses, _("All sites ({count})", count=len(statuses))


def _filename(statuses: list[service.SiteStatus], extension: str) -> str:
    day = statuses[0].as_of.isoformat() if statuses else ""
    scope = statuses[0].site.code if len(statuses) == 1 and request.args.get("site") else "all-sites"
    return f"purchase-list-{scope}-{day}.{extension}"


@bp.get("/purchase-list.csv")
@require_roles(*READ_ROLES)
def purchase_list_csv() -> Response:
    statuses, _scope = _purchase_statuses()
    lines = service.purchase_lines(statuses, language=_lang(), translate=_)
    body = service.purchase_list_csv(lines, language=_lang())
    return Response(
        body,
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{_filename(statuses, "csv")}"',
            "Content-Type": "text/csv; charset=utf-8",
        },
    )


@bp.get("/purchase-list.pdf")
@require_roles(*READ_ROLES)
def purchase_list_pdf() -> Response:
    statuses, scope = _purchase_statuses()
    lines = service.purchase_lines(statuses, language=_lang(), translate=_)
    body = service.purchase_list_pdf(statuses, lines, scope=scope, translate=_)
    return Response(
        body,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{_filename(statuses, "pdf")}"'},
    )


# --- catalogue --------------------------------------------------------------------------------------------------


def _optional_int(name: str) -> int | None:
    raw = importer.normalize(request.form.get(name, ""))
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        return -1


@bp.route("/catalogue", methods=["GET", "POST"])
@require_roles(*READ_ROLES)
def catalogue() -> Any:
    principal = current_principal()
    can_edit = principal.is_org_wide(*EDIT_ROLES)
    if request.method == "POST":
        if not can_edit:
            abort(403)
        try:
            service.add_item(
                organization_id=principal.organization_id,
                key=request.form.get("key", ""),
                name_ja=request.form.get("name_ja", ""),
                name_en=request.form.get("name_en", ""),
                unit=request.form.get("unit", ""),
                rate_kind=request.form.get("rate_kind", ""),
                rate=importer.normalize(request.form.get("rate", "")),
                per_n_people=_optional_int("per_n_people"),
                shelf_life_months=_optional_int("shelf_life_months"),
                **_actor(),
            )
        except service.InvalidInput as exc:
            _flash_invalid(exc)
            return redirect(url_for("stockpile.catalogue", _anchor="new-item"))
        flash(_("Item added."), "success")
        return redirect(url_for("stockpile.catalogue"))
    return render_template(
        "stockpile/catalogue.html",
        items=service.ensure_catalogue(organization_id=principal.organization_id),
        rate_kinds=list(RateKind),
        can_edit=can_edit,
    )


@bp.post("/catalogue/<int:item_id>")
@require_roles(*EDIT_ROLES)
def update_item(item_id: int) -> WerkzeugResponse:
    principal = current_principal()
    if not principal.is_org_wide(*EDIT_ROLES):
        abort(403)
    item = service.get_item(organization_id=principal.organization_id, item_id=item_id)
    if item is None:
        abort(404)
    try:
        service.update_item(
            item=item,
            name_ja=request.form.get("name_ja", ""),
            name_en=request.form.get("name_en", ""),
            unit=request.form.get("unit", ""),
            rate_kind=request.form.get("rate_kind", ""),
            rate=importer.normalize(request.form.get("rate", "")),
            per_n_people=_optional_int("per_n_people"),
            shelf_life_months=_optional_int("shelf_life_months"),
            active=bool(request.form.get("active")),
            **_actor(),
        )
    except service.InvalidInput as exc:
        _flash_invalid(exc)
        return redirect(url_for("stockpile.catalogue", _anchor=f"item-{item_id}"))
    flash(_("Item saved."), "success")
    return redirect(url_for("stockpile.catalogue", _anchor=f"item-{item_id}"))
