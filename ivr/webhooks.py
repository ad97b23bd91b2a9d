"""Twilio webhooks of the safety-check calls and messages (``/hooks/ivr/...``).

Every view checks ``X-Twilio-Signature`` (``@twilio_webhook``), is exempt from CSRF (Twilio has no session) and
is idempotent: Twilio retries on timeouts and status callbacks arrive out of order, so each handler either
re-reads state before changing it (answers) or lets :func:`ivr.service.record_provider_status` ignore anything
that would move an attempt backwards.

When the database cannot be reached, ``@spool.outage_fallback`` answers instead: the caller hears the same
TwiML (built from the answer context the dispatcher stored), and what would have been written is spooled and
stored once the database is back (:mod:`ivr.spool`).
"""

from __future__ import annotations

import contextlib

from flask import Blueprint, Response, current_app, request

from core import db
from core.telephony.signature import twilio_webhook
from core.telephony.twiml import TWIML_MIMETYPE, MessagingResponse
from core.web import whole_number
from ivr import service, spool, twiml
from ivr.dispatch import hooks_base
from ivr.models import AnswerChannel, Attempt, Recipient
from ivr.service import AnswerRefused

bp = Blueprint("ivr_hooks", __name__, url_prefix="/hooks/ivr")


def _xml(body: str) -> Response:
    return Response(body, mimetype=TWIML_MIMETYPE)


def _script(attempt_id: int) -> tuple[twiml.CallScript, Attempt, Recipient] | None:
    attempt = db.session.get(Attempt, attempt_id)
    if attempt is None:
        return None
    recipient = db.session.get(Recipient, attempt.recipient_id)
    broadcast = service.get_broadcast(broadcast_id=attempt.broadcast_id)
    if recipient is None:
        return None
    settings = current_app.extensions["lifeline.settings"]
    script = twiml.CallScript(
        template=service.snapshot(broadcast),
        language=recipient.language,
        base=f"{hooks_base(settings)}/voice/{attempt_id}",
    )
    return script, attempt, recipient


def _closed(script: twiml.CallScript, attempt: Attempt) -> bool:
    return not service.accepts_answers(service.get_broadcast(broadcast_id=attempt.broadcast_id))


@bp.post("/voice/<int:attempt_id>/start")
@twilio_webhook
@spool.outage_fallback(spool.voice_start_offline)
def voice_start(attempt_id: int) -> Response:
    found = _script(attempt_id)
    if found is None:
        return _xml(twiml.empty())
    script, attempt, recipient = found
    spool.remember_recipient(
        current_app.extensions["lifeline.settings"],
        recipient=recipient,
        broadcast=service.get_broadcast(broadcast_id=attempt.broadcast_id),
        attempt_id=attempt_id,
    )
    answered_by = request.form.get("AnsweredBy", "")
    if service.is_machine(answered_by):
        service.machine_answered(attempt_id=attempt_id, answered_by=answered_by)
        return _xml(twiml.machine(script))
    service.record_provider_status(
        attempt_id=attempt_id,
        status="in-progress",
        provider_sid=request.form.get("CallSid"),
        answered_by=answered_by or None,
    )
    if _closed(script, attempt):
        return _xml(twiml.thanks(script))
    return _xml(twiml.greeting(script))


@bp.post("/voice/<int:attempt_id>/ask/<int:index>")
@twilio_webhook
@spool.outage_fallback(spool.voice_ask_offline)
def voice_ask(attempt_id: int, index: int) -> Response:
    found = _script(attempt_id)
    if found is None or index >= len(found[0].template.questions):
        return _xml(twiml.empty())
    retry = request.args.get("retry", "0")
    return _xml(twiml.ask(found[0], index, retry=whole_number(retry, maximum=9) or 0))


@bp.post("/voice/<int:attempt_id>/q/<int:index>")
@twilio_webhook
@spool.outage_fallback(spool.voice_pressed_offline)
def voice_pressed(attempt_id: int, index: int) -> Response:
    found = _script(attempt_id)
    if found is None or index >= len(found[0].template.questions):
        return _xml(twiml.empty())
    return _xml(twiml.pressed(found[0], index, request.form.get("Digits", "")))


@bp.post("/voice/<int:attempt_id>/q/<int:index>/confirm/<value>")
@twilio_webhook
@spool.outage_fallback(spool.voice_confirm_offline)
def voice_confirm(attempt_id: int, index: int, value: str) -> Response:
    found = _script(attempt_id)
    if found is None or index >= len(found[0].template.questions):
        return _xml(twiml.empty())
    script, attempt, recipient = found
    if not twiml.confirmed_is(request.form.get("Digits", "")):
        return _xml(twiml.ask(script, index))
    question = script.template.questions[index]
    current = service.current_answers(recipient_id=recipient.id).get(question.key)
    # Twilio retries a webhook that timed out: the same confirmation from the same call is recorded once.
    if current is None or current.value != value or current.attempt_id != attempt.id:
        try:
            service.record_answers(
                recipient=recipient,
                answers={question.key: value},
                channel=AnswerChannel.VOICE,
                attempt_id=attempt.id,
            )
        except AnswerRefused:
            return _xml(twiml.thanks(script))
    return _xml(twiml.after_answer(script, index))


@bp.post("/voice/<int:attempt_id>/recorded")
@twilio_webhook
@spool.outage_fallback(spool.voice_recorded_offline)
def voice_recorded(attempt_id: int) -> Response:
    found = _script(attempt_id)
    if found is None:
        return _xml(twiml.empty())
    script, attempt, recipient = found
    url = request.form.get("RecordingUrl", "")
    current = service.current_answers(recipient_id=recipient.id).get(service.VOICE_MESSAGE_KEY)
    if url and (current is None or current.free_text != f"recording: {url}"):
        with contextlib.suppress(AnswerRefused):
            service.record_answers(
                recipient=recipient,
                answers={},
                free_text=f"recording: {url}",
                channel=AnswerChannel.VOICE,
                attempt_id=attempt.id,
            )
    return _xml(twiml.thanks(script))


@bp.post("/voice/<int:attempt_id>/goodbye")
@twilio_webhook
@spool.outage_fallback(spool.voice_goodbye_offline)
def voice_goodbye(attempt_id: int) -> Response:
    found = _script(attempt_id)
    return _xml(twiml.goodbye(found[0]) if found else twiml.empty())


@bp.post("/voice/<int:attempt_id>/status")
@twilio_webhook
@spool.outage_fallback(spool.voice_status_offline)
def voice_status(attempt_id: int) -> tuple[str, int]:
    form = request.form
    service.record_provider_status(
        attempt_id=attempt_id,
        status=form.get("CallStatus", ""),
        provider_sid=form.get("CallSid"),
        answered_by=form.get("AnsweredBy") or None,
        error_code=form.get("ErrorCode") or None,
        error_reason=form.get("ErrorMessage") or None,
    )
    return "", 204


@bp.post("/sms/<int:attempt_id>/status")
@twilio_webhook
@spool.outage_fallback(spool.sms_status_offline)
def sms_status(attempt_id: int) -> tuple[str, int]:
    form = request.form
    service.record_provider_status(
        attempt_id=attempt_id,
        status=form.get("MessageStatus") or form.get("SmsStatus") or "",
        provider_sid=form.get("MessageSid") or form.get("SmsSid"),
        error_code=form.get("ErrorCode") or None,
        error_reason=form.get("ErrorMessage") or None,
    )
    return "", 204


SMS_THANKS = {
    "ja": "回答を受け付けました。ありがとうございます。",
    "en": "Thank you, your answer was recorded.",
}
SMS_HELP = {
    "ja": "回答は番号で送ってください（例: 1 2）。",
    "en": "Please reply with the numbers of your answers, e.g. 1 2.",
}


@bp.post("/sms-inbound")
@twilio_webhook
@spool.outage_fallback(spool.sms_inbound_offline)
def sms_inbound() -> Response:
    settings = current_app.extensions["lifeline.settings"]
    response = MessagingResponse()
    try:
        recipient = service.record_sms_reply(
            from_number=request.form.get("From", ""),
            body=request.form.get("Body", ""),
            secret=settings.secret_key,
        )
    except AnswerRefused:
        recipient = None
    if recipient is not None:
        response.message(SMS_THANKS.get(recipient.language, SMS_THANKS["ja"]))
    elif request.form.get("Body", "").strip():
        response.message(SMS_HELP["ja"] + "\n" + SMS_HELP["en"])
    return _xml(str(response))
