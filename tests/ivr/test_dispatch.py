"""The dispatcher: ladder steps, placing at most once, leases and the sweeper, provider errors."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core import db
from core.crypto import encrypt
from core.directory.models import ContactKind, ContactPoint
from core.pacing import MemoryTokenBucket
from ivr import dispatch, service
from ivr.models import Attempt, AttemptState, BroadcastState, Recipient, RecipientState
from tests.ivr.conftest import NOW, PermanentTelephonyError, TransientTelephonyError


def start(world, **kw):
    kw.setdefault("audience", {"staff_ids": [world.staff[0].id]})
    return service.start_broadcast(
        organization_id=world.org.id, template="earthquake", actor="t", now=NOW, **kw
    )


def attempts(**where):
    query = select(Attempt).order_by(Attempt.id)
    for key, value in where.items():
        query = query.where(getattr(Attempt, key) == value)
    return list(db.session.scalars(query.execution_options(populate_existing=True)))


def run_at(outbound, at):
    return dispatch.run(out=outbound, now=lambda: at)


def test_first_step_sends_sms_with_the_link_and_email(world, outbound, backend):
    broadcast = start(world)
    recipient = db.session.scalar(select(Recipient).where(Recipient.broadcast_id == broadcast.id))
    report = run_at(outbound, NOW)
    assert report.placed == 2
    (sms,) = backend.messages
    assert sms["to"] == "+819000000100"
    assert sms["body"].splitlines()[0] == "【安否確認】地震が発生しました。安否と出勤可否を回答してください。"
    assert f"/r/{recipient.token}?via=" in sms["body"]
    assert sms["status_callback_url"].endswith("/status")
    (mail,) = outbound.mailer.outbox
    assert mail.to == "p0@example.com" and recipient.token in mail.text
    sent = attempts()
    assert [a.state for a in sent] == [AttemptState.IN_PROGRESS, AttemptState.COMPLETED]
    assert sent[0].to_masked == "+81********00" and sent[0].provider_sid.startswith("SM")
    assert backend.calls == []  # the call comes only after 5 minutes without an answer


def test_running_twice_never_sends_twice(world, outbound, backend):
    start(world)
    run_at(outbound, NOW)
    run_at(outbound, NOW)
    run_at(outbound, NOW + timedelta(seconds=30))
    assert len(backend.messages) == 1 and len(outbound.mailer.outbox) == 1
    # A second dispatcher holding stale ids claims nothing.
    (first,) = attempts(channel="sms")
    assert dispatch._claim([first.id], worker="other", now=NOW) == []


def test_ladder_calls_after_five_minutes_and_stops_when_answered(world, outbound, backend):
    broadcast = start(world)
    run_at(outbound, NOW)
    run_at(outbound, NOW + timedelta(minutes=4))
    assert backend.calls == []
    run_at(outbound, NOW + timedelta(minutes=5))
    (call,) = backend.calls
    assert call["to"] == "+819000000100" and call["machine_detection"] is True
    voice = attempts(channel="voice")[0]
    assert call["answer_url"].endswith(f"/hooks/ivr/voice/{voice.id}/start")
    recipient = db.session.scalar(select(Recipient).where(Recipient.broadcast_id == broadcast.id))
    service.record_answers(recipient=recipient, answers={"safety": "1"}, channel="voice", attempt_id=voice.id)
    db.session.commit()
    run_at(outbound, NOW + timedelta(hours=2))
    assert len(backend.calls) == 1 and len(backend.messages) == 1
    assert service.get_broadcast(broadcast_id=broadcast.id).state is BroadcastState.OPEN


def test_unanswered_person_goes_through_both_cycles_then_is_unreached(world, outbound, backend):
    broadcast = start(world)
    at = NOW
    for _ in range(12):
        run_at(outbound, at)
        at += timedelta(minutes=16)
    recipient = db.session.scalar(
        select(Recipient)
        .where(Recipient.broadcast_id == broadcast.id)
        .execution_options(populate_existing=True)
    )
    assert recipient.state is RecipientState.UNREACHED
    # One phone and one e-mail: each cycle is SMS+e-mail then a call (the "next contact point" step is skipped).
    assert len(backend.messages) == 2 and len(outbound.mailer.outbox) == 2 + 0 and len(backend.calls) == 2
    assert recipient.last_attempt_id == attempts(channel="voice")[-1].id
    assert service.get_broadcast(broadcast_id=broadcast.id).state is BroadcastState.OPEN


def test_private_numbers_are_decrypted_only_to_send_and_stored_masked(world, outbound, backend, app):
    person = world.staff[1]
    key = app.extensions["lifeline.settings"].encryption_key
    person.contacts.clear()
    person.contacts.append(
        ContactPoint(
            kind=ContactKind.PRIVATE_PHONE, value=None, value_encrypted=encrypt("+819000000999", key)
        )
    )
    db.session.flush()
    start(world, audience={"staff_ids": [person.id]})
    run_at(outbound, NOW)
    assert backend.messages[0]["to"] == "+819000000999"
    (attempt,) = attempts()
    assert attempt.to_masked == "+81********99"
    assert "+819000000999" not in repr([getattr(attempt, c.key) for c in Attempt.__table__.columns])


def test_expired_lease_is_requeued_once_by_the_sweeper(world, outbound, backend):
    start(world, channels=["sms"])
    dispatch.advance_ladders(now=NOW)
    (attempt,) = attempts()
    # A worker claims it and dies before calling the carrier.
    assert dispatch._claim([attempt.id], worker="dead-worker", now=NOW) == [attempt.id]
    assert dispatch.sweep(now=NOW + timedelta(minutes=1)) == (0, 0)  # lease still valid
    assert dispatch.sweep(now=NOW + timedelta(minutes=3)) == (1, 0)
    assert dispatch.sweep(now=NOW + timedelta(minutes=3)) == (0, 0)  # only once
    run_at(outbound, NOW + timedelta(minutes=3))
    assert len(backend.messages) == 1
    assert attempts()[0].state is AttemptState.IN_PROGRESS


def test_lease_expiring_twice_fails_the_row_rather_than_risking_a_second_call(world, outbound):
    start(world, channels=["voice"])
    dispatch.advance_ladders(now=NOW)
    (attempt,) = attempts()
    dispatch._claim([attempt.id], worker="w1", now=NOW)
    dispatch.sweep(now=NOW + timedelta(minutes=3))
    dispatch._claim([attempt.id], worker="w2", now=NOW + timedelta(minutes=3))
    assert dispatch.sweep(now=NOW + timedelta(minutes=6)) == (0, 1)
    assert attempts()[0].state is AttemptState.FAILED


def test_transient_errors_retry_with_backoff_permanent_ones_are_recorded(world, outbound, backend):
    broadcast = start(world, channels=["sms", "voice"])
    backend.fail = TransientTelephonyError("Twilio 503", code=20503)
    run_at(outbound, NOW)
    (sms,) = attempts()
    assert sms.state is AttemptState.RETRY and sms.due_at == NOW + timedelta(seconds=30)
    assert sms.error_code == "20503"
    backend.fail = PermanentTelephonyError("Invalid 'To' Phone Number", code=21211)
    run_at(outbound, NOW + timedelta(seconds=30))
    (sms,) = attempts()
    assert sms.state is AttemptState.FAILED and sms.error_code == "21211" and sms.tries == 2
    # The ladder moves on to the call; the number that failed for good is not texted again.
    backend.fail = None
    run_at(outbound, NOW + timedelta(minutes=5))
    assert len(backend.calls) == 1
    assert [a.channel.value for a in attempts(broadcast_id=broadcast.id)] == ["sms", "voice"]


def test_pacing_holds_sends_back_until_tokens_come(world, outbound, backend):
    clock = [0.0]
    outbound.bucket = MemoryTokenBucket({"sms": 2.0, "email": 100.0, "voice": 1.0}, clock=lambda: clock[0])
    start(world, audience={"everyone": True}, channels=["sms"])
    run_at(outbound, NOW)
    assert len(backend.messages) == 2  # a bucket of 2/s holds 2 tokens
    clock[0] = 1.0
    run_at(outbound, NOW)
    assert len(backend.messages) == 4
    clock[0] = 3.0
    run_at(outbound, NOW)
    assert len(backend.messages) == 6  # never more than one second's worth at once


def test_answer_after_claim_cancels_the_send(world, outbound, backend):
    broadcast = start(world, channels=["sms"])
    dispatch.advance_ladders(now=NOW)
    (attempt,) = attempts()
    dispatch._claim([attempt.id], worker=outbound.worker, now=NOW)
    recipient = db.session.scalar(select(Recipient).where(Recipient.broadcast_id == broadcast.id))
    service.record_answers(recipient=recipient, answers={"safety": "1"}, channel="web")
    db.session.commit()
    assert dispatch.place_attempt(attempt_id=attempt.id, out=outbound, now=NOW) == "cancelled"
    assert backend.messages == []


def test_summary_goes_to_crisis_managers_once(world, outbound):
    from core.auth.models import Role
    from tests.factories import make_user

    make_user(world.org, Role.CRISIS_MANAGER, email="cm@example.com")
    broadcast = start(world)
    run_at(outbound, NOW + timedelta(minutes=10))
    run_at(outbound, NOW + timedelta(minutes=11))
    summaries = [m for m in outbound.mailer.outbox if m.to == "cm@example.com"]
    assert len(summaries) == 1 and broadcast.title in summaries[0].subject


def test_unreached_are_escalated_to_their_manager(world, outbound):
    manager = world.staff[2]
    world.staff[0].manager_id = manager.id
    db.session.flush()
    start(world)
    at = NOW
    for _ in range(12):
        run_at(outbound, at)
        at += timedelta(minutes=16)
    escalations = [m for m in outbound.mailer.outbox if m.subject.startswith("[Lifeline] Unreached")]
    assert len(escalations) == 1
    assert escalations[0].to == "p2@example.com" and world.staff[0].name in escalations[0].text


def test_contact_check_reaches_every_contact_point_and_records_which_work(
    world, outbound, backend, client, app
):
    from core.directory.models import ContactKind, ContactPoint
    from core.telephony.signature import sign_request

    person = world.staff[0]
    person.contacts.append(ContactPoint(kind=ContactKind.WORK_PHONE, value="+819000000777", position=2))
    db.session.flush()
    broadcast = service.start_contact_check(organization_id=world.org.id, now=NOW)
    assert broadcast.mode.value == "drill" and broadcast.template_key == "contact_check"
    run_at(outbound, NOW)
    assert "+819000000777" in {m["to"] for m in backend.messages}
    assert len(backend.messages) == 9 and len(outbound.mailer.outbox) == 8  # every phone, every e-mail
    mine = {a.contact_point_id: a for a in attempts() if a.recipient_id and a.to_masked.endswith("77")}
    (second_phone_attempt,) = mine.values()
    settings = app.extensions["lifeline.settings"]
    path = f"/hooks/ivr/sms/{second_phone_attempt.id}/status"
    params = {"MessageSid": second_phone_attempt.provider_sid, "MessageStatus": "delivered"}
    url = settings.public_base_url + path
    client.post(
        path,
        data=params,
        headers={"X-Twilio-Signature": sign_request(url, params, settings.twilio_auth_token)},
    )
    contact = db.session.get(ContactPoint, second_phone_attempt.contact_point_id, populate_existing=True)
    assert contact.last_check_status == "delivered" and contact.verified_at is None
    recipient = db.session.get(Recipient, second_phone_attempt.recipient_id)
    service.record_answers(
        recipient=recipient, answers={"received": "1"}, channel="web", attempt_id=second_phone_attempt.id
    )
    contact = db.session.get(ContactPoint, second_phone_attempt.contact_point_id, populate_existing=True)
    assert contact.verified_at is not None and contact.last_check_status == "answered"
    assert service.contact_check_due(organization_id=world.org.id, every=timedelta(days=30), now=NOW) is False
    assert service.contact_check_due(
        organization_id=world.org.id, every=timedelta(days=30), now=NOW + timedelta(days=31)
    )


def test_the_dispatch_task_keeps_placing_at_the_rate_until_its_next_beat(
    world, outbound, backend, monkeypatch
):
    """The beat runs ``ivr.dispatch`` every few seconds. One run must go on placing as tokens come (at the rate,
    never faster), not stop at the first empty bucket: that would send one second's worth per beat."""
    from ivr import tasks

    clock = [0.0]
    outbound.bucket = MemoryTokenBucket({"sms": 2.0, "email": 100.0, "voice": 1.0}, clock=lambda: clock[0])
    sent_at: list[float] = []
    send_sms = backend.send_sms

    def timed_send(**kw):
        sent_at.append(clock[0])
        return send_sms(**kw)

    def wait(seconds: float) -> None:
        # The bucket's clock moves instead of the test sleeping, an eighth of a second a time (exact in binary, and
        # few enough waits that the run's own 5 s limit, counted in real time, never matters).
        clock[0] += 0.125

    monkeypatch.setattr(backend, "send_sms", timed_send)
    monkeypatch.setattr(tasks, "outbound", lambda: outbound)
    monkeypatch.setattr(dispatch, "_sleep", wait)
    start(world, audience={"everyone": True}, channels=["sms"])
    result = tasks.dispatch_task.apply().get()
    assert len(backend.messages) == len(world.staff) == result["placed"] == 8  # all of them in one run
    # Two at once (the bucket holds one second's worth), then one each time a token comes: two per second.
    assert sent_at == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
