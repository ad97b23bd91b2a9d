"""Every Twilio-facing route (``/hooks/…``) with whatever parameters a correctly signed request may carry: odd
statuses, keys pressed that are no option, ids that do not exist, huge and strange text. Never a 500 — the
carrier would read the call out an "application error" — and never refused once signed."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask, url_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core import db
from core.telephony.signature import sign_request
from ivr import dispatch, service
from ivr.models import Attempt

TWILIO_PARAMS = (
    "AccountSid",
    "CallSid",
    "CallStatus",
    "AnsweredBy",
    "Digits",
    "FinishedOnKey",
    "From",
    "To",
    "Caller",
    "Called",
    "Direction",
    "Body",
    "MessageSid",
    "SmsSid",
    "MessageStatus",
    "SmsStatus",
    "ErrorCode",
    "ErrorMessage",
    "RecordingUrl",
    "RecordingSid",
    "RecordingDuration",
    "DialCallStatus",
    "DialCallSid",
    "DialCallDuration",
    "QueueResult",
    "QueueTime",
    "SequenceNumber",
    "CallDuration",
    "Timestamp",
)
PLAUSIBLE = {
    "CallStatus": [
        "queued",
        "initiated",
        "ringing",
        "in-progress",
        "completed",
        "busy",
        "no-answer",
        "failed",
        "canceled",
    ],
    "MessageStatus": ["queued", "sent", "delivered", "undelivered", "failed", "received"],
    "AnsweredBy": ["human", "machine_start", "machine_end_beep", "fax", "unknown"],
    "DialCallStatus": ["completed", "busy", "no-answer", "failed", "canceled"],
    "QueueResult": ["bridged", "leave", "hangup", "error"],
    "Digits": ["", "1", "2", "9", "#", "*", "12", "0" * 50],
    "From": ["+819000000100", "+15550100101", "anonymous", "", "client:agent-1"],
}
TEXT = st.text(max_size=300) | st.sampled_from(
    ["", " ", "null", "\x00", "999999999999999999999", "1.5", "-1", "%s", "{0}"]
)


@st.composite
def form(draw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in draw(st.lists(st.sampled_from(TWILIO_PARAMS), unique=True, max_size=8)):
        choices = PLAUSIBLE.get(name)
        out[name] = draw(st.sampled_from(choices) | TEXT) if choices else draw(TEXT)
    for name in draw(st.lists(st.text(min_size=1, max_size=20), max_size=3)):
        out.setdefault(name, draw(TEXT))
    return out


def _hook_rules(app: Flask) -> list[Any]:
    return sorted((r for r in app.url_map.iter_rules() if r.rule.startswith("/hooks/")), key=lambda r: r.rule)


@pytest.fixture()
def attempt_ids(world: Any, outbound: Any) -> list[int]:
    """Ids that exist: a call and an SMS of a running broadcast."""
    service.start_broadcast(
        organization_id=world.org.id,
        template="earthquake",
        audience={"staff_ids": [world.staff[0].id]},
        actor="t",
    )
    dispatch.run(out=outbound)
    service.start_broadcast(
        organization_id=world.org.id,
        template="earthquake",
        audience={"staff_ids": [world.staff[1].id]},
        channels=["voice"],
        actor="t",
    )
    dispatch.run(out=outbound)
    ids = list(db.session.scalars(select(Attempt.id)))
    db.session.commit()
    return ids


def test_there_are_hooks_to_fuzz(app: Flask) -> None:
    assert len(_hook_rules(app)) >= 10


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_signed_webhooks_with_any_parameters_never_fail(
    app: Flask, client: Any, attempt_ids: list[int], data: Any
) -> None:
    settings_ = app.extensions["lifeline.settings"]
    rule = data.draw(st.sampled_from(_hook_rules(app)), label="route")
    values: dict[str, Any] = {}
    for name in rule.arguments:
        if name in ("attempt_id",):
            values[name] = data.draw(st.sampled_from(attempt_ids) | st.integers(0, 2**31), label=name)
        elif name == "index":
            values[name] = data.draw(st.integers(0, 6), label=name)
        else:
            values[name] = data.draw(st.text(alphabet="0123456789abc#*", min_size=1, max_size=4), label=name)
    query = data.draw(
        st.dictionaries(st.sampled_from(["retry", "line", "target", "step", "x"]), TEXT, max_size=2)
    )
    params = data.draw(form(), label="form")
    with app.test_request_context():
        path = url_for(rule.endpoint, **values)
    if query:
        path += "?" + urlencode(query)
    signature = sign_request(
        settings_.public_base_url.rstrip("/") + path, params, settings_.twilio_auth_token
    )
    response = client.post(path, data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code < 500, (path, params, response.text[:500])
    assert response.status_code != 403, (path, params)  # a valid signature is never refused
