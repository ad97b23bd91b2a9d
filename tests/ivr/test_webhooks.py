"""Twilio webhooks: signature checked, idempotent, order-insensitive; the voice menu records answers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from core import db
from core.telephony.signature import sign_request
from core.time import utcnow
from ivr import dispatch, service
from ivr.models import Attempt, AttemptState, Recipient, RecipientState
from tests.ivr.conftest import NOW


@dataclass(frozen=True)
class Placed:
    broadcast_id: int
    attempt_id: int
    call_sid: str
    recipient_id: int


@pytest.fixture()
def placed(world, outbound, backend):
    """One person, one call placed (SMS/e-mail first, then the call after 5 minutes)."""
    # Placed just now, not at the suite's NOW: the webhooks below run on the real clock, and a long suite may be
    # far past NOW by the time this test runs.
    now = utcnow().replace(microsecond=0)
    broadcast = service.start_broadcast(
        organization_id=world.org.id,
        template="earthquake",
        audience={"staff_ids": [world.staff[1].id]},  # an English speaker
        channels=["voice"],
        actor="t",
        now=now,
    )
    dispatch.run(out=outbound, now=lambda: now)
    attempt = db.session.scalar(select(Attempt).where(Attempt.broadcast_id == broadcast.id))
    recipient = db.session.scalar(select(Recipient).where(Recipient.broadcast_id == broadcast.id))
    # Plain values: a request that ends in an error rolls the session back and expires loaded objects.
    return Placed(broadcast.id, attempt.id, attempt.provider_sid, recipient.id)


def post(client, app, path, params, *, signed=True):
    settings = app.extensions["lifeline.settings"]
    url = settings.public_base_url.rstrip("/") + path
    headers = {"X-Twilio-Signature": sign_request(url, params, settings.twilio_auth_token)} if signed else {}
    return client.post(path, data=params, headers=headers)


def fresh(model, id_):
    return db.session.get(model, id_, populate_existing=True)


def test_unsigned_or_wrongly_signed_requests_are_refused(client, app, placed):
    p = placed
    path = f"/hooks/ivr/voice/{p.attempt_id}/status"
    params = {"CallSid": p.call_sid, "CallStatus": "completed"}
    assert post(client, app, path, params, signed=False).status_code == 403
    forged = client.post(path, data=params, headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"})
    assert forged.status_code == 403
    assert fresh(Attempt, p.attempt_id).state is AttemptState.IN_PROGRESS
    assert post(client, app, path, params).status_code == 204
    assert fresh(Attempt, p.attempt_id).state is AttemptState.COMPLETED


def test_status_callbacks_never_move_an_attempt_backwards(client, app, placed):
    p = placed
    path = f"/hooks/ivr/voice/{p.attempt_id}/status"
    for status in ("initiated", "completed", "ringing", "in-progress", "completed"):
        assert post(client, app, path, {"CallSid": p.call_sid, "CallStatus": status}).status_code == 204
    row = fresh(Attempt, p.attempt_id)
    assert row.state is AttemptState.COMPLETED and row.provider_status == "completed"


def test_no_answer_moves_the_ladder_on_sooner(client, app, placed):
    p = placed
    planned = fresh(Recipient, p.recipient_id).next_action_at
    post(
        client, app, f"/hooks/ivr/voice/{p.attempt_id}/status", {"CallSid": "CA1", "CallStatus": "no-answer"}
    )
    assert fresh(Attempt, p.attempt_id).state is AttemptState.NO_ANSWER
    assert fresh(Recipient, p.recipient_id).next_action_at < planned


def test_the_voice_menu_records_confirmed_answers(client, app, placed):
    p = placed
    base = f"/hooks/ivr/voice/{p.attempt_id}"
    start = post(client, app, f"{base}/start", {"CallSid": "CA1", "AnsweredBy": "human"})
    assert start.status_code == 200 and start.mimetype == "text/xml"
    assert "Polly.Joanna" in start.text and "How are you?" in start.text
    readback = post(client, app, f"{base}/q/0", {"CallSid": "CA1", "Digits": "2"})
    assert "You pressed 2, Injured. Press 1 to confirm, or 9 to re-enter." in readback.text
    assert service.current_answers(recipient_id=p.recipient_id) == {}  # nothing recorded before confirmation
    reenter = post(client, app, f"{base}/q/0/confirm/2", {"CallSid": "CA1", "Digits": "9"})
    assert ET.fromstring(reenter.text).find("Gather").get("action").endswith(f"{base}/q/0")
    confirmed = post(client, app, f"{base}/q/0/confirm/1", {"CallSid": "CA1", "Digits": "1"})
    assert ET.fromstring(confirmed.text).find("Gather").get("action").endswith(f"{base}/q/1")
    # Twilio retries the same webhook: recorded once.
    post(client, app, f"{base}/q/0/confirm/1", {"CallSid": "CA1", "Digits": "1"})
    post(client, app, f"{base}/q/1/confirm/2", {"CallSid": "CA1", "Digits": "1"})
    history = service.answer_history(recipient_id=p.recipient_id)
    assert [(a.question_key, a.value, a.channel.value) for a in history] == [
        ("safety", "1", "voice"),
        ("work", "2", "voice"),
    ]
    assert fresh(Recipient, p.recipient_id).state is RecipientState.ANSWERED


def test_answering_machine_gets_a_message_and_the_sms_link_follows(client, app, placed, outbound, backend):
    p = placed
    reply = post(
        client,
        app,
        f"/hooks/ivr/voice/{p.attempt_id}/start",
        {"CallSid": "CA1", "AnsweredBy": "machine_start"},
    )
    assert "text message" in reply.text and "<Gather" not in reply.text
    # The later "completed" does not turn the machine into a completed call.
    post(
        client, app, f"/hooks/ivr/voice/{p.attempt_id}/status", {"CallSid": "CA1", "CallStatus": "completed"}
    )
    assert fresh(Attempt, p.attempt_id).state is AttemptState.MACHINE
    db.session.commit()
    dispatch.run(out=outbound, now=utcnow)  # the follow-up is due from the moment the machine answered
    assert len(backend.messages) == 1 and "/r/" in backend.messages[0]["body"]


def test_sms_status_and_undelivered_error_code(client, app, world, outbound):
    broadcast = service.start_broadcast(
        organization_id=world.org.id,
        template="earthquake",
        audience={"staff_ids": [world.staff[0].id]},
        channels=["sms"],
        actor="t",
        now=NOW,
    )
    dispatch.run(out=outbound, now=lambda: NOW)
    attempt = db.session.scalar(select(Attempt).where(Attempt.broadcast_id == broadcast.id))
    path = f"/hooks/ivr/sms/{attempt.id}/status"
    post(
        client,
        app,
        path,
        {"MessageSid": attempt.provider_sid, "MessageStatus": "undelivered", "ErrorCode": "30003"},
    )
    post(client, app, path, {"MessageSid": attempt.provider_sid, "MessageStatus": "sent"})
    row = fresh(Attempt, attempt.id)
    assert row.state is AttemptState.FAILED and row.error_code == "30003"


def test_sms_reply_from_a_messaged_number_is_parsed_as_answers(client, app, world, outbound):
    broadcast = service.start_broadcast(
        organization_id=world.org.id,
        template="earthquake",
        audience={"staff_ids": [world.staff[0].id]},
        channels=["sms"],
        actor="t",
        now=NOW,
    )
    dispatch.run(out=outbound, now=lambda: NOW)
    reply = post(client, app, "/hooks/ivr/sms-inbound", {"From": "+819000000100", "Body": "1 2"})
    assert "回答を受け付けました" in reply.text
    recipient = db.session.scalar(select(Recipient).where(Recipient.broadcast_id == broadcast.id))
    assert {k: a.value for k, a in service.current_answers(recipient_id=recipient.id).items()} == {
        "safety": "1",
        "work": "2",
    }
    assert service.current_answers(recipient_id=recipient.id)["safety"].channel.value == "sms"
    stranger = post(client, app, "/hooks/ivr/sms-inbound", {"From": "+819000000555", "Body": "1 2"})
    assert "例: 1 2" in stranger.text
