"""The notice worker: sends queued notice deliveries and notification e-mails at the global pace.

Run by the ``incidents.send_notices`` task (kicked after a notice commits, and by the beat) and by tests directly.
Like a task it is an edge and commits in small units, the same way the safety-call dispatcher does:

* a claim (``queued`` → ``sending`` with a lease) is committed *before* the provider is called, and the result in
  a fresh transaction right after, so a second worker — or the same task run twice — finds nothing to send;
* pacing tokens come from the bucket shared by every worker (``core.pacing``), per channel, so notices and
  safety calls together never exceed what the carrier account allows;
* a worker that died while holding a lease leaves a ``sending`` row; :func:`sweep` queues it once more if the
  provider never reported it, and fails it after that rather than risk sending twice.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from core import db
from core.auth.models import User
from core.crypto import decrypt
from core.db import after_commit
from core.directory.models import ContactPoint, Organization, Staff
from core.mail import Mail, MailBackend, MailError
from core.pacing import TokenBucket
from core.telephony import PermanentTelephonyError, TelephonyBackend, TransientTelephonyError
from core.time import utcnow
from incidents import notices
from incidents.models import (
    DeliveryChannel,
    DeliveryState,
    Notice,
    NoticeAudience,
    NoticeDelivery,
    Notification,
    PartnerContact,
)
from ivr.models import Broadcast

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
MAX_TRIES = 5
MAX_LEASES = 2
BATCH = 200
BACKOFF = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=5), timedelta(minutes=15))


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Outbound:
    """What the worker talks to; built from settings by the task, injected by tests."""

    backend: TelephonyBackend
    mailer: MailBackend
    bucket: TokenBucket
    settings: Any
    worker: str = field(default_factory=worker_id)


@dataclass
class Report:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    mailed: int = 0
    waiting: int = 0  # due rows left for lack of pacing tokens

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


_KICKED = "incidents_outbox_kicked"


def kick() -> None:
    """Wake a worker once the current transaction commits (the beat would within a minute anyway).

    Once per transaction, however many notices and notifications it wrote.
    """
    session = db.session()
    transaction = session.get_transaction()
    if transaction is not None and session.info.get(_KICKED) is transaction:
        return
    session.info[_KICKED] = transaction
    after_commit(_queue_task)


def _queue_task() -> None:
    from core.celery import celery_app

    if celery_app.conf.task_always_eager:
        # Eager mode (tests) would send from inside the committing session's after-commit hook;
        # tests run the worker directly instead.
        return
    try:
        celery_app.send_task("incidents.send_notices")
    except Exception:
        log.exception("could not queue incidents.send_notices")


def run(*, out: Outbound, now: datetime | None = None, limit: int = BATCH) -> Report:
    now = now or utcnow()
    report = send_due(out=out, now=now, limit=limit)
    report.mailed = mail_notifications(out=out, now=now, limit=limit)
    return report


# --- notice deliveries -------------------------------------------------------------------------------------------


def _claim(ids: Sequence[int], *, worker: str, now: datetime) -> list[int]:
    claimed = []
    for delivery_id in ids:
        result = db.session.execute(
            update(NoticeDelivery)
            .where(NoticeDelivery.id == delivery_id, NoticeDelivery.state == DeliveryState.QUEUED)
            .values(
                state=DeliveryState.SENDING,
                lease_owner=worker,
                lease_until=now + LEASE,
                tries=NoticeDelivery.tries + 1,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            claimed.append(delivery_id)
    db.session.commit()
    return claimed


def send_due(*, out: Outbound, now: datetime, limit: int = BATCH) -> Report:
    """Claim and send due deliveries, as many per channel as the shared bucket grants right now."""
    report = Report()
    for channel in DeliveryChannel:
        candidates = list(
            db.session.scalars(
                select(NoticeDelivery.id)
                .where(
                    NoticeDelivery.channel == channel,
                    NoticeDelivery.state == DeliveryState.QUEUED,
                    NoticeDelivery.due_at <= now,
                )
                .order_by(NoticeDelivery.due_at, NoticeDelivery.id)
                .limit(limit)
            )
        )
        db.session.commit()
        if not candidates:
            continue
        granted = out.bucket.take(channel.value, len(candidates))
        report.waiting += len(candidates) - granted
        for delivery_id in _claim(candidates[:granted], worker=out.worker, now=now):
            outcome = send_delivery(delivery_id=delivery_id, out=out, now=now)
            setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def _finish(delivery_id: int, state: DeliveryState, now: datetime, **values: Any) -> bool:
    """SENDING → ``state``, unless a callback already moved the row on."""
    result = db.session.execute(
        update(NoticeDelivery)
        .where(NoticeDelivery.id == delivery_id, NoticeDelivery.state == DeliveryState.SENDING)
        .values(state=state, lease_owner=None, lease_until=None, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def _after_error(delivery_id: int, now: datetime, *, transient: bool, reason: str) -> str:
    row = db.session.get(NoticeDelivery, delivery_id, populate_existing=True)
    tries = row.tries if row is not None else MAX_TRIES
    if transient and tries < MAX_TRIES:
        _finish(
            delivery_id,
            DeliveryState.QUEUED,
            now,
            due_at=now + BACKOFF[min(tries, len(BACKOFF)) - 1],
            error=reason[:500],
        )
        db.session.commit()
        return "retried"
    _finish(delivery_id, DeliveryState.FAILED, now, error=reason[:500])
    db.session.commit()
    return "failed"


def status_callback_url(settings: Any, delivery_id: int) -> str:
    return f"{settings.public_base_url.rstrip('/')}/hooks/incidents/sms-status?d={delivery_id}"


def _texts(notice: Notice, org_name: str, language: str) -> tuple[str, str, str]:
    """SMS text, e-mail subject, e-mail text of a partner notice."""
    subject = notice.text("subject", language)
    body = notice.text("body", language)
    return f"【{org_name}】{body}", f"[{org_name}] {subject}", f"{body}\n\n-- \n{org_name}\n"


def _resolve(
    delivery: NoticeDelivery, notice: Notice, out: Outbound, now: datetime
) -> tuple[str, str, str, str]:
    """Address, SMS text, e-mail subject and text; raises ValueError when the message must not leave."""
    org = db.session.get(Organization, notice.organization_id)
    org_name = org.name if org else "Lifeline"
    if notice.audience is NoticeAudience.PARTNERS:
        contact = db.session.get(PartnerContact, delivery.partner_id) if delivery.partner_id else None
        if contact is None or not contact.active:
            raise ValueError("the contact was removed from the lists")
        address = contact.phone if delivery.channel is DeliveryChannel.SMS else contact.email
        if not address:
            raise ValueError("the contact has no address for this channel any more")
        sms, subject, text = _texts(notice, org_name, delivery.language)
        return address, sms, subject, text
    # Family notice: re-check at the last moment that it is still true and still wanted.
    staff = db.session.get(Staff, delivery.staff_id) if delivery.staff_id else None
    broadcast = db.session.get(Broadcast, notice.broadcast_id) if notice.broadcast_id else None
    if staff is None or broadcast is None:
        raise LookupError("the person or the broadcast no longer exists")
    if not notices.family_consent(staff_id=staff.id):
        raise LookupError("the person withdrew their consent")
    if not notices.staff_answered_safe(broadcast=broadcast, staff_id=staff.id):
        raise LookupError("the person's answer is no longer safe")
    point = db.session.get(ContactPoint, delivery.contact_point_id) if delivery.contact_point_id else None
    if point is None or (point.value_encrypted is None and not point.value):
        raise ValueError("the family point was removed")
    # The only place a family point is decrypted: right before it is handed to the carrier.
    address = point.value or decrypt(point.value_encrypted or b"", out.settings.encryption_key)
    subject, text = notices.family_text(name=staff.name, organization=org_name, language=delivery.language)
    return address, text, subject, f"{text}\n"


def send_delivery(*, delivery_id: int, out: Outbound, now: datetime) -> str:
    """Hand one claimed delivery to the carrier or the mail server. Returns sent, retried, failed or cancelled."""
    delivery = db.session.get(NoticeDelivery, delivery_id, populate_existing=True)
    if delivery is None or delivery.state is not DeliveryState.SENDING or delivery.lease_owner != out.worker:
        db.session.commit()
        return "cancelled"
    notice = db.session.get(Notice, delivery.notice_id)
    assert notice is not None
    try:
        address, sms_text, subject, mail_text = _resolve(delivery, notice, out, now)
    except LookupError as exc:
        _finish(delivery_id, DeliveryState.CANCELLED, now, error=str(exc))
        db.session.commit()
        return "cancelled"
    except ValueError as exc:
        _finish(delivery_id, DeliveryState.FAILED, now, error=str(exc))
        db.session.commit()
        return "failed"
    delivery.to_masked = notices.mask(address)
    channel = delivery.channel
    # End the transaction before the network call: the status callbacks that follow write to this row.
    db.session.commit()
    try:
        if channel is DeliveryChannel.SMS:
            message = out.backend.send_sms(
                to=address,
                from_=out.settings.twilio_from_number,
                body=sms_text,
                status_callback_url=status_callback_url(out.settings, delivery_id),
            )
            provider_id, status = message.sid, message.status
        else:
            provider_id, status = out.mailer.send(Mail(to=address, subject=subject, text=mail_text)), "sent"
    except TransientTelephonyError as exc:
        return _after_error(delivery_id, now, transient=True, reason=str(exc))
    except PermanentTelephonyError as exc:
        return _after_error(delivery_id, now, transient=False, reason=str(exc))
    except MailError as exc:
        return _after_error(delivery_id, now, transient=exc.transient, reason=str(exc))
    if not _finish(
        delivery_id,
        DeliveryState.SENT,
        now,
        provider_id=provider_id[:120],
        provider_status=status[:20],
        sent_at=now,
        error=None,
    ):
        # A callback got here first and moved the row on; keep its state, just remember the provider's id.
        db.session.execute(
            update(NoticeDelivery)
            .where(NoticeDelivery.id == delivery_id, NoticeDelivery.provider_id.is_(None))
            .values(provider_id=provider_id[:120], sent_at=now)
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    return "sent"


def sweep(*, now: datetime | None = None) -> tuple[int, int]:
    """Rows whose worker died mid-send: queued once more if the provider never reported them, else failed."""
    now = now or utcnow()
    stale = db.session.execute(
        select(NoticeDelivery.id, NoticeDelivery.tries, NoticeDelivery.provider_id).where(
            NoticeDelivery.state == DeliveryState.SENDING, NoticeDelivery.lease_until < now
        )
    ).all()
    requeued = failed = 0
    for delivery_id, tries, provider_id in stale:
        if provider_id is None and tries < MAX_LEASES:
            requeued += _finish(delivery_id, DeliveryState.QUEUED, now, due_at=now)
        else:
            failed += _finish(delivery_id, DeliveryState.FAILED, now, error="the worker sending it stopped")
    db.session.commit()
    return requeued, failed


# --- notification e-mails ----------------------------------------------------------------------------------------


def mail_notifications(*, out: Outbound, now: datetime, limit: int = BATCH) -> int:
    due = db.session.execute(
        select(Notification.id, User.email, User.language, Notification.text, Notification.link)
        .join(User, User.id == Notification.user_id)
        .where(Notification.mail_due.is_(True), Notification.mailed_at.is_(None), User.is_active.is_(True))
        .order_by(Notification.id)
        .limit(limit)
    ).all()
    db.session.commit()
    if not due:
        return 0
    granted = out.bucket.take("email", len(due))
    base = out.settings.public_base_url.rstrip("/")
    mailed = 0
    for note_id, email, language, text, link in due[:granted]:
        claimed = db.session.execute(
            update(Notification)
            .where(Notification.id == note_id, Notification.mail_due.is_(True))
            .values(mail_due=False)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        if getattr(claimed, "rowcount", 0) != 1:
            continue
        prefix = "[Lifeline] お知らせ: " if language == "ja" else "[Lifeline] "
        body = text + (f"\n\n{base}{link}\n" if link else "\n")
        try:
            out.mailer.send(Mail(to=email, subject=(prefix + text.splitlines()[0])[:150], text=body))
        except MailError as exc:
            if exc.transient:
                db.session.execute(
                    update(Notification).where(Notification.id == note_id).values(mail_due=True)
                )
            log.warning("notification %s not mailed: %s", note_id, exc)
            db.session.commit()
            continue
        db.session.execute(update(Notification).where(Notification.id == note_id).values(mailed_at=now))
        db.session.commit()
        mailed += 1
    return mailed
