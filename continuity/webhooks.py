"""The carrier's voice webhooks for inbound lines: parse the request, call the service, answer with TwiML.

Every route checks ``X-Twilio-Signature`` (``twilio_webhook``). Retries are harmless: a call is recorded once per
CallSid and a leg once per position in the line-up; the first outcome reported for a leg is the one kept.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from flask import Blueprint, Response, abort, current_app, request

from continuity import plans, service, twiml
from continuity.models import InboundCall, InboundLine, LegOutcome, LineKind
from continuity.routing import RoutingDecision, TargetKind
from core import db
from core.config import Settings
from core.telephony.signature import twilio_webhook
from core.telephony.twiml import TWIML_MIMETYPE
from core.time import utcnow
from core.web import whole_number

log = logging.getLogger(__name__)

bp = Blueprint("continuity_hooks", __name__, url_prefix="/hooks/voice")

MAX_ATTEMPT = 1000
PIN_TRIES = 3
_DIAL_OUTCOMES = {
    "completed": LegOutcome.COMPLETED,
    "answered": LegOutcome.COMPLETED,
    "busy": LegOutcome.BUSY,
    "no-answer": LegOutcome.NO_ANSWER,
    "failed": LegOutcome.FAILED,
    "canceled": LegOutcome.CANCELED,
}
_QUEUE_OUTCOMES = {
    "bridged": LegOutcome.COMPLETED,
    "leave": LegOutcome.LEFT_QUEUE,
    "hangup": LegOutcome.HUNG_UP,
    "redirected": LegOutcome.LEFT_QUEUE,
}


def _settings() -> Settings:
    settings: Settings = current_app.extensions["lifeline.settings"]
    return settings


def _twiml(document: str) -> Response:
    return Response(document, mimetype=TWIML_MIMETYPE)


def _attempt() -> int:
    raw = request.args.get("attempt", "0")
    attempt = whole_number(raw, maximum=MAX_ATTEMPT)
    if attempt is None:
        abort(400)
    return attempt


def _call_sid() -> str:
    sid = request.form.get("CallSid") or request.args.get("call") or ""
    # A carrier's call id is short printable ASCII; anything else (a NUL, a control character) is refused here so
    # that it never reaches a query.
    if not sid or len(sid) > 64 or not (sid.isascii() and sid.isprintable()):
        abort(400)
    return sid


def _caller() -> str:
    return request.form.get("From", "")


def _urls(call_sid: str) -> twiml.CallUrls:
    return twiml.CallUrls(call_sid)


def _render(line: InboundLine, call_sid: str, decision: RoutingDecision) -> Response:
    faq: tuple[plans.FaqEntry, ...] = ()
    if decision.target is not None and decision.target.kind is TargetKind.FAQ_MENU:
        faq = service.faq_of_line(line=line)
    return _twiml(twiml.for_decision(decision, _urls(call_sid), faq))


def _call_and_line() -> tuple[InboundCall, InboundLine] | None:
    return service.call_and_line_by_sid(call_sid=_call_sid())


@bp.post("/inbound")
@twilio_webhook
def inbound() -> Response:
    """A call to one of the lines (looked up by ``To``)."""
    line = service.line_by_number(number=request.form.get("To", ""))
    if line is not None and line.kind is LineKind.AGENT_LOGIN:
        return _agent_login_start(line)
    if line is None or line.plan is None:
        return _twiml(twiml.document(twiml.NOT_IN_SERVICE))
    call_sid = _call_sid()
    decision = service.route_call(
        line=line, call_sid=call_sid, caller=_caller(), attempt=0, settings=_settings(), now=utcnow()
    )
    return _render(line, call_sid, decision)


@bp.post("/next")
@twilio_webhook
def next_target() -> Response:
    """Back from a target: record how it ended; someone took the call → hang up; otherwise the next target."""
    attempt = _attempt()
    found = _call_and_line()
    if found is None:
        return _twiml(twiml.document(twiml.GOODBYE))
    call, line = found
    now = utcnow()
    position = attempt - 1
    dial_status = request.form.get("DialCallStatus")
    queue_result = request.form.get("QueueResult")
    if dial_status:
        reported = _DIAL_OUTCOMES.get(dial_status, LegOutcome.FAILED)
        duration = request.form.get("DialCallDuration", "")
        recorded = service.finish_leg(
            call=call,
            position=position,
            outcome=reported,
            now=now,
            dial_call_sid=request.form.get("DialCallSid") or None,
            duration_s=whole_number(duration),
        )
    else:
        reported = _QUEUE_OUTCOMES.get(queue_result, LegOutcome.FAILED) if queue_result else LegOutcome.PLAYED
        recorded = service.finish_leg(call=call, position=position, outcome=reported, now=now)
    # A retried or late callback meets the outcome recorded first; that one decides, so a duplicate
    # can neither hang up a call that has moved on nor send it on twice.
    outcome = recorded if recorded is not None else reported
    if outcome is LegOutcome.COMPLETED:
        service.end_call(call=call, outcome="completed", now=now)
        return _twiml(twiml.document())
    if outcome is LegOutcome.HUNG_UP:
        service.end_call(call=call, outcome="hung_up", now=now)
        return _twiml(twiml.document())
    decision = service.route_call(
        line=line,
        call_sid=call.call_sid,
        caller=_caller(),
        attempt=attempt,
        settings=_settings(),
        now=now,
        call=call,
    )
    return _render(line, call.call_sid, decision)


@bp.post("/queue-wait")
@twilio_webhook
def queue_wait() -> Response:
    """Played, again and again, to a caller waiting in a queue; past the step's wait limit the caller leaves."""
    attempt = _attempt()
    max_wait = request.args.get("max_wait", "")
    waited = request.form.get("QueueTime", "0")
    found = _call_and_line()
    hold = None
    if found is not None:
        hold = service.queue_hold_message(call=found[0], line=found[1], position=attempt - 1)
    return _twiml(
        twiml.queue_wait(
            hold or twiml.QUEUE_HOLD,
            waited_s=whole_number(waited) or 0,
            max_wait_s=whole_number(max_wait) or 60,
        )
    )


@bp.post("/faq")
@twilio_webhook
def faq() -> Response:
    attempt = _attempt()
    round_raw = request.args.get("round", "0")
    round_ = whole_number(round_raw, maximum=99) if round_raw else None
    round_ = twiml.FAQ_ROUNDS if round_ is None else round_
    found = _call_and_line()
    urls = _urls(_call_sid())
    if found is None:
        return _twiml(twiml.then_continue(urls, attempt))
    entries = service.faq_of_line(line=found[1])
    digits = request.form.get("Digits", "")
    entry = next((e for e in entries if e.digit == digits), None)
    if entry is None:
        return _twiml(twiml.then_continue(urls, attempt))
    return _twiml(twiml.faq_answer(entry, urls, attempt, entries, round_))


@bp.post("/voicemail")
@twilio_webhook
def voicemail() -> Response:
    attempt = _attempt()
    found = _call_and_line()
    urls = _urls(_call_sid())
    recording_url = request.form.get("RecordingUrl", "")
    if found is None or not recording_url:
        return _twiml(twiml.then_continue(urls, attempt))
    call, _ = found
    duration = request.form.get("RecordingDuration", "0")
    service.record_voicemail(
        call=call,
        position=attempt - 1,
        caller=_caller(),
        recording_url=recording_url,
        recording_sid=request.form.get("RecordingSid") or None,
        duration_s=whole_number(duration) or 0,
        settings=_settings(),
    )
    return _twiml(twiml.document(twiml.VOICEMAIL_THANKS))


@bp.post("/sms-link")
@twilio_webhook
def sms_link() -> Response:
    """ "Press 2 to get an SMS with our status page": the text leaves after the transaction commits."""
    attempt = _attempt()
    found = _call_and_line()
    urls = _urls(_call_sid())
    if found is None or request.form.get("Digits") != "2":
        return _twiml(twiml.then_continue(urls, attempt))
    call, _ = found
    caller = _caller()
    from continuity import tasks

    sent = service.send_status_sms(
        call=call,
        position=attempt - 1,
        caller=caller,
        text=f"{twiml.SMS_TEXT.ja} / {twiml.SMS_TEXT.en}",
        settings=_settings(),
        send=tasks.send_sms_after_commit,
    )
    if sent:
        return _twiml(twiml.then_continue(urls, attempt, twiml.SMS_SENT))
    if not caller.startswith("+"):
        return _twiml(twiml.then_continue(urls, attempt, twiml.SMS_IMPOSSIBLE))
    return _twiml(twiml.then_continue(urls, attempt))


@bp.post("/callback")
@twilio_webhook
def callback() -> Response:
    attempt = _attempt()
    found = _call_and_line()
    urls = _urls(_call_sid())
    if found is None or request.form.get("Digits") != "1":
        return _twiml(twiml.then_continue(urls, attempt))
    caller = _caller()
    if not caller.startswith("+"):
        return _twiml(twiml.then_continue(urls, attempt, twiml.CALLBACK_IMPOSSIBLE))
    service.request_callback(call=found[0], position=attempt - 1, caller=caller, settings=_settings())
    return _twiml(twiml.document(twiml.CALLBACK_THANKS))


@bp.post("/status")
@twilio_webhook
def status() -> Response:
    """The call's status callback (configure it on the number): a call that ended closes its open legs."""
    call = service.call_by_sid(call_sid=_call_sid())
    if call is not None and request.form.get("CallStatus") in {
        "completed",
        "busy",
        "failed",
        "no-answer",
        "canceled",
    }:
        service.end_call(call=call, outcome="hung_up")
    return Response("", status=204)


# --- home agents calling in -----------------------------------------------------------------------------------


def _login_proof(call_sid: str, home_agent_id: int) -> str:
    """Ties the "available/away" step to the call that entered the right PIN."""
    key = _settings().secret_key.encode()
    return hmac.new(key, f"agent-login:{call_sid}:{home_agent_id}".encode(), hashlib.sha256).hexdigest()[:32]


def _agent_login_start(line: InboundLine) -> Response:
    agent = service.home_agent_by_caller(
        organization_id=line.organization_id, caller=_caller(), settings=_settings()
    )
    if agent is None:
        return _twiml(twiml.document(twiml.AGENT_UNKNOWN))
    if not agent.pin_hash:
        return _twiml(twiml.document(twiml.AGENT_NO_PIN))
    return _twiml(twiml.agent_pin_prompt(twiml.hook("agent-login/pin", line=line.id, tries=0)))


@bp.post("/agent-login/pin")
@twilio_webhook
def agent_pin() -> Response:
    line_id = request.args.get("line", "")
    tries_raw = request.args.get("tries", "0")
    line_number = whole_number(line_id)
    line = db.session.get(InboundLine, line_number) if line_number is not None else None
    if line is None or line.kind is not LineKind.AGENT_LOGIN:
        abort(400)
    agent = service.home_agent_by_caller(
        organization_id=line.organization_id, caller=_caller(), settings=_settings()
    )
    if agent is None:
        return _twiml(twiml.document(twiml.AGENT_UNKNOWN))
    tried = whole_number(tries_raw, maximum=PIN_TRIES)
    tries = tried + 1 if tried is not None else PIN_TRIES
    if not service.check_home_agent_pin(home_agent=agent, pin=request.form.get("Digits", "")):
        if tries >= PIN_TRIES:
            return _twiml(twiml.document(twiml.AGENT_WRONG_PIN))
        action = twiml.hook("agent-login/pin", line=line.id, tries=tries)
        return _twiml(twiml.agent_pin_prompt(action, twiml.AGENT_WRONG_PIN))
    call_sid = _call_sid()
    action = twiml.hook("agent-login/set", line=line.id, ok=_login_proof(call_sid, agent.id))
    return _twiml(twiml.agent_menu(action))


@bp.post("/agent-login/set")
@twilio_webhook
def agent_set() -> Response:
    line_id = request.args.get("line", "")
    line_number = whole_number(line_id)
    line = db.session.get(InboundLine, line_number) if line_number is not None else None
    if line is None:
        abort(400)
    agent = service.home_agent_by_caller(
        organization_id=line.organization_id, caller=_caller(), settings=_settings()
    )
    if agent is None or not hmac.compare_digest(
        request.args.get("ok", ""), _login_proof(_call_sid(), agent.id)
    ):
        abort(403)
    digits = request.form.get("Digits", "")
    if digits not in {"1", "2"}:
        return _twiml(twiml.document(twiml.GOODBYE))
    service.set_home_agent_available(home_agent=agent, available=digits == "1", via="phone")
    return _twiml(twiml.document(twiml.AGENT_AVAILABLE if digits == "1" else twiml.AGENT_AWAY))
