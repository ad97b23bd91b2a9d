"""Partner and customer contacts, the notices sent to them, and family notices ("your family member is safe").

A notice writes one :class:`NoticeDelivery` row per contact and channel in the caller's transaction; after commit
the notice worker (:mod:`incidents.outbox`) sends the rows at the global pace and the carrier's status callbacks
move them on. No answer is expected from anyone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import func, select, update

from core import db
from core.auth.models import Role
from core.auth.service import audit
from core.directory.models import ContactKind, ContactPoint, Staff
from core.errors import NotFound, ValidationError
from core.time import utcnow
from incidents import care_rules, partners_csv
from incidents.care import current_answers
from incidents.models import (
    DeliveryChannel,
    DeliveryState,
    FamilyNoticeConsent,
    Notice,
    NoticeAudience,
    NoticeDelivery,
    PartnerContact,
    PartnerKind,
)
from incidents.partners_csv import PartnerPlan
from ivr.models import Broadcast, BroadcastMode

SEND_ROLES = (Role.CRISIS_MANAGER,)
VIEW_ROLES = (Role.CRISIS_MANAGER, Role.SUPERVISOR, Role.MANAGER)
SMS_LIMIT = 670  # ten UCS-2 segments; longer notices belong in the e-mail

# A state only moves to a higher rank: a late "sent" callback never undoes "delivered".
STATE_RANK = {
    DeliveryState.QUEUED: 0,
    DeliveryState.SENDING: 1,
    DeliveryState.SENT: 2,
    DeliveryState.DELIVERED: 3,
    DeliveryState.FAILED: 3,
    DeliveryState.CANCELLED: 3,
}
# Twilio's message statuses → ours (None: nothing we track changed).
PROVIDER_STATES: dict[str, DeliveryState | None] = {
    "accepted": None,
    "queued": None,
    "scheduled": None,
    "sending": DeliveryState.SENT,
    "sent": DeliveryState.SENT,
    "delivered": DeliveryState.DELIVERED,
    "read": DeliveryState.DELIVERED,
    "undelivered": DeliveryState.FAILED,
    "failed": DeliveryState.FAILED,
    "canceled": DeliveryState.FAILED,
}


def mask(value: str) -> str:
    if "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    return value[:3] + "*" * max(0, len(value) - 5) + value[-2:]


# --- partner contacts --------------------------------------------------------------------------------------------


def list_partners(*, organization_id: int, include_inactive: bool = False) -> list[PartnerContact]:
    query = select(PartnerContact).where(PartnerContact.organization_id == organization_id)
    if not include_inactive:
        query = query.where(PartnerContact.active.is_(True))
    return list(
        db.session.scalars(query.order_by(PartnerContact.kind, PartnerContact.company, PartnerContact.person))
    )


def _existing(organization_id: int) -> dict[tuple[str, str], PartnerContact]:
    return {
        partners_csv.contact_key(p.company, p.person): p
        for p in db.session.scalars(
            select(PartnerContact).where(PartnerContact.organization_id == organization_id)
        )
    }


def _values(contact: PartnerContact) -> dict[str, str]:
    return {
        "company": contact.company,
        "person": contact.person,
        "kind": contact.kind.value,
        "phone": contact.phone,
        "email": contact.email,
        "language": contact.language,
        "note": contact.note,
    }


def plan_partner_import(
    *, organization_id: int, data: bytes, encoding: str | None = None, region: str = "JP"
) -> PartnerPlan:
    """The dry run: what importing ``data`` would add and change, and every bad line. Changes nothing."""
    parsed = partners_csv.parse(data, encoding=encoding, region=region)
    existing = {key: _values(p) for key, p in _existing(organization_id).items()}
    return partners_csv.plan(parsed, existing)


class BadPartnerRows(ValidationError):
    status_code = 422

    def __init__(self, plan: PartnerPlan) -> None:
        lines = plan.counts["bad_lines"]
        super().__init__(
            f"{lines} bad rows; nothing was changed",
            errors=[f"line {e.line}: {e.text}" for e in plan.errors],
        )
        self.plan = plan


def apply_partner_import(
    *,
    organization_id: int,
    data: bytes,
    encoding: str | None = None,
    region: str = "JP",
    actor: str,
    actor_user_id: int | None = None,
    now: datetime | None = None,
) -> PartnerPlan:
    """Add and update contacts from the list, or — when any line is bad — change nothing and say which lines."""
    now = now or utcnow()
    plan = plan_partner_import(organization_id=organization_id, data=data, encoding=encoding, region=region)
    if plan.errors:
        raise BadPartnerRows(plan)
    existing = _existing(organization_id)
    for record in plan.added:
        db.session.add(
            PartnerContact(
                organization_id=organization_id,
                kind=PartnerKind(record.kind),
                company=record.company,
                person=record.person,
                phone=record.phone,
                email=record.email,
                language=record.language,
                note=record.note,
                created_at=now,
                updated_at=now,
            )
        )
    for record, changes in plan.updated:
        contact = existing[record.key]
        for name, (_before, after) in changes.items():
            setattr(contact, name, PartnerKind(after) if name == "kind" else after)
        contact.active = True
        contact.updated_at = now
    db.session.flush()
    audit(
        action="incidents.partners.import",
        organization_id=organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="partners",
        summary="partner contacts imported: "
        + ", ".join(f"{k} {v}" for k, v in plan.counts.items() if k != "bad_lines"),
        detail=plan.counts,
    )
    return plan


def save_partner(
    *,
    organization_id: int,
    values: Mapping[str, str],
    partner_id: int | None = None,
    region: str = "JP",
    actor: str,
    actor_user_id: int | None = None,
) -> PartnerContact:
    """Add or change one contact from the form (same checks as a CSV row)."""
    parsed = partners_csv.read_record(0, values, region)
    record, errors = parsed
    if record is None:
        raise ValidationError(errors[0].text, field=errors[0].field, errors=[e.text for e in errors])
    if partner_id is None:
        contact = _existing(organization_id).get(record.key)
        if contact is not None:
            raise ValidationError("This contact already exists.", field="company")
        contact = PartnerContact(organization_id=organization_id)
        db.session.add(contact)
    else:
        contact = get_partner(organization_id=organization_id, partner_id=partner_id)
    contact.kind = PartnerKind(record.kind)
    contact.company, contact.person = record.company, record.person
    contact.phone, contact.email = record.phone, record.email
    contact.language, contact.note = record.language, record.note
    contact.active = True
    db.session.flush()
    audit(
        action="incidents.partner.save",
        organization_id=organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="partner",
        target_id=contact.id,
        summary=f"partner contact {contact.company} {contact.person} saved",
    )
    return contact


def get_partner(*, organization_id: int, partner_id: int) -> PartnerContact:
    contact = db.session.get(PartnerContact, partner_id)
    if contact is None or contact.organization_id != organization_id:
        raise NotFound("This contact does not exist.")
    return contact


def deactivate_partner(
    *, organization_id: int, partner_id: int, actor: str, actor_user_id: int | None = None
) -> None:
    contact = get_partner(organization_id=organization_id, partner_id=partner_id)
    contact.active = False
    db.session.flush()
    audit(
        action="incidents.partner.remove",
        organization_id=organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="partner",
        target_id=contact.id,
        summary=f"partner contact {contact.company} {contact.person} removed from the lists",
    )


# --- partner notices ---------------------------------------------------------------------------------------------


def send_partner_notice(
    *,
    organization_id: int,
    subject_ja: str,
    body_ja: str,
    subject_en: str = "",
    body_en: str = "",
    channels: Iterable[str],
    kinds: Iterable[str] = ("customer", "partner"),
    incident_id: int | None = None,
    actor: str,
    actor_user_id: int | None = None,
    now: datetime | None = None,
) -> Notice:
    """Queue a notice to every active contact of the chosen kinds, on each chosen channel they have."""
    now = now or utcnow()
    chosen = [
        DeliveryChannel(c) for c in dict.fromkeys(channels) if c in DeliveryChannel.__members__.values()
    ]
    if not chosen:
        raise ValidationError("Choose SMS, e-mail or both.", field="channels")
    if not body_ja.strip():
        raise ValidationError("The Japanese text is required.", field="body_ja")
    wanted_kinds = [PartnerKind(k) for k in kinds if k in PartnerKind.__members__.values()]
    if not wanted_kinds:
        raise ValidationError("Choose customers, partners or both.", field="kinds")
    if DeliveryChannel.SMS in chosen and max(len(body_ja.strip()), len(body_en.strip())) > SMS_LIMIT:
        raise ValidationError("An SMS holds at most 670 characters.", field="body_ja")
    notice = Notice(
        organization_id=organization_id,
        incident_id=incident_id,
        audience=NoticeAudience.PARTNERS,
        subject_ja=(subject_ja.strip() or body_ja.strip().splitlines()[0])[:200],
        subject_en=subject_en.strip()[:200],
        body_ja=body_ja.strip(),
        body_en=body_en.strip(),
        channels=[c.value for c in chosen],
        created_by=actor,
        created_by_user_id=actor_user_id,
        created_at=now,
    )
    db.session.add(notice)
    db.session.flush()
    contacts = db.session.scalars(
        select(PartnerContact).where(
            PartnerContact.organization_id == organization_id,
            PartnerContact.active.is_(True),
            PartnerContact.kind.in_(wanted_kinds),
        )
    ).all()
    rows = []
    for contact in contacts:
        for channel in chosen:
            address = contact.phone if channel is DeliveryChannel.SMS else contact.email
            if not address:
                continue
            rows.append(
                NoticeDelivery(
                    notice_id=notice.id,
                    channel=channel,
                    partner_id=contact.id,
                    to_masked=mask(address),
                    language=contact.language,
                    state=DeliveryState.QUEUED,
                    due_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
    if not rows:
        raise ValidationError("Nobody on the lists can be reached on the chosen channels.", field="channels")
    db.session.add_all(rows)
    db.session.flush()
    audit(
        action="incidents.notice.send",
        organization_id=organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="notice",
        target_id=notice.id,
        summary=f"notice {notice.subject_ja!r} queued: {len(rows)} messages to {len(contacts)} contacts",
        detail={
            "channels": notice.channels,
            "kinds": [k.value for k in wanted_kinds],
            "incident_id": incident_id,
        },
    )
    from incidents.outbox import kick

    kick()
    return notice


def list_notices(*, organization_id: int, limit: int = 50) -> list[tuple[Notice, dict[str, int]]]:
    notices = list(
        db.session.scalars(
            select(Notice)
            .where(Notice.organization_id == organization_id)
            .order_by(Notice.created_at.desc(), Notice.id.desc())
            .limit(limit)
        )
    )
    counts: dict[int, dict[str, int]] = {n.id: {} for n in notices}
    if notices:
        for notice_id, state, count in db.session.execute(
            select(NoticeDelivery.notice_id, NoticeDelivery.state, func.count(NoticeDelivery.id))
            .where(NoticeDelivery.notice_id.in_(counts))
            .group_by(NoticeDelivery.notice_id, NoticeDelivery.state)
        ):
            counts[notice_id][state.value] = count
    return [(n, counts[n.id]) for n in notices]


def get_notice(*, organization_id: int, notice_id: int) -> Notice:
    notice = db.session.get(Notice, notice_id)
    if notice is None or notice.organization_id != organization_id:
        raise NotFound("This notice does not exist.")
    return notice


def deliveries(*, notice_id: int) -> list[NoticeDelivery]:
    return list(
        db.session.scalars(
            select(NoticeDelivery)
            .where(NoticeDelivery.notice_id == notice_id)
            .order_by(NoticeDelivery.id)
            .execution_options(populate_existing=True)
        )
    )


def record_provider_status(
    *,
    delivery_id: int | None,
    provider_id: str,
    status: str,
    error_code: str | None = None,
    now: datetime | None = None,
) -> NoticeDelivery | None:
    """A carrier status callback. Idempotent and order-proof: a state only moves forward."""
    now = now or utcnow()
    delivery = db.session.get(NoticeDelivery, delivery_id) if delivery_id else None
    if delivery is None and provider_id:
        delivery = db.session.scalar(select(NoticeDelivery).where(NoticeDelivery.provider_id == provider_id))
    if delivery is None:
        return None
    if delivery.provider_id and provider_id and delivery.provider_id != provider_id:
        return None  # a callback for another message: never let it touch this row
    new = PROVIDER_STATES.get(status.strip().lower())
    delivery.provider_status = status[:20]
    if delivery.provider_id is None and provider_id:
        delivery.provider_id = provider_id[:120]
    if new is not None and STATE_RANK[new] > STATE_RANK[delivery.state]:
        delivery.state = new
        delivery.lease_owner = None
        delivery.lease_until = None
        if new is DeliveryState.DELIVERED:
            delivery.delivered_at = now
        if new is DeliveryState.FAILED:
            delivery.error = f"carrier reported {status}" + (f" (error {error_code})" if error_code else "")
        if delivery.sent_at is None:
            delivery.sent_at = now
    delivery.updated_at = now
    db.session.flush()
    return delivery


# --- family notices ----------------------------------------------------------------------------------------------


def family_consent(*, staff_id: int) -> bool:
    row = db.session.scalar(select(FamilyNoticeConsent).where(FamilyNoticeConsent.staff_id == staff_id))
    return bool(row and row.allowed)


def set_family_consent(
    *, staff: Staff, allowed: bool, ip: str | None = None, now: datetime | None = None
) -> None:
    """The person's own choice, made on their own page."""
    now = now or utcnow()
    row = db.session.scalar(select(FamilyNoticeConsent).where(FamilyNoticeConsent.staff_id == staff.id))
    if row is None:
        row = FamilyNoticeConsent(staff_id=staff.id, allowed=allowed, updated_at=now)
        db.session.add(row)
    elif row.allowed == allowed:
        return
    row.allowed = allowed
    row.updated_at = now
    db.session.flush()
    audit(
        action="incidents.family_consent",
        organization_id=staff.organization_id,
        actor=f"self-service:{staff.employee_id}",
        target_type="staff",
        target_id=staff.employee_id,
        summary=f"{staff.employee_id} {'allows' if allowed else 'no longer allows'} telling their family they are safe",
        ip=ip,
    )


FAMILY_KINDS = (ContactKind.FAMILY_PHONE, ContactKind.FAMILY_EMAIL)
FAMILY_SUBJECT = {"ja": "【安否のお知らせ】", "en": "Safety notice: "}
FAMILY_TEXT = {
    "ja": "{name}さんは安否確認に「無事」と回答しました。({org})",
    "en": "{name} answered the safety check: safe. ({org})",
}


def family_text(*, name: str, organization: str, language: str) -> tuple[str, str]:
    """Subject and text of a family notice; names nothing but the person and the organization."""
    lang = "en" if language == "en" else "ja"
    text = FAMILY_TEXT[lang].format(name=name, org=organization)
    return FAMILY_SUBJECT[lang] + name, text


def staff_answered_safe(*, broadcast: Broadcast, staff_id: int) -> bool:
    template = broadcast.template or {}
    answers = current_answers(broadcast.id).get(staff_id, [])
    return care_rules.answered_safe(
        answers, care_rules.safe_options(template), care_rules.care_options(template)
    )


def queue_family_notices(*, broadcast_id: int, now: datetime | None = None) -> int:
    """Queue a notice to the family contacts of everyone in the broadcast who answered safe and allowed it.

    Drills tell families only when the broadcast was started with families included. Idempotent: a contact
    point is told once per broadcast. Returns how many messages were queued.
    """
    now = now or utcnow()
    broadcast = db.session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise NotFound("This broadcast does not exist.")
    if broadcast.mode is BroadcastMode.DRILL and not broadcast.include_family:
        return 0
    template = broadcast.template or {}
    safe = care_rules.safe_options(template)
    care = care_rules.care_options(template)
    answers = current_answers(broadcast.id)
    safe_staff = [sid for sid, items in answers.items() if care_rules.answered_safe(items, safe, care)]
    if not safe_staff:
        return 0
    consenting = set(
        db.session.scalars(
            select(FamilyNoticeConsent.staff_id).where(
                FamilyNoticeConsent.staff_id.in_(safe_staff), FamilyNoticeConsent.allowed.is_(True)
            )
        )
    )
    if not consenting:
        return 0
    contacts = db.session.execute(
        select(ContactPoint.id, ContactPoint.staff_id, ContactPoint.kind, Staff.language)
        .join(Staff, Staff.id == ContactPoint.staff_id)
        .where(ContactPoint.staff_id.in_(consenting), ContactPoint.kind.in_(FAMILY_KINDS))
    ).all()
    if not contacts:
        return 0
    notice = db.session.scalar(
        select(Notice).where(Notice.broadcast_id == broadcast.id, Notice.audience == NoticeAudience.FAMILY)
    )
    if notice is None:
        notice = Notice(
            organization_id=broadcast.organization_id,
            broadcast_id=broadcast.id,
            audience=NoticeAudience.FAMILY,
            subject_ja="安否のお知らせ",
            subject_en="Safety notice",
            channels=[c.value for c in DeliveryChannel],
            created_by="system",
            created_at=now,
        )
        db.session.add(notice)
        db.session.flush()
    already = set(
        db.session.scalars(
            select(NoticeDelivery.contact_point_id).where(NoticeDelivery.notice_id == notice.id)
        )
    )
    queued = 0
    for contact_id, staff_id, kind, language in contacts:
        if contact_id in already:
            continue
        db.session.add(
            NoticeDelivery(
                notice_id=notice.id,
                channel=DeliveryChannel.SMS if kind is ContactKind.FAMILY_PHONE else DeliveryChannel.EMAIL,
                staff_id=staff_id,
                contact_point_id=contact_id,
                to_masked="",  # filled in when sent: the value is only decrypted then
                language=language.value,
                state=DeliveryState.QUEUED,
                due_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        queued += 1
    if queued:
        db.session.flush()
        audit(
            action="incidents.family_notice.queue",
            organization_id=broadcast.organization_id,
            actor="system",
            target_type="broadcast",
            target_id=broadcast.id,
            summary=f"{queued} family notices queued for people who answered safe",
            detail={"notice_id": notice.id, "queued": queued},
        )
        from incidents.outbox import kick

        kick()
    return queued


def delivery_counts(*, organization_id: int, notice_ids: Sequence[int] | None = None) -> dict[str, int]:
    query = (
        select(NoticeDelivery.state, func.count(NoticeDelivery.id))
        .join(Notice, Notice.id == NoticeDelivery.notice_id)
        .where(Notice.organization_id == organization_id)
        .group_by(NoticeDelivery.state)
    )
    if notice_ids is not None:
        query = query.where(Notice.id.in_(notice_ids))
    return {state.value: count for state, count in db.session.execute(query)}


def requeue_failed(
    *, notice: Notice, actor: str, actor_user_id: int | None, now: datetime | None = None
) -> int:
    """Try the failed messages of a notice once more (e.g. after a carrier outage)."""
    now = now or utcnow()
    result = db.session.execute(
        update(NoticeDelivery)
        .where(NoticeDelivery.notice_id == notice.id, NoticeDelivery.state == DeliveryState.FAILED)
        .values(state=DeliveryState.QUEUED, due_at=now, tries=0, error=None, provider_id=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        audit(
            action="incidents.notice.retry",
            organization_id=notice.organization_id,
            actor=actor,
            actor_user_id=actor_user_id,
            target_type="notice",
            target_id=notice.id,
            summary=f"{count} failed messages of notice {notice.subject_ja!r} queued again",
        )
        from incidents.outbox import kick

        kick()
    return count
