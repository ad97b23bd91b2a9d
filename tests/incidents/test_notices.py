"""Notices to partners and customers: one delivery per contact and channel, sent at the global pace, tracked by
signed carrier callbacks. Telephony, mail and the clock are injected; nothing leaves the machine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from core import db
from core.auth.models import AuditEntry
from core.mail import MailError, OutboxMailBackend
from core.pacing import MemoryTokenBucket
from core.telephony import PermanentTelephonyError, SentMessage, TransientTelephonyError, sign_request
from incidents import notices, notifications, outbox
from incidents.models import (
    DeliveryChannel,
    DeliveryState,
    NoticeDelivery,
    Notification,
    PartnerContact,
    PartnerKind,
)
from tests.factories import login, post_form
from tests.incidents.conftest import World

# Far from the real clock: rows other tests committed are never due at this time.
T0 = datetime(2020, 4, 1, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeTelephony:
    """Records each SMS with the fake time it left; can be told to fail."""

    clock: FakeClock
    sent: list[dict[str, Any]] = field(default_factory=list)
    fail_with: Exception | None = None

    def send_sms(
        self, *, to: str, from_: str, body: str, status_callback_url: str | None = None
    ) -> SentMessage:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append({"to": to, "body": body, "callback": status_callback_url, "at": self.clock()})
        return SentMessage(sid=f"SM{len(self.sent):032d}", status="queued")

    def place_call(self, **_: Any) -> Any:  # pragma: no cover - notices never call
        raise AssertionError("notices never place calls")

    def cancel_call(self, call_sid: str) -> None:  # pragma: no cover
        raise AssertionError

    def end_call(self, call_sid: str) -> None:  # pragma: no cover
        raise AssertionError


class FailingMail:
    def __init__(self, transient: bool) -> None:
        self.transient = transient

    def send(self, mail: Any) -> str:
        raise MailError("mail server said no", transient=self.transient)


def _outbound(
    app: Any, *, sms_per_second: float = 2.0, emails_per_second: float = 100.0, mailer: Any = None
) -> tuple[outbox.Outbound, FakeTelephony, OutboxMailBackend]:
    clock = FakeClock()
    phone = FakeTelephony(clock)
    mail = mailer or OutboxMailBackend()
    bucket = MemoryTokenBucket({"sms": sms_per_second, "email": emails_per_second, "voice": 1.0}, clock=clock)
    return (
        outbox.Outbound(
            backend=phone,
            mailer=mail,
            bucket=bucket,
            settings=app.extensions["lifeline.settings"],
            worker="test-worker",
        ),
        phone,
        mail,
    )


def _partners(world: World, specs: Sequence[tuple[str, str, str, str]]) -> list[PartnerContact]:
    rows = [
        PartnerContact(
            organization_id=world.org.id,
            kind=PartnerKind(kind),
            company=company,
            phone=phone,
            email=email,
            language="en" if "Ltd" in company else "ja",
        )
        for kind, company, phone, email in specs
    ]
    db.session.add_all(rows)
    db.session.flush()
    return rows


def _notice(
    world: World, channels: Sequence[str] = ("sms", "email"), kinds: Sequence[str] = ("customer", "partner")
) -> Any:
    return notices.send_partner_notice(
        organization_id=world.org.id,
        subject_ja="営業状況のお知らせ",
        body_ja="大阪センターは停止中です。東京で受付を継続しています。",
        subject_en="Service notice",
        body_en="Our Osaka center is down; Tokyo is taking calls.",
        channels=channels,
        kinds=kinds,
        actor=world.crisis.email,
        actor_user_id=world.crisis.id,
        now=T0,
    )


def fresh(model: Any, key: int) -> Any:
    """The row as the database has it now (workers commit with bulk updates the identity map does not see)."""
    return db.session.get(model, key, populate_existing=True)


def _states(notice_id: int) -> list[tuple[str, str]]:
    return [(d.channel.value, d.state.value) for d in notices.deliveries(notice_id=notice_id)]


def test_a_notice_makes_one_delivery_per_contact_and_channel(world: World) -> None:
    a, b, c, gone = _partners(
        world,
        [
            ("customer", "顧客A", "+819000000801", "a@customer.example.com"),
            ("customer", "Customer B Ltd", "", "b@customer.example.com"),
            ("partner", "協力会社C", "+819000000803", ""),
            ("partner", "取引終了D", "+819000000804", "d@example.com"),
        ],
    )
    gone.active = False
    notice = _notice(world)
    rows = notices.deliveries(notice_id=notice.id)
    assert sorted((r.partner_id, r.channel.value) for r in rows) == sorted(
        [(a.id, "sms"), (a.id, "email"), (b.id, "email"), (c.id, "sms")]
    )
    assert {r.state for r in rows} == {DeliveryState.QUEUED}
    assert next(r for r in rows if r.partner_id == b.id).language == "en"
    assert (
        db.session.scalars(
            select(AuditEntry.summary).where(
                AuditEntry.action == "incidents.notice.send", AuditEntry.organization_id == world.org.id
            )
        )
        .one()
        .endswith("4 messages to 3 contacts")
    )
    # Customers only.
    only_customers = _notice(world, kinds=["customer"])
    assert {r.partner_id for r in notices.deliveries(notice_id=only_customers.id)} == {a.id, b.id}


def test_sending_keeps_the_pace_and_records_the_provider_ids(app: Any, world: World) -> None:
    _partners(world, [("customer", f"顧客{i}", f"+81900000081{i}", "") for i in range(5)])
    notice = _notice(world, channels=["sms"])
    out, phone, _mail = _outbound(app, sms_per_second=2.0)
    clock = out.bucket.clock  # type: ignore[attr-defined]

    first = outbox.send_due(out=out, now=T0)
    assert (first.sent, first.waiting) == (2, 3)
    # Same instant: the bucket is empty, nothing more leaves.
    assert outbox.send_due(out=out, now=T0).sent == 0
    clock.now += 1.0
    assert outbox.send_due(out=out, now=T0).sent == 2
    clock.now += 1.0
    last = outbox.send_due(out=out, now=T0)
    assert (last.sent, last.waiting) == (1, 0)

    per_second: dict[float, int] = {}
    for message in phone.sent:
        per_second[message["at"]] = per_second.get(message["at"], 0) + 1
    assert max(per_second.values()) <= 2
    assert len(phone.sent) == 5 and len({m["to"] for m in phone.sent}) == 5  # nobody twice
    rows = notices.deliveries(notice_id=notice.id)
    assert {r.state for r in rows} == {DeliveryState.SENT}
    assert all(r.provider_id and r.provider_id.startswith("SM") for r in rows)
    assert phone.sent[0]["body"].startswith("【Demo Co.】大阪センターは停止中です。")
    assert phone.sent[0]["callback"].endswith(f"/hooks/incidents/sms-status?d={rows[0].id}")
    # Running the worker again sends nothing twice.
    clock.now += 10
    assert outbox.send_due(out=out, now=T0).sent == 0


def test_e_mail_goes_out_in_each_contact_s_language(app: Any, world: World) -> None:
    _partners(
        world,
        [
            ("customer", "顧客A", "", "a@customer.example.com"),
            ("customer", "Customer B Ltd", "", "b@customer.example.com"),
        ],
    )
    notice = _notice(world, channels=["email"])
    out, _phone, mail = _outbound(app)
    assert outbox.send_due(out=out, now=T0).sent == 2
    by_address = {m.to: m for m in mail.outbox if m.to.endswith("customer.example.com")}
    assert by_address["a@customer.example.com"].subject == "[Demo Co.] 営業状況のお知らせ"
    assert "Tokyo is taking calls" in by_address["b@customer.example.com"].text
    assert _states(notice.id) == [("email", "sent"), ("email", "sent")]


def test_transient_errors_retry_later_and_permanent_ones_fail(app: Any, world: World) -> None:
    _partners(world, [("customer", "顧客A", "+819000000801", ""), ("customer", "顧客B", "", "b@example.com")])
    notice = _notice(world)
    out, phone, _ = _outbound(app, mailer=FailingMail(transient=False))
    phone.fail_with = TransientTelephonyError("Twilio unreachable")
    report = outbox.send_due(out=out, now=T0)
    assert (report.retried, report.failed) == (1, 1)
    sms = next(d for d in notices.deliveries(notice_id=notice.id) if d.channel is DeliveryChannel.SMS)
    assert sms.state is DeliveryState.QUEUED and sms.due_at > T0 and sms.tries == 1
    email = next(d for d in notices.deliveries(notice_id=notice.id) if d.channel is DeliveryChannel.EMAIL)
    assert email.state is DeliveryState.FAILED and "mail server said no" in (email.error or "")
    # Not due again yet; later, a permanent refusal fails it for good.
    assert outbox.send_due(out=out, now=T0).sent == 0
    phone.fail_with = PermanentTelephonyError("invalid number", code=21211)
    out.bucket.clock.now += 5  # type: ignore[attr-defined]
    assert outbox.send_due(out=out, now=T0 + timedelta(minutes=1)).failed == 1
    assert _states(notice.id) == [("sms", "failed"), ("email", "failed")]
    # "Try again" puts the failed ones back in the queue.
    assert notices.requeue_failed(notice=notice, actor="cm", actor_user_id=None) == 2


def test_a_contact_removed_before_sending_is_not_messaged(app: Any, world: World) -> None:
    (contact,) = _partners(world, [("customer", "顧客A", "+819000000801", "")])
    notice = _notice(world, channels=["sms"])
    contact.active = False
    out, phone, _ = _outbound(app)
    assert outbox.send_due(out=out, now=T0).failed == 1
    assert phone.sent == []
    assert _states(notice.id) == [("sms", "failed")]


def test_a_worker_that_died_mid_send_is_swept(app: Any, world: World) -> None:
    _partners(world, [("customer", "顧客A", "+819000000801", "")])
    notice = _notice(world, channels=["sms"])
    (row,) = notices.deliveries(notice_id=notice.id)
    row.state, row.lease_until, row.tries, row.lease_owner = DeliveryState.SENDING, T0, 1, "dead-worker"
    db.session.flush()
    assert outbox.sweep(now=T0 + timedelta(minutes=5)) == (1, 0)
    assert fresh(NoticeDelivery, row.id).state is DeliveryState.QUEUED


def _callback(client: FlaskClient, app: Any, delivery_id: int, *, signed: bool = True, **params: str) -> Any:
    settings = app.extensions["lifeline.settings"]
    url = f"{settings.public_base_url}/hooks/incidents/sms-status?d={delivery_id}"
    headers = {"X-Twilio-Signature": sign_request(url, params, settings.twilio_auth_token)} if signed else {}
    return client.post(f"/hooks/incidents/sms-status?d={delivery_id}", data=params, headers=headers)


def test_signed_status_callbacks_track_delivery(app: Any, client: FlaskClient, world: World) -> None:
    _partners(world, [("customer", "顧客A", "+819000000801", "")])
    notice = _notice(world, channels=["sms"])
    out, _phone, _ = _outbound(app)
    outbox.send_due(out=out, now=T0)
    (row,) = notices.deliveries(notice_id=notice.id)
    sid, row_id = row.provider_id, row.id
    assert sid is not None

    assert (
        _callback(client, app, row_id, signed=False, MessageSid=sid, MessageStatus="delivered").status_code
        == 403
    )
    assert fresh(NoticeDelivery, row_id).state is DeliveryState.SENT
    # Forged signature.
    forged = client.post(
        f"/hooks/incidents/sms-status?d={row_id}",
        data={"MessageSid": sid, "MessageStatus": "delivered"},
        headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
    )
    assert forged.status_code == 403

    assert _callback(client, app, row_id, MessageSid=sid, MessageStatus="delivered").status_code == 204
    row = fresh(NoticeDelivery, row_id)
    assert row.state is DeliveryState.DELIVERED and row.delivered_at is not None
    # A late "sent" (callbacks arrive out of order) does not undo "delivered"; a repeat changes nothing.
    assert _callback(client, app, row_id, MessageSid=sid, MessageStatus="sent").status_code == 204
    assert _callback(client, app, row_id, MessageSid=sid, MessageStatus="delivered").status_code == 204
    assert fresh(NoticeDelivery, row_id).state is DeliveryState.DELIVERED
    # A callback naming another message does not touch this row; an unknown row is simply acknowledged.
    assert (
        _callback(client, app, row_id, MessageSid="SM" + "9" * 32, MessageStatus="failed").status_code == 204
    )
    assert fresh(NoticeDelivery, row_id).state is DeliveryState.DELIVERED
    assert _callback(client, app, 987654321, MessageSid="SMx", MessageStatus="failed").status_code == 204


def test_undelivered_is_a_failure_with_the_error_code(world: World) -> None:
    _partners(world, [("customer", "顧客A", "+819000000801", "")])
    notice = _notice(world, channels=["sms"])
    (row,) = notices.deliveries(notice_id=notice.id)
    row.state, row.provider_id = DeliveryState.SENT, "SM1"
    notices.record_provider_status(
        delivery_id=row.id, provider_id="SM1", status="undelivered", error_code="30006"
    )
    assert row.state is DeliveryState.FAILED and "30006" in (row.error or "")


def test_notices_through_the_screens(client: FlaskClient, world: World) -> None:
    _partners(world, [("customer", "顧客A", "+819000000801", "a@example.com")])
    login(client, world.crisis)
    response = post_form(
        client,
        "/incidents/notices/new",
        kinds=["customer", "partner"],
        channels=["sms", "email"],
        subject_ja="お知らせ",
        body_ja="本日は通常どおり営業しています。",
    )
    assert response.status_code == 302
    detail = client.get(response.headers["Location"])
    assert detail.status_code == 200
    assert "Queued" in detail.text and "+81" in detail.text  # masked address
    assert "+819000000801" not in detail.text


def test_managers_read_but_do_not_send(client: FlaskClient, world: World) -> None:
    login(client, world.manager)
    assert client.get("/incidents/notices").status_code == 200
    assert client.get("/incidents/notices/new").status_code == 403


def test_notifications_are_mailed_at_the_mail_pace(app: Any, world: World) -> None:
    note = notifications.notify(
        organization_id=world.org.id,
        user_id=world.crisis.id,
        kind="test",
        message="New post on {board} by {author}: {text}",
        params={"board": "指示", "author": "田中", "text": "テスト通知"},
        link="/incidents/",
    )
    out, _phone, mail = _outbound(app)
    outbox.mail_notifications(out=out, now=T0)
    assert fresh(Notification, note.id).mailed_at == T0
    sent = [m for m in mail.outbox if m.to == world.crisis.email]
    assert (
        len(sent) == 1
        and "New post on 指示 by 田中: テスト通知" in sent[0].text
        and sent[0].text.rstrip().endswith("/incidents/")
    )
    outbox.mail_notifications(out=out, now=T0)
    assert len([m for m in mail.outbox if m.to == world.crisis.email]) == 1


@pytest.mark.parametrize("channels", [[], ["fax"]])
def test_a_notice_needs_a_channel(world: World, channels: list[str]) -> None:
    from core.errors import ValidationError

    _partners(world, [("customer", "顧客A", "+819000000801", "")])
    with pytest.raises(ValidationError):
        _notice(world, channels=channels)
