"""Directory use-cases: staff imports (CSV, API, the edit form), exports and the self-service contact page.

Every change flushes and is audited; the edge (request, CLI) commits. Private and family contact values are
encrypted here and leave this module only on their owner's self-service page (masked) or through
:func:`reachable_contacts` for the senders of safety calls — never in an audit entry, export or log line.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from core import crypto, db
from core.auth.service import audit
from core.directory import importer
from core.directory.importer import ImportDiff, Mode, RawRow, RowError, StaffRecord
from core.directory.models import (
    ContactKind,
    ContactPoint,
    Department,
    Language,
    Organization,
    Site,
    Staff,
    new_token,
)
from core.errors import LifelineError, NotFound, ValidationError
from core.time import utcnow

MAX_PRIVATE_CONTACTS = 3
MAX_FAMILY_CONTACTS = 3
_PRIVATE_KINDS = (ContactKind.PRIVATE_PHONE, ContactKind.PRIVATE_EMAIL)
_FAMILY_KINDS = (ContactKind.FAMILY_PHONE, ContactKind.FAMILY_EMAIL)
# Order in which a safety call tries a person: work first, then what they registered themselves.
_POSITION_BASE = {
    ContactKind.WORK_PHONE: 0,
    ContactKind.WORK_EMAIL: 1,
    ContactKind.PRIVATE_PHONE: 10,
    ContactKind.PRIVATE_EMAIL: 10,
    ContactKind.FAMILY_PHONE: 20,
    ContactKind.FAMILY_EMAIL: 20,
}


class BadRows(LifelineError):
    """Some rows are bad and the caller did not ask to skip them: nothing was changed."""

    status_code = 422

    def __init__(self, errors: Sequence[RowError]) -> None:
        lines = len({e.line for e in errors})
        super().__init__(f"{lines} bad rows; nothing was changed")
        self.row_errors = list(errors)
        self.errors = [e.text for e in errors]


def organization_for(*, slug: str | None) -> Organization:
    """The named organization, or the only one there is (what a single-company installation has)."""
    query = select(Organization).order_by(Organization.id)
    if slug:
        query = query.where(Organization.slug == slug)
    orgs = db.session.scalars(query).all()
    if not orgs:
        raise NotFound(
            f"no organization with slug {slug!r}" if slug else "no organization yet: run `lifeline demo-data`"
        )
    if len(orgs) > 1:
        raise ValidationError("several organizations: choose one with --organization", field="organization")
    return orgs[0]


def sites_of(*, organization_id: int) -> list[Site]:
    return list(
        db.session.scalars(select(Site).where(Site.organization_id == organization_id).order_by(Site.code))
    )


def departments_of(*, organization_id: int) -> list[Department]:
    return list(
        db.session.scalars(
            select(Department).where(Department.organization_id == organization_id).order_by(Department.name)
        )
    )


# --- records ------------------------------------------------------------------------------------------------


def _work_value(staff: Staff, kind: ContactKind) -> str:
    for contact in staff.contacts:
        if contact.kind == kind:
            return contact.value or ""
    return ""


def _staff_query(organization_id: int) -> Any:
    return (
        select(Staff)
        .where(Staff.organization_id == organization_id)
        .options(selectinload(Staff.contacts))
        .order_by(Staff.employee_id)
    )


def record_of(staff: Staff, employee_ids: dict[int, str]) -> StaffRecord:
    """The person as an import/export row; ``employee_ids`` maps staff ids to employee ids (for the manager)."""
    return StaffRecord(
        employee_id=staff.employee_id,
        name=staff.name,
        name_kana=staff.name_kana,
        department=staff.department.name if staff.department else "",
        site=staff.site.code if staff.site else "",
        work_phone=_work_value(staff, ContactKind.WORK_PHONE),
        work_email=_work_value(staff, ContactKind.WORK_EMAIL),
        home_prefecture=staff.home_prefecture,
        language=staff.language.value,
        can_work_from_home=staff.can_work_from_home,
        manager_employee_id=employee_ids.get(staff.manager_id, "") if staff.manager_id else "",
    )


def staff_records(*, organization_id: int) -> dict[str, StaffRecord]:
    people = db.session.scalars(_staff_query(organization_id)).all()
    employee_ids = {p.id: p.employee_id for p in people}
    return {p.employee_id: record_of(p, employee_ids) for p in people}


def export_csv(*, organization_id: int) -> bytes:
    return importer.write_staff_csv(staff_records(organization_id=organization_id).values())


# --- import -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportPlan:
    """What an import would do, computed against the directory as it is now."""

    organization_id: int
    mode: Mode
    records: tuple[StaffRecord, ...]
    errors: tuple[RowError, ...]
    diff: ImportDiff
    encoding: str = ""
    rows_read: int = 0

    @property
    def bad_lines(self) -> list[int]:
        return sorted({e.line for e in self.errors})

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.diff.as_dict(),
            "rows_read": self.rows_read,
            "bad_rows": len(self.bad_lines),
            "errors": [e.as_dict() for e in self.errors],
        }


def plan_rows(
    *,
    organization_id: int,
    rows: Sequence[RawRow],
    mode: Mode,
    region: str = "JP",
    errors: Iterable[RowError] = (),
    encoding: str = "",
) -> ImportPlan:
    if mode not in importer.MODES:
        raise ValidationError(f"mode must be update or replace, not {mode!r}", field="mode")
    current = staff_records(organization_id=organization_id)
    mentioned = {importer.clean_id(r.values.get("employee_id", "")) for r in rows}
    # In replace mode only people named in the file (even on a bad row) stay; a manager must be one of them.
    known = set(current) if mode == "update" else set(current) & mentioned
    records, all_errors = importer.validate_rows(
        rows,
        site_codes=[s.code for s in sites_of(organization_id=organization_id)],
        known_employee_ids=known,
        region=region,
        errors=errors,
    )
    diff = importer.diff_staff(
        records,
        current,
        mode=mode,
        existing_departments=[d.name for d in departments_of(organization_id=organization_id)],
        keep_employee_ids=mentioned - {""},
    )
    return ImportPlan(
        organization_id=organization_id,
        mode=mode,
        records=tuple(records),
        errors=tuple(all_errors),
        diff=diff,
        encoding=encoding,
        rows_read=len(rows),
    )


def plan_csv_import(
    *, organization_id: int, data: bytes, mode: Mode, encoding: str | None = None, region: str = "JP"
) -> ImportPlan:
    """Raises :class:`core.directory.importer.FileError` when the file itself is unusable."""
    text, used = importer.decode(data, encoding)
    _columns, rows, row_errors = importer.read_csv_rows(text)
    return plan_rows(
        organization_id=organization_id, rows=rows, mode=mode, region=region, errors=row_errors, encoding=used
    )


def apply_import(
    *,
    plan: ImportPlan,
    skip_invalid: bool,
    actor: str,
    source: str,
    actor_user_id: int | None = None,
    ip: str | None = None,
    action: str = "staff.import",
) -> dict[str, int]:
    """Apply a plan in the current transaction. Bad rows refuse everything unless ``skip_invalid``."""
    if plan.errors and not skip_invalid:
        raise BadRows(plan.errors)
    org_id = plan.organization_id
    diff = plan.diff
    departments = {d.name: d for d in departments_of(organization_id=org_id)}
    for name in diff.departments_to_create:
        department = Department(organization_id=org_id, name=name)
        db.session.add(department)
        departments[name] = department
    sites = {s.code: s for s in sites_of(organization_id=org_id)}
    people = {p.employee_id: p for p in db.session.scalars(_staff_query(org_id))}
    db.session.flush()

    manager_links: list[tuple[Staff, str]] = []
    for record in diff.added:
        person = Staff(organization_id=org_id, employee_id=record.employee_id, name=record.name)
        for name in record.provided - {"employee_id", "name", "manager_employee_id"}:
            _set_field(person, name, record.get(name), sites=sites, departments=departments)
        db.session.add(person)
        people[record.employee_id] = person
        if record.manager_employee_id:
            manager_links.append((person, record.manager_employee_id))
    for change in diff.changed:
        person = people[change.employee_id]
        for fc in change.changes:
            if fc.field == "manager_employee_id":
                manager_links.append((person, str(fc.after)))
            else:
                _set_field(person, fc.field, fc.after, sites=sites, departments=departments)
        # Set by hand: a changed work contact lives in another table and would not bump it, and the HR
        # sync's updated_since relies on it.
        person.updated_at = utcnow()
    db.session.flush()
    for person, manager_employee_id in manager_links:
        person.manager_id = people[manager_employee_id].id if manager_employee_id else None

    removed_ids = {people[r.employee_id].id for r in diff.removed}
    for subordinate in people.values():
        if subordinate.manager_id in removed_ids:
            subordinate.manager_id = None
            subordinate.updated_at = utcnow()
    for removal in diff.removed:
        db.session.delete(people.pop(removal.employee_id))
        audit(
            action="staff.remove",
            organization_id=org_id,
            actor=actor,
            actor_user_id=actor_user_id,
            target_type="staff",
            target_id=removal.employee_id,
            summary=f"{removal.employee_id} {removal.name} removed by a {diff.mode}-mode import from {source}",
            ip=ip,
        )
    db.session.flush()
    counts = {**diff.counts, "bad_rows": len(plan.bad_lines)}
    audit(
        action=action,
        organization_id=org_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="import",
        target_id=source[:80],
        summary=(
            f"staff import from {source} ({diff.mode}): {counts['added']} added, {counts['changed']} changed, "
            f"{counts['removed']} removed, {counts['bad_rows']} bad rows skipped"
        ),
        # Field names only: the values are HR data the audit log need not copy.
        detail={
            "source": source,
            "mode": diff.mode,
            "counts": counts,
            "changed_fields": sorted({f.field for c in diff.changed for f in c.changes}),
            "skipped_lines": plan.bad_lines,
        },
        ip=ip,
    )
    return counts


def _set_field(
    person: Staff,
    name: str,
    value: str | bool,
    *,
    sites: dict[str, Site],
    departments: dict[str, Department],
) -> None:
    if name == "work_phone":
        _set_work_contact(person, ContactKind.WORK_PHONE, str(value))
    elif name == "work_email":
        _set_work_contact(person, ContactKind.WORK_EMAIL, str(value))
    elif name == "site":
        person.site = sites[str(value)] if value else None
    elif name == "department":
        person.department = departments[str(value)] if value else None
    elif name == "language":
        person.language = Language(str(value))
    elif name == "can_work_from_home":
        person.can_work_from_home = bool(value)
    elif name in ("name", "name_kana", "home_prefecture"):
        setattr(person, name, str(value))
    else:  # pragma: no cover - importer.FIELDS and this function move together
        raise KeyError(name)


def _set_work_contact(person: Staff, kind: ContactKind, value: str) -> None:
    existing = next((c for c in person.contacts if c.kind == kind), None)
    if not value:
        if existing is not None:
            person.contacts.remove(existing)
        return
    if existing is None:
        person.contacts.append(ContactPoint(kind=kind, value=value, position=_POSITION_BASE[kind]))
    elif existing.value != value:
        existing.value = value
        existing.verified_at = None
        existing.last_check_status = None


def save_staff(
    *,
    organization_id: int,
    values: dict[str, str],
    hide_from_answer_views: bool,
    creating: bool,
    actor: str,
    actor_user_id: int | None,
    ip: str | None = None,
) -> Staff:
    """Create or change one person from the edit form, with exactly the checks a CSV row gets."""
    employee_id = importer.clean_id(values.get("employee_id", ""))
    exists = employee_id != "" and (
        db.session.scalar(
            select(Staff.id).where(Staff.organization_id == organization_id, Staff.employee_id == employee_id)
        )
        is not None
    )
    if creating and exists:
        raise ValidationError("This employee id is already in the directory.", field="employee_id")
    if not creating and not exists:
        raise NotFound("This person is not in the directory.")
    plan = plan_rows(organization_id=organization_id, rows=[RawRow(number=1, values=values)], mode="update")
    if plan.errors:
        raise BadRows(plan.errors)
    record = plan.records[0]
    if not plan.diff.is_empty:
        apply_import(
            plan=plan,
            skip_invalid=False,
            actor=actor,
            actor_user_id=actor_user_id,
            source="edit form",
            ip=ip,
            action="staff.edit",
        )
    person = db.session.scalar(
        select(Staff).where(Staff.organization_id == organization_id, Staff.employee_id == record.employee_id)
    )
    assert person is not None
    if person.hide_from_answer_views != hide_from_answer_views:
        person.hide_from_answer_views = hide_from_answer_views
        person.updated_at = utcnow()
        audit(
            action="staff.edit",
            organization_id=organization_id,
            actor=actor,
            actor_user_id=actor_user_id,
            target_type="staff",
            target_id=person.employee_id,
            summary=f"{person.employee_id}: hidden from answer views = {hide_from_answer_views}",
            ip=ip,
        )
    db.session.flush()
    return person


# --- contact points and the self-service page ---------------------------------------------------------------


class ContactGroup(enum.StrEnum):
    PRIVATE = "private"
    FAMILY = "family"


@dataclass(frozen=True)
class RegisteredContact:
    """What anyone but the owner may know about a private or family contact: that it exists, and since when."""

    kind: ContactKind
    verified_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class MaskedContact:
    """A private or family contact as its owner sees it on the self-service page."""

    id: int
    kind: ContactKind
    masked: str
    label: str
    verified_at: datetime | None


def registered_contacts(staff: Staff) -> list[RegisteredContact]:
    return [
        RegisteredContact(kind=c.kind, verified_at=c.verified_at, created_at=c.created_at)
        for c in staff.contacts
        if c.kind.is_private
    ]


def work_contacts(staff: Staff) -> dict[str, str]:
    return {
        "work_phone": _work_value(staff, ContactKind.WORK_PHONE),
        "work_email": _work_value(staff, ContactKind.WORK_EMAIL),
    }


def mask_phone(e164: str) -> str:
    return "•" * max(len(e164) - 3, 4) + e164[-2:]


def mask_email(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}•••@{domain}"


def masked_contacts(staff: Staff, *, encryption_key: str) -> list[MaskedContact]:
    out = []
    for c in staff.contacts:
        if not c.kind.is_private or c.value_encrypted is None:
            continue
        value = crypto.decrypt(c.value_encrypted, encryption_key)
        out.append(
            MaskedContact(
                id=c.id,
                kind=c.kind,
                masked=mask_phone(value) if c.kind.is_phone else mask_email(value),
                label=c.label,
                verified_at=c.verified_at,
            )
        )
    return out


def reachable_contacts(*, staff: Staff, encryption_key: str) -> list[tuple[ContactKind, str]]:
    """Every way to reach a person, in the order a safety call should try them (values decrypted).

    For the senders of safety calls only: the result must go to the carrier, never to a page or a log.
    """
    out: list[tuple[ContactKind, str]] = []
    for c in sorted(staff.contacts, key=lambda c: (c.position, c.id or 0)):
        if c.kind.is_private:
            if c.value_encrypted is not None:
                out.append((c.kind, crypto.decrypt(c.value_encrypted, encryption_key)))
        elif c.value:
            out.append((c.kind, c.value))
    return out


def staff_by_self_service_token(token: str) -> Staff | None:
    if not token or len(token) > 64:
        return None
    return db.session.scalar(
        select(Staff).where(Staff.self_service_token == token).options(selectinload(Staff.contacts))
    )


def _self_actor(staff: Staff) -> str:
    return f"self-service:{staff.employee_id}"


def add_self_service_contact(
    *,
    staff: Staff,
    group: ContactGroup,
    channel: str,
    value: str,
    label: str = "",
    encryption_key: str,
    region: str = "JP",
    ip: str | None = None,
) -> ContactPoint:
    """The person adds a private or family phone/e-mail. Entered by the person themself through their own
    link, so it counts as verified now."""
    if channel == "phone":
        kind = ContactKind.PRIVATE_PHONE if group == ContactGroup.PRIVATE else ContactKind.FAMILY_PHONE
        try:
            normalised = importer.normalise_phone(value, region)
        except ValueError:
            raise ValidationError("This is not a phone number.", field="value") from None
    elif channel == "email":
        kind = ContactKind.PRIVATE_EMAIL if group == ContactGroup.PRIVATE else ContactKind.FAMILY_EMAIL
        try:
            normalised = importer.normalise_email(value)
        except ValueError:
            raise ValidationError("This is not an e-mail address.", field="value") from None
    else:
        raise ValidationError("Choose phone or e-mail.", field="channel")
    kinds = _PRIVATE_KINDS if group == ContactGroup.PRIVATE else _FAMILY_KINDS
    limit = MAX_PRIVATE_CONTACTS if group == ContactGroup.PRIVATE else MAX_FAMILY_CONTACTS
    same_group = [c for c in staff.contacts if c.kind in kinds]
    if len(same_group) >= limit:
        raise ValidationError(
            "You can register at most 3 private contacts."
            if group == ContactGroup.PRIVATE
            else "You can register at most 3 family contacts.",
            field="value",
        )
    for c in same_group:
        if c.value_encrypted is not None and crypto.decrypt(c.value_encrypted, encryption_key) == normalised:
            raise ValidationError("This contact is already registered.", field="value")
    now = utcnow()
    contact = ContactPoint(
        kind=kind,
        position=_POSITION_BASE[kind] + len(same_group),
        value=None,
        value_encrypted=crypto.encrypt(normalised, encryption_key),
        label=label.strip()[:60],
        verified_at=now,
        created_at=now,
    )
    staff.contacts.append(contact)
    # The HR sync's updated_since also reports a change in how many private contacts someone has.
    staff.updated_at = now
    db.session.flush()
    audit(
        action="contact.add",
        organization_id=staff.organization_id,
        actor=_self_actor(staff),
        target_type="staff",
        target_id=staff.employee_id,
        summary=f"{kind.value.replace('_', ' ')} registered by {staff.employee_id} through self-service",
        detail={"kind": kind.value, "contact_id": contact.id},
        ip=ip,
    )
    return contact


def remove_self_service_contact(*, staff: Staff, contact_id: int, ip: str | None = None) -> None:
    contact = next((c for c in staff.contacts if c.id == contact_id and c.kind.is_private), None)
    if contact is None:
        raise NotFound("This contact does not exist (any more).")
    staff.contacts.remove(contact)
    _renumber(staff)
    staff.updated_at = utcnow()
    db.session.flush()
    audit(
        action="contact.remove",
        organization_id=staff.organization_id,
        actor=_self_actor(staff),
        target_type="staff",
        target_id=staff.employee_id,
        summary=f"{contact.kind.value.replace('_', ' ')} removed by {staff.employee_id} through self-service",
        detail={"kind": contact.kind.value, "contact_id": contact_id},
        ip=ip,
    )


def _renumber(staff: Staff) -> None:
    seen: dict[int, int] = {}
    for c in sorted(staff.contacts, key=lambda c: (c.position, c.id or 0)):
        if c.kind.is_private:
            base = _POSITION_BASE[c.kind]
            c.position = base + seen.get(base, 0)
            seen[base] = seen.get(base, 0) + 1


def confirm_self_service_contacts(*, staff: Staff, ip: str | None = None) -> int:
    """ "These are still right": refreshes verified_at of every private and family contact."""
    now = utcnow()
    confirmed = [c for c in staff.contacts if c.kind.is_private]
    for c in confirmed:
        c.verified_at = now
    db.session.flush()
    audit(
        action="contact.confirm",
        organization_id=staff.organization_id,
        actor=_self_actor(staff),
        target_type="staff",
        target_id=staff.employee_id,
        summary=f"{len(confirmed)} private/family contacts confirmed by {staff.employee_id}",
        ip=ip,
    )
    return len(confirmed)


def regenerate_self_service_token(
    *, staff: Staff, actor: str, actor_user_id: int | None, ip: str | None = None
) -> str:
    """A new link for the person; the old one stops working at once (lost phone, link sent to the wrong one)."""
    staff.self_service_token = new_token()
    db.session.flush()
    audit(
        action="staff.self_service_link",
        organization_id=staff.organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="staff",
        target_id=staff.employee_id,
        summary=f"self-service link of {staff.employee_id} replaced; the old one no longer works",
        ip=ip,
    )
    return staff.self_service_token


def manager_choices(*, organization_id: int, exclude: Collection[int] = ()) -> list[tuple[str, str]]:
    rows = db.session.execute(
        select(Staff.id, Staff.employee_id, Staff.name)
        .where(Staff.organization_id == organization_id)
        .order_by(Staff.employee_id)
    ).all()
    return [(eid, name) for sid, eid, name in rows if sid not in exclude]
