"""The simulated telephone network: plays calls and messages on a virtual clock.

Each call is a generator (its *process*) that yields how many virtual seconds pass before it continues — ring
for 4 s, speak a ``<Say>`` for 6 s, wait 5 s for keys… The scheduler resumes it when that time has come. HTTP to
the application (TwiML fetches, status callbacks, answer pages) happens inside those steps, never while the
state lock is held, so the application may call the simulator's REST API from inside a webhook.

Something that happens *to* a call from outside (cancelled over REST, redirected, the caller hangs up, a queued
caller is picked up by an agent) is an interrupt: an exception thrown into the call's generator at the point
where it waits.
"""

from __future__ import annotations

import inspect
import logging
import random
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeXml
import requests
from flask import Flask

from core.telephony.signature import sign_request
from core.telephony.simulator.clock import Clock, ManualClock, ScaledClock, Scheduler
from core.telephony.simulator.records import (
    API_VERSION,
    FINAL_CALL_STATUSES,
    FINAL_MESSAGE_STATUSES,
    InboundNumber,
    Process,
    SimCall,
    SimMail,
    SimMessage,
    Timeline,
    new_sid,
    rfc2822,
)
from core.telephony.simulator.scenario import Person, Scenario
from core.telephony.simulator.transport import (
    IncomingResponse,
    OutgoingRequest,
    Transport,
    TransportError,
    make_transport,
)
from core.telephony.simulator.webform import answer_link

log = logging.getLogger(__name__)

APPLICATION_ERROR_TEXT = "We are sorry, an application error has occurred. Goodbye."
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
MAX_DOCUMENTS_PER_CALL = 200
# How long a caller holds in a queue before giving up (unless the scenario makes them hang up sooner).
QUEUE_PATIENCE_S = 600.0
CALLBACK_RETRY_DELAYS_S = (5.0, 30.0)
_LINK = re.compile(r"https?://[^\s<>\"']+")
_SIP_CODES = {"completed": 200, "busy": 486, "no-answer": 487, "canceled": 487, "failed": 404}


class SimulatorError(Exception):
    """A request the simulated Twilio refuses; rendered as Twilio's error JSON."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


# --- interrupts thrown into a call's process --------------------------------------------------------------


class _Interrupt(Exception):
    pass


class _HangUp(_Interrupt):
    def __init__(self, status: str, by: str) -> None:
        super().__init__(f"{by} ended the call ({status})")
        self.status = status  # what an unanswered call becomes: canceled / completed
        self.by = by


class _Redirected(_Interrupt):
    def __init__(self, url: str | None, method: str, twiml: str | None) -> None:
        super().__init__("redirected over REST")
        self.url = url
        self.method = method
        self.twiml = twiml


class _Bridged(_Interrupt):
    def __init__(self, agent_call_sid: str, talk_s: float) -> None:
        super().__init__("picked up from the queue")
        self.agent_call_sid = agent_call_sid
        self.talk_s = talk_s


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _LeftQueue(Exception):
    pass


# --- TwiML documents --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """Where the next TwiML document comes from."""

    url: str | None
    method: str = "POST"
    params: Mapping[str, str] = field(default_factory=dict)
    twiml: str | None = None
    fallback_url: str | None = None
    fallback_method: str = "POST"


@dataclass(frozen=True)
class _Document:
    verbs: Sequence[Element]
    url: str | None


class _Stop:
    """Returned by a verb that ends the call (as opposed to ``None``: go on with the next verb)."""


_STOP = _Stop()
_Next = _Source | _Stop | None


def _method(value: str | None, default: str = "POST") -> str:
    value = (value or default).upper()
    return value if value in {"GET", "POST"} else default


def _say_seconds(text: str) -> float:
    # Roughly how long a TTS voice takes: kana/kanji are read slower per character than Latin letters.
    seconds = sum(0.15 if ord(ch) >= 0x2E80 else 0.065 for ch in text)
    return max(0.5, round(seconds, 2))


def _loops(element: Element, default: int = 1) -> int:
    try:
        loop = int(element.get("loop", default))
    except ValueError:
        loop = default
    # loop="0" means "until the caller hangs up"; a person listens to a few rounds.
    return 3 if loop <= 0 else min(loop, 10)


def _float(value: str | None, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


def first_link(text: str) -> str | None:
    match = _LINK.search(text)
    return match.group(0).rstrip(".,;:!?)」。") if match else None


class Simulator:
    """The network. Thread-safe; one instance per simulator app."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        speed: float = 1.0,
        scenario: Scenario | None = None,
        clock: Clock | None = None,
        transport: Transport | requests.Session | Flask | None = None,
        base_url: str = "http://127.0.0.1:5050",
        webhook_timeout_s: float = 15.0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.scenario = scenario or Scenario()
        self.clock: Clock = clock or ScaledClock(speed)
        self.transport = make_transport(transport)
        self.base_url = base_url.rstrip("/")
        self.webhook_timeout_s = webhook_timeout_s
        self.scheduler = Scheduler(self.clock)
        self._lock = threading.RLock()
        self.calls: dict[str, SimCall] = {}
        self.messages: dict[str, SimMessage] = {}
        self.mail: list[SimMail] = []
        self.numbers: dict[str, InboundNumber] = {}
        self.queues: dict[str, deque[str]] = {}
        self._next_call_slot = 0.0
        self._chaos = random.Random(self.scenario.seed)
        self.clock.attach(self.scheduler)

    # --- lifecycle ----------------------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.now()

    def stop(self) -> None:
        """Stop the clock thread (if any). Pending events are dropped."""
        self.clock.detach()
        self.scheduler.clear()

    def reset(self) -> None:
        """Forget every call, message, e-mail and queue (the registry of inbound numbers is kept)."""
        with self._lock:
            self.scheduler.clear()
            for call in self.calls.values():
                process, call.process = call.process, None
                if process is not None and inspect.getgeneratorstate(process) != inspect.GEN_RUNNING:
                    process.close()
            self.calls.clear()
            self.messages.clear()
            self.mail.clear()
            self.queues.clear()
            self._next_call_slot = 0.0

    @property
    def manual_clock(self) -> ManualClock | None:
        return self.clock if isinstance(self.clock, ManualClock) else None

    # --- REST: calls ---------------------------------------------------------------------------------------

    def create_call(self, params: Mapping[str, Any]) -> SimCall:
        """A validated ``CreateCall`` form (typed values); the call starts playing on the clock."""
        to, from_ = str(params["To"]), str(params["From"])
        url = params.get("Url")
        twiml = params.get("Twiml")
        if not url and not twiml:
            if params.get("ApplicationSid"):
                raise SimulatorError(
                    21205, "ApplicationSid is not supported by the simulator; pass Url or Twiml"
                )
            raise SimulatorError(21205, "Url parameter is required. Pass Url, Twiml or ApplicationSid.")
        events = params.get("StatusCallbackEvent") or ["completed"]
        unknown = [e for e in events if e not in CALL_EVENTS]
        if unknown:
            raise SimulatorError(70002, f"Invalid StatusCallbackEvent value(s): {', '.join(unknown)}")
        machine_detection = params.get("MachineDetection")
        if machine_detection and machine_detection not in {"Enable", "DetectMessageEnd"}:
            raise SimulatorError(
                21234, f"MachineDetection must be Enable or DetectMessageEnd, not {machine_detection}"
            )
        now = self.now()
        person = self.scenario.person(to)
        call = SimCall(
            sid=new_sid("CA"),
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            direction="outbound-api",
            created_at=now,
            updated_at=now,
            person=person,
            url=str(url) if url else None,
            method=_method(params.get("Method")),
            twiml=str(twiml) if twiml else None,
            fallback_url=params.get("FallbackUrl"),
            fallback_method=_method(params.get("FallbackMethod")),
            status_callback=params.get("StatusCallback"),
            status_callback_method=_method(params.get("StatusCallbackMethod")),
            status_callback_events=frozenset(events),
            timeout_s=float(min(max(int(params.get("Timeout", 60)), 5), 600)),
            time_limit_s=float(params.get("TimeLimit", 14400)),
            machine_detection=machine_detection or None,
            digits_script=list(person.digits),
            timeline=Timeline(now),
        )
        with self._lock:
            delay = 0.0
            cps = self.scenario.network.cps
            if cps:
                slot = max(now, self._next_call_slot)
                self._next_call_slot = slot + 1.0 / cps
                delay = slot - now
            call.queue_time_ms = round(delay * 1000)
            self.calls[call.sid] = call
            call.timeline.add(now, "created", {"to": to, "from": from_, "url": call.url})
        self._spawn(call, self._outbound_call(call, delay))
        return call

    def update_call(self, sid: str, params: Mapping[str, Any]) -> SimCall:
        call = self.get_call(sid)
        status = params.get("Status")
        with self._lock:
            if params.get("StatusCallback"):
                call.status_callback = params["StatusCallback"]
                call.status_callback_method = _method(params.get("StatusCallbackMethod"))
            if status:
                if call.status in FINAL_CALL_STATUSES or call.hangup_requested:
                    return call
                if call.direction == "outbound-dial":
                    raise SimulatorError(21220, "The simulator ends <Dial> legs through their parent call")
                if status == "canceled" and call.status not in {"queued", "ringing"}:
                    return call  # Twilio ignores a cancel once the call is answered
                final = "canceled" if call.status in {"queued", "ringing"} else "completed"
                call.hangup_requested = final
                call.timeline.add(self.now(), "api-hangup", {"requested": status})
                self._interrupt(call, _HangUp(final, by="api"))
                return call
            url, twiml = params.get("Url"), params.get("Twiml")
            if url or twiml:
                if call.status != "in-progress" or call.direction == "outbound-dial":
                    raise SimulatorError(21220, "Call is not in-progress. Cannot redirect.")
                call.timeline.add(self.now(), "api-redirect", {"url": url, "twiml": bool(twiml)})
                self._interrupt(call, _Redirected(url, _method(params.get("Method")), twiml))
        return call

    def get_call(self, sid: str) -> SimCall:
        with self._lock:
            call = self.calls.get(sid)
        if call is None:
            raise SimulatorError(
                20404,
                f"The requested resource /{API_VERSION}/Accounts/{self.account_sid}/Calls/{sid}.json was not found",
                404,
            )
        return call

    # --- REST: messages -----------------------------------------------------------------------------------

    def create_message(self, params: Mapping[str, Any]) -> SimMessage:
        to = str(params["To"])
        from_ = params.get("From")
        service = params.get("MessagingServiceSid")
        if not from_ and not service:
            raise SimulatorError(21603, "A 'From' phone number is required.")
        body = str(params.get("Body") or "")
        if not body and not params.get("MediaUrl") and not params.get("ContentSid"):
            raise SimulatorError(21602, "Message body is required.")
        if len(body) > 1600:
            raise SimulatorError(21617, "The concatenated message body exceeds the 1600 character limit.")
        return self._new_message(
            to=to,
            from_=str(from_ or service),
            body=body,
            status_callback=params.get("StatusCallback"),
            messaging_service_sid=service,
        )

    def _new_message(
        self,
        *,
        to: str,
        from_: str,
        body: str,
        status_callback: str | None,
        messaging_service_sid: str | None = None,
        direction: str = "outbound-api",
    ) -> SimMessage:
        now = self.now()
        message = SimMessage(
            sid=new_sid("SM"),
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            body=body,
            created_at=now,
            updated_at=now,
            person=self.scenario.person(to),
            direction=direction,
            status_callback=status_callback,
            messaging_service_sid=messaging_service_sid,
            timeline=Timeline(now),
        )
        with self._lock:
            self.messages[message.sid] = message
            message.timeline.add(now, "queued", {"to": to, "from": from_})
        self.scheduler.after(
            0.0, lambda: self._message_status(message, "queued"), f"sms {message.sid} queued"
        )
        self.scheduler.after(0.5, lambda: self._message_sent(message), f"sms {message.sid} sent")
        return message

    def get_message(self, sid: str) -> SimMessage:
        with self._lock:
            message = self.messages.get(sid)
        if message is None:
            raise SimulatorError(
                20404,
                f"The requested resource /{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json was not found",
                404,
            )
        return message

    def _message_sent(self, message: SimMessage) -> None:
        person = message.person
        if person.sms_status == "failed":
            self._message_status(message, "failed", 30008, "Unknown error")
            return
        message.sent_at = self.now()
        self._message_status(message, "sent")
        self.scheduler.after(
            self.scenario.network.sms_delivery_s,
            lambda: self._message_delivered(message),
            f"sms {message.sid} dlr",
        )

    def _message_delivered(self, message: SimMessage) -> None:
        person = message.person
        if person.sms_status == "undelivered":
            self._message_status(message, "undelivered", 30003, "Unreachable destination handset")
            return
        self._message_status(message, "delivered")
        link = first_link(message.body)
        if link is not None and person.sms_link_after_s is not None:
            self.scheduler.after(
                person.sms_link_after_s,
                lambda: self._visit(message.timeline, message.visits, link, person),
                f"sms {message.sid} link opened",
            )

    def _message_status(
        self,
        message: SimMessage,
        status: str,
        error_code: int | None = None,
        error_message: str | None = None,
    ) -> None:
        now = self.now()
        with self._lock:
            if message.status in FINAL_MESSAGE_STATUSES:
                return
            message.status = status
            message.updated_at = now
            message.error_code = error_code
            message.error_message = error_message
            message.timeline.add(now, status, {"error_code": error_code} if error_code else None)
        if not message.status_callback:
            return
        params = {
            "AccountSid": message.account_sid,
            "ApiVersion": API_VERSION,
            "From": message.from_,
            "To": message.to,
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "SmsMessageSid": message.sid,
            "MessageStatus": status,
            "SmsStatus": status,
        }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        self._callback(message.timeline, message.status_callback, "POST", params, f"sms-{status}")

    # --- people opening links -----------------------------------------------------------------------------

    def _visit(self, timeline: Timeline, visits: list[dict[str, Any]], url: str, person: Person) -> None:
        timeline.add(self.now(), "link-opened", {"url": url})
        visit = answer_link(self.transport, url, person.form_answers, timeout_s=self.webhook_timeout_s)
        with self._lock:
            visits.append(visit.as_dict())
            timeline.add(
                self.now(),
                "form-submitted"
                if visit.submit_status is not None and visit.error is None
                else "visit-failed",
                visit.as_dict(),
            )

    def receive_mail(self, *, to: str, subject: str, body: str, from_: str) -> SimMail:
        now = self.now()
        person = self.scenario.person(to)
        mail = SimMail(
            id=uuid.uuid4().hex,
            to=to,
            from_=from_,
            subject=subject,
            body=body,
            received_at=now,
            person=person,
            timeline=Timeline(now),
        )
        with self._lock:
            self.mail.append(mail)
            mail.timeline.add(now, "received", {"subject": subject})
        link = first_link(body)
        if link is not None and person.email_link_after_s is not None:
            self.scheduler.after(
                person.email_link_after_s,
                lambda: self._visit(mail.timeline, mail.visits, link, person),
                f"mail {mail.id} link opened",
            )
        return mail

    # --- inbound ------------------------------------------------------------------------------------------

    def register_number(self, number: InboundNumber) -> None:
        with self._lock:
            self.numbers[number.number] = number

    def inbound_call(
        self,
        *,
        to: str,
        from_: str,
        voice_url: str | None = None,
        method: str | None = None,
        digits: Sequence[str] | None = None,
        hangup_after_s: float | None = None,
        status_callback: str | None = None,
    ) -> SimCall:
        """A simulated person (``from_``) calls one of the application's numbers (``to``)."""
        registered = self.numbers.get(to)
        url = voice_url or (registered.voice_url if registered else None)
        if not url:
            raise SimulatorError(21205, f"No voice URL for {to}: pass voice_url or register the number first")
        person = self.scenario.person(from_)
        if digits is not None:
            person = replace(person, voice="answer", digits=tuple(str(d) for d in digits))
        if hangup_after_s is not None:
            person = replace(person, hangup_after_s=hangup_after_s)
        now = self.now()
        callback = status_callback or (registered.status_callback if registered else None)
        call = SimCall(
            sid=new_sid("CA"),
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            direction="inbound",
            created_at=now,
            updated_at=now,
            person=person,
            url=url,
            method=_method(method or (registered.voice_method if registered else None)),
            status_callback=callback,
            status_callback_method=registered.status_callback_method if registered else "POST",
            digits_script=list(person.digits),
            timeline=Timeline(now),
        )
        with self._lock:
            self.calls[call.sid] = call
            call.timeline.add(now, "incoming", {"to": to, "from": from_, "url": url})
        self._spawn(call, self._inbound_call(call))
        return call

    def inbound_sms(self, *, to: str, from_: str, body: str, sms_url: str | None = None) -> SimMessage:
        """A simulated person texts one of the application's numbers; a ``<Message>`` reply is sent back."""
        registered = self.numbers.get(to)
        url = sms_url or (registered.sms_url if registered else None)
        if not url:
            raise SimulatorError(21205, f"No SMS URL for {to}: pass sms_url or register the number first")
        now = self.now()
        message = SimMessage(
            sid=new_sid("SM"),
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            body=body,
            created_at=now,
            updated_at=now,
            person=self.scenario.person(from_),
            direction="inbound",
            status="received",
            timeline=Timeline(now),
        )
        with self._lock:
            self.messages[message.sid] = message
            message.timeline.add(now, "received", {"from": from_})
        method = registered.sms_method if registered else "POST"
        self.scheduler.after(0.0, lambda: self._deliver_inbound_sms(message, url, method), "inbound sms")
        return message

    def _deliver_inbound_sms(self, message: SimMessage, url: str, method: str) -> None:
        params = {
            "AccountSid": message.account_sid,
            "ApiVersion": API_VERSION,
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "SmsMessageSid": message.sid,
            "From": message.from_,
            "To": message.to,
            "Body": message.body,
            "NumMedia": "0",
            "NumSegments": str(message.num_segments),
        }
        try:
            response = self._send(url, method, params)
        except TransportError as exc:
            message.timeline.add(self.now(), "webhook-failed", {"url": url, "error": str(exc)})
            return
        message.timeline.add(self.now(), "webhook", {"url": url, "status": response.status})
        if not response.ok or not response.text.strip():
            return
        try:
            root = SafeXml.fromstring(response.text)
        except Exception:
            message.timeline.add(self.now(), "application-error", {"code": 12100})
            return
        for element in root:
            if element.tag in {"Message", "Sms"}:
                body_el = element.find("Body")
                text = (body_el.text if body_el is not None else element.text) or ""
                self._new_message(
                    to=element.get("to") or message.from_,
                    from_=element.get("from") or message.to,
                    body=text.strip(),
                    status_callback=element.get("statusCallback"),
                    direction="outbound-reply",
                )

    # --- introspection ------------------------------------------------------------------------------------

    def calls_summary(self) -> list[dict[str, Any]]:
        with self._lock:
            return [call.summary() for call in self.calls.values()]

    def messages_summary(self) -> list[dict[str, Any]]:
        with self._lock:
            return [message.summary() for message in self.messages.values()]

    def mail_summary(self) -> list[dict[str, Any]]:
        with self._lock:
            return [mail.summary() for mail in self.mail]

    # --- process machinery --------------------------------------------------------------------------------

    def _spawn(self, call: SimCall, process: Process) -> None:
        with self._lock:
            call.process = process
            token = call.wake_token
        self.scheduler.after(0.0, lambda: self._resume(call, token), f"call {call.sid} start")

    def _resume(self, call: SimCall, token: int) -> None:
        if call.process is None or token != call.wake_token:
            return  # superseded by an interrupt
        self._advance(call, None)

    def _interrupt(self, call: SimCall, interrupt: _Interrupt) -> None:
        """Deliver ``interrupt`` from another thread: it reaches the call on the scheduler's thread."""
        self.scheduler.after(0.0, lambda: self._deliver(call, interrupt), f"call {call.sid} interrupt")

    def _deliver(self, call: SimCall, interrupt: _Interrupt) -> None:
        process = call.process
        if process is None:
            return
        if inspect.getgeneratorstate(process) == inspect.GEN_RUNNING:  # cannot throw into it now; right after
            self._interrupt(call, interrupt)
            return
        call.wake_token += 1
        self._advance(call, interrupt)

    def _advance(self, call: SimCall, interrupt: _Interrupt | None) -> None:
        process = call.process
        if process is None:
            return
        try:
            delay = process.throw(interrupt) if interrupt is not None else next(process)
        except StopIteration:
            call.process = None
            return
        except _HangUp as hangup:  # arrived before the process started
            call.process = None
            if call.status not in FINAL_CALL_STATUSES:
                self._finish(call, hangup.status if call.start_time is None else "completed")
            return
        except _Interrupt as unexpected:  # e.g. redirected while machine detection was still listening
            call.process = None
            if call.status not in FINAL_CALL_STATUSES:
                call.timeline.add(self.now(), "interrupted", {"by": str(unexpected)})
                self._finish(call, "completed" if call.start_time is not None else "canceled")
            return
        except Exception as exc:
            log.exception("call %s crashed in the simulator", call.sid)
            call.process = None
            if call.status not in FINAL_CALL_STATUSES:
                call.error = {"code": None, "message": f"simulator error: {exc}"}
                self._finish(call, "failed")
            return
        call.wake_token += 1
        token = call.wake_token
        self.scheduler.after(delay, lambda: self._resume(call, token), f"call {call.sid}")

    # --- webhooks -----------------------------------------------------------------------------------------

    def _send(
        self, url: str, method: str, params: Mapping[str, str], token: str | None = None
    ) -> IncomingResponse:
        """One signed request to the application, exactly as Twilio signs it."""
        method = _method(method)
        headers = {
            "User-Agent": "TwilioProxy/1.1",
            "Accept": "*/*",
            "I-Twilio-Idempotency-Token": token or uuid.uuid4().hex,
        }
        if method == "GET":
            full = (
                url + ("&" if urlsplit(url).query else "?") + urlencode(list(params.items()))
                if params
                else url
            )
            headers["X-Twilio-Signature"] = sign_request(full, {}, self.auth_token)
            request = OutgoingRequest("GET", full, headers=headers, timeout_s=self.webhook_timeout_s)
        else:
            headers["X-Twilio-Signature"] = sign_request(url, dict(params), self.auth_token)
            headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
            request = OutgoingRequest(
                "POST", url, form=list(params.items()), headers=headers, timeout_s=self.webhook_timeout_s
            )
        return self.transport.send(request)

    def _callback(
        self,
        timeline: Timeline,
        url: str,
        method: str,
        params: Mapping[str, str],
        label: str,
        attempt: int = 0,
        token: str | None = None,
        chaos: bool = True,
    ) -> None:
        """A status callback: delivered now; retried a couple of times if the application does not take it."""
        token = token or uuid.uuid4().hex
        network = self.scenario.network
        if chaos and attempt == 0:
            if network.reorder_callbacks and self._chaos.random() < network.reorder_callbacks:
                delay = self._chaos.uniform(2.0, 10.0)
                timeline.add(self.now(), "callback-held-back", {"event": label, "delay_s": round(delay, 2)})
                self.scheduler.after(
                    delay,
                    lambda: self._callback(timeline, url, method, params, label, 0, token, False),
                    label,
                )
                return
            if network.duplicate_callbacks and self._chaos.random() < network.duplicate_callbacks:
                timeline.add(self.now(), "callback-duplicated", {"event": label})
                self.scheduler.after(
                    self._chaos.uniform(0.1, 3.0),
                    lambda: self._callback(timeline, url, method, params, label, 0, token, False),
                    label,
                )
        try:
            response = self._send(url, method, params, token)
            failure = None if response.ok else f"HTTP {response.status}"
            status: int | None = response.status
        except TransportError as exc:
            failure, status = str(exc), None
        if failure is None:
            timeline.add(self.now(), "callback", {"event": label, "url": url, "status": status})
            return
        timeline.add(
            self.now(), "callback-failed", {"event": label, "url": url, "error": failure, "attempt": attempt}
        )
        if attempt < len(CALLBACK_RETRY_DELAYS_S):
            self.scheduler.after(
                CALLBACK_RETRY_DELAYS_S[attempt],
                lambda: self._callback(timeline, url, method, params, label, attempt + 1, token, False),
                f"{label} retry",
            )

    def _call_params(self, call: SimCall, status: str | None = None) -> dict[str, str]:
        params = {
            "AccountSid": call.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call.sid,
            "CallStatus": status or call.status,
            "Called": call.to,
            "Caller": call.from_,
            "Direction": call.direction,
            "From": call.from_,
            "To": call.to,
        }
        if call.parent_call_sid:
            params["ParentCallSid"] = call.parent_call_sid
        if call.machine_detection and call.answered_by:
            params["AnsweredBy"] = call.answered_by
        return params

    def _status_event(self, call: SimCall, event: str, status: str) -> None:
        if not call.status_callback or event not in call.status_callback_events:
            return
        params = self._call_params(call, status)
        params.update(
            {
                "CallbackSource": "call-progress-events",
                "SequenceNumber": str(call.sequence),
                "Timestamp": rfc2822(self.now()) or "",
            }
        )
        call.sequence += 1
        if event == "completed":
            params["CallDuration"] = str(call.duration_s)
            params["Duration"] = str(-(-call.duration_s // 60))
            params["SipResponseCode"] = str(_SIP_CODES.get(status, 200))
        self._callback(call.timeline, call.status_callback, call.status_callback_method, params, event)

    # --- call state changes -------------------------------------------------------------------------------

    def _set_status(self, call: SimCall, status: str, event: str | None = None, detail: Any = None) -> None:
        now = self.now()
        with self._lock:
            call.status = status
            call.updated_at = now
            call.timeline.add(now, event or status, detail)

    def _answer(self, call: SimCall) -> None:
        now = self.now()
        with self._lock:
            call.status = "in-progress"
            call.start_time = now
            call.updated_at = now
            call.timeline.add(now, "answered", {"by": call.person.voice})
        if call.person.hangup_after_s is not None:
            self.scheduler.after(
                call.person.hangup_after_s,
                lambda: self._deliver(call, _HangUp("completed", by="caller")),
                f"call {call.sid} caller hangs up",
            )

    def _finish(self, call: SimCall, status: str, detail: Any = None) -> None:
        now = self.now()
        with self._lock:
            if call.status in FINAL_CALL_STATUSES:
                return
            call.status = status
            call.end_time = now
            call.updated_at = now
            call.hangup_requested = None
            if call.queue is not None and call.sid in self.queues.get(call.queue, ()):
                self.queues[call.queue].remove(call.sid)
            call.timeline.add(now, status, detail)
        self._status_event(call, "completed", status)

    # --- call processes -----------------------------------------------------------------------------------

    def _outbound_call(self, call: SimCall, queue_delay: float) -> Process:
        network = self.scenario.network
        person = call.person
        try:
            if queue_delay:
                yield queue_delay
            call.timeline.add(self.now(), "initiated")
            self._status_event(call, "initiated", "initiated")
            if person.voice == "invalid":
                yield 0.5
                call.error = {"code": 13224, "message": "The number is invalid or not in service"}
                self._finish(call, "failed", call.error)
                return
            yield network.ring_s
            self._set_status(call, "ringing")
            self._status_event(call, "ringing", "ringing")
            if person.voice == "busy":
                yield 2.0
                self._finish(call, "busy")
                return
            if person.voice not in {"answer", "voicemail"} or person.answer_after_s > call.timeout_s:
                yield call.timeout_s
                self._finish(call, "no-answer")
                return
            yield person.answer_after_s
            self._answer(call)
            if call.machine_detection:
                yield from self._detect_machine(call)
            self._status_event(call, "answered", "in-progress")
            source = _Source(
                call.url,
                call.method,
                twiml=call.twiml,
                fallback_url=call.fallback_url,
                fallback_method=call.fallback_method,
            )
            yield from self._play(call, source)
            self._finish(call, "completed")
        except _HangUp as hangup:
            self._finish(call, hangup.status if call.start_time is None else "completed", {"by": hangup.by})

    def _detect_machine(self, call: SimCall) -> Generator[float, None, None]:
        if call.person.voice == "voicemail":
            if call.machine_detection == "DetectMessageEnd":
                yield 12.0  # the greeting, up to the beep
                call.answered_by = "machine_end_beep"
            else:
                yield 4.0
                call.answered_by = "machine_start"
        else:
            yield 2.5
            call.answered_by = "human"
        call.timeline.add(self.now(), "machine-detection", {"answered_by": call.answered_by})

    def _inbound_call(self, call: SimCall) -> Process:
        try:
            call.status = "ringing"
            call.timeline.add(self.now(), "ringing")
            source = _Source(call.url, call.method)
            document = self._fetch(call, source)
            if document is not None and document.verbs and document.verbs[0].tag == "Reject":
                reason = document.verbs[0].get("reason", "rejected")
                self._finish(call, "busy" if reason == "busy" else "no-answer", {"rejected": reason})
                return
            self._answer(call)
            if document is None:
                yield from self._application_error(call)
            else:
                yield from self._play(call, document)
            self._finish(call, "completed")
        except _HangUp as hangup:
            self._finish(call, hangup.status if call.start_time is None else "completed", {"by": hangup.by})

    # --- TwiML interpreter --------------------------------------------------------------------------------

    def _play(self, call: SimCall, first: _Source | _Document) -> Generator[float, None, None]:
        """Follow the application's TwiML until the call ends."""
        pending: _Source | _Document | None = first
        while pending is not None:
            try:
                if isinstance(pending, _Source):
                    document = self._fetch(call, pending)
                    if document is None:
                        yield from self._application_error(call)
                        return
                else:
                    document = pending
                pending = yield from self._run(call, document)
            except _Redirected as redirect:
                pending = _Source(redirect.url, redirect.method, twiml=redirect.twiml)
            except _Rejected:
                return

    def _fetch(self, call: SimCall, source: _Source) -> _Document | None:
        """GET/POST a TwiML document; ``None`` (and the error on the timeline) when the application fails."""
        call.documents_fetched += 1
        if call.documents_fetched > MAX_DOCUMENTS_PER_CALL:
            self._app_error(
                call, 11200, "too many TwiML documents for one call (a Redirect loop?)", source.url
            )
            return None
        if source.twiml is not None:
            return self._parse(call, source.twiml, None)
        if not source.url:
            self._app_error(call, 11200, "no URL to fetch TwiML from", None)
            return None
        params = self._call_params(call)
        params.update(source.params)
        error = self._try_fetch(call, source.url, source.method, params)
        if isinstance(error, _Document):
            return error
        if source.fallback_url:
            call.timeline.add(self.now(), "fallback", {"url": source.fallback_url, "reason": error})
            params["ErrorCode"], params["ErrorUrl"] = str(error[0]), source.url
            fallback = self._try_fetch(call, source.fallback_url, source.fallback_method, params)
            if isinstance(fallback, _Document):
                return fallback
            error = fallback
        self._app_error(call, error[0], error[1], source.url)
        return None

    def _try_fetch(
        self, call: SimCall, url: str, method: str, params: Mapping[str, str]
    ) -> _Document | tuple[int, str]:
        try:
            response = self._send(url, method, params)
        except TransportError as exc:
            return 11200, f"HTTP retrieval failure: {exc}"
        call.timeline.add(
            self.now(), "twiml-fetched", {"url": url, "method": _method(method), "status": response.status}
        )
        if not response.ok:
            return 11200, f"HTTP retrieval failure: HTTP {response.status}"
        kind = response.content_type.split(";")[0].strip().lower()
        if kind not in {"text/xml", "application/xml", "text/html", ""}:
            return 12300, f"Invalid Content-Type: {kind}"
        document = self._parse(call, response.text, response.url or url)
        if document is None:
            return 12100, "Document parse failure"
        return document

    def _parse(self, call: SimCall, text: str, url: str | None) -> _Document | None:
        try:
            root = SafeXml.fromstring(text.strip())
        except Exception:
            return None
        if root.tag != "Response":
            return None
        return _Document(list(root), url)

    def _app_error(self, call: SimCall, code: int, message: str, url: str | None) -> None:
        with self._lock:
            call.error = {"code": code, "message": message, "url": url}
            call.timeline.add(self.now(), "application-error", call.error)

    def _application_error(self, call: SimCall) -> Generator[float, None, None]:
        call.said.append({"text": APPLICATION_ERROR_TEXT, "voice": "network", "language": "en-US"})
        yield _say_seconds(APPLICATION_ERROR_TEXT)

    def _resolve(self, document: _Document, target: str | None) -> str | None:
        if not target:
            return document.url
        target = target.strip()
        if document.url is None:
            return target if urlsplit(target).scheme else None
        return urljoin(document.url, target)

    def _run(
        self, call: SimCall, document: _Document, in_queue: bool = False
    ) -> Generator[float, None, _Source | None]:
        """Play the verbs of one document; returns where the call goes next (``None``: the call ends)."""
        for verb in document.verbs:
            following = yield from self._verb(call, document, verb, in_queue)
            if isinstance(following, _Stop):
                return None
            if following is not None:
                return following
        return None

    def _verb(
        self, call: SimCall, document: _Document, verb: Element, in_queue: bool
    ) -> Generator[float, None, _Next]:
        tag = verb.tag
        if tag == "Say":
            yield from self._say(call, verb)
        elif tag == "Play":
            yield from self._play_audio(call, verb)
        elif tag == "Pause":
            length = _float(verb.get("length"), 1.0)
            call.timeline.add(self.now(), "pause", {"length": length})
            yield length
        elif tag == "Gather":
            return (yield from self._gather(call, document, verb))
        elif tag == "Redirect":
            url = self._resolve(document, verb.text)
            call.timeline.add(self.now(), "redirect", {"url": url})
            if url is None:
                self._app_error(call, 11200, "Redirect without a resolvable URL", None)
                return _STOP
            return _Source(url, _method(verb.get("method")))
        elif tag == "Hangup":
            call.timeline.add(self.now(), "hangup")
            if in_queue:
                raise _HangUp("completed", by="application")
            return _STOP
        elif tag == "Reject":
            reason = verb.get("reason", "rejected")
            call.timeline.add(self.now(), "reject", {"reason": reason})
            raise _Rejected(reason)
        elif tag == "Leave":
            if in_queue:
                call.timeline.add(self.now(), "leave")
                raise _LeftQueue()
        elif tag == "Record":
            return (yield from self._record(call, document, verb))
        elif tag == "Dial":
            return (yield from self._dial(call, document, verb))
        elif tag == "Enqueue":
            return (yield from self._enqueue(call, document, verb))
        elif tag in {"Sms", "Message"}:
            self._sms_verb(call, verb)
        else:
            call.timeline.add(self.now(), "unsupported-verb", {"verb": tag})
        return None

    def _say(self, call: SimCall, verb: Element) -> Generator[float, None, None]:
        text = (verb.text or "").strip()
        entry = {"text": text, "voice": verb.get("voice"), "language": verb.get("language")}
        call.said.append(entry)
        call.timeline.add(self.now(), "say", entry)
        yield _say_seconds(text) * _loops(verb)

    def _play_audio(self, call: SimCall, verb: Element) -> Generator[float, None, None]:
        url = (verb.text or "").strip()
        if verb.get("digits"):
            call.timeline.add(self.now(), "play-digits", {"digits": verb.get("digits")})
            yield 0.5 * len(verb.get("digits", ""))
            return
        call.played.append(url)
        call.timeline.add(self.now(), "play", {"url": url})
        yield 5.0 * _loops(verb)

    def _gather(self, call: SimCall, document: _Document, verb: Element) -> Generator[float, None, _Next]:
        for child in verb:
            if child.tag == "Say":
                yield from self._say(call, child)
            elif child.tag == "Play":
                yield from self._play_audio(call, child)
            elif child.tag == "Pause":
                yield _float(child.get("length"), 1.0)
        timeout = _float(verb.get("timeout"), 5.0)
        num_digits = int(_float(verb.get("numDigits"), 0)) or None
        finish_on_key = verb.get("finishOnKey", "#")
        accepts_dtmf = "dtmf" in verb.get("input", "dtmf")
        human = call.person.voice != "voicemail" and call.answered_by in (None, "human")
        keys = call.digits_script.pop(0) if human and accepts_dtmf and call.digits_script else ""
        collected, finished_on = "", ""
        if keys:
            yield 1.0  # reaction time before the first key
            for key in keys:
                yield 0.3
                if finish_on_key and key in finish_on_key:
                    finished_on = key
                    break
                collected += key
                if num_digits is not None and len(collected) >= num_digits:
                    break
            if not finished_on and (num_digits is None or len(collected) < num_digits):
                yield timeout  # stopped typing: the gather ends on its timeout
        else:
            yield timeout
        call.timeline.add(self.now(), "gather", {"digits": collected, "finished_on_key": finished_on})
        if collected:
            call.digits_pressed.append(collected)
        if not collected and verb.get("actionOnEmptyResult", "false").lower() != "true":
            return None  # Twilio moves on to the next verb
        action = self._resolve(document, verb.get("action"))
        if action is None:
            self._app_error(call, 11200, "Gather action cannot be resolved", None)
            return _STOP
        params = {"Digits": collected}
        if finished_on:
            params["FinishedOnKey"] = finished_on
        return _Source(action, _method(verb.get("method")), params)

    def _record(self, call: SimCall, document: _Document, verb: Element) -> Generator[float, None, _Next]:
        yield 0.5 if verb.get("playBeep", "true").lower() != "false" else 0.0
        timeout = _float(verb.get("timeout"), 5.0)
        max_length = _float(verb.get("maxLength"), 3600.0)
        if call.person.voice == "voicemail":
            # A machine leaves silence: nothing is recorded and Twilio moves on.
            yield timeout
            call.timeline.add(self.now(), "record-empty")
            return None
        duration = min(call.person.speak_s, max_length)
        yield duration
        if duration < max_length:
            yield timeout
        recording_sid = new_sid("RE")
        recording_url = (
            f"{self.base_url}/{API_VERSION}/Accounts/{call.account_sid}/Recordings/{recording_sid}"
        )
        recording = {"sid": recording_sid, "url": recording_url, "duration": round(duration)}
        call.recordings.append(recording)
        call.timeline.add(self.now(), "recorded", recording)
        callback = verb.get("recordingStatusCallback")
        if callback:
            target = self._resolve(document, callback)
            if target:
                params = {
                    "AccountSid": call.account_sid,
                    "CallSid": call.sid,
                    "RecordingSid": recording_sid,
                    "RecordingUrl": recording_url,
                    "RecordingStatus": "completed",
                    "RecordingDuration": str(round(duration)),
                    "RecordingChannels": "1",
                    "RecordingSource": "RecordVerb",
                    "RecordingStartTime": rfc2822(self.now() - duration) or "",
                }
                self._callback(
                    call.timeline,
                    target,
                    _method(verb.get("recordingStatusCallbackMethod")),
                    params,
                    "recording",
                )
        action = self._resolve(document, verb.get("action"))
        if action is None:
            return None
        params = {
            "RecordingUrl": recording_url,
            "RecordingDuration": str(round(duration)),
            "RecordingSid": recording_sid,
        }
        return _Source(action, _method(verb.get("method")), params)

    def _sms_verb(self, call: SimCall, verb: Element) -> None:
        inbound = call.direction == "inbound"
        to = verb.get("to") or (call.from_ if inbound else call.to)
        from_ = verb.get("from") or (call.to if inbound else call.from_)
        message = self._new_message(
            to=to, from_=from_, body=(verb.text or "").strip(), status_callback=verb.get("statusCallback")
        )
        call.timeline.add(self.now(), "sms", {"to": to, "sid": message.sid})

    # --- Dial ---------------------------------------------------------------------------------------------

    def _dial(self, call: SimCall, document: _Document, verb: Element) -> Generator[float, None, _Next]:
        timeout = _float(verb.get("timeout"), 30.0)
        caller_id = verb.get("callerId") or call.from_
        time_limit = _float(verb.get("timeLimit"), 14400.0)
        queue_children = [child for child in verb if child.tag == "Queue"]
        if queue_children:
            outcome = yield from self._dial_queue(call, queue_children[0], timeout)
        else:
            targets = self._dial_targets(verb)
            outcome = yield from self._dial_parties(call, targets, caller_id, timeout, time_limit)
        status, child_sid, duration = outcome
        call.timeline.add(self.now(), "dial-ended", {"status": status, "duration": duration})
        action = verb.get("action")
        if not action:
            return None  # continue with the next verb
        target = self._resolve(document, action)
        if target is None:
            self._app_error(call, 11200, "Dial action cannot be resolved", None)
            return _STOP
        params = {
            "DialCallStatus": status,
            "DialCallDuration": str(duration),
            "DialBridged": "true" if status == "completed" else "false",
        }
        if child_sid:
            params["DialCallSid"] = child_sid
        return _Source(target, _method(verb.get("method")), params)

    def _dial_targets(self, verb: Element) -> list[tuple[str, str, Element]]:
        """(key for the scenario, kind, element) for each party a <Dial> rings."""
        targets = []
        for child in verb:
            text = (child.text or "").strip()
            if child.tag == "Number":
                targets.append((text, "number", child))
            elif child.tag == "Client":
                identity = child.find("Identity")
                name = (identity.text or "").strip() if identity is not None else text
                targets.append((f"client:{name}", "client", child))
            elif child.tag == "Sip":
                targets.append((text if text.startswith("sip:") else f"sip:{text}", "sip", child))
            elif child.tag == "Conference":
                targets.append((f"conference:{text}", "conference", child))
        if not targets and (verb.text or "").strip():
            targets.append(((verb.text or "").strip(), "number", verb))
        return targets

    def _dial_parties(
        self,
        call: SimCall,
        targets: list[tuple[str, str, Element]],
        caller_id: str,
        timeout: float,
        time_limit: float,
    ) -> Generator[float, None, tuple[str, str | None, int]]:
        network = self.scenario.network
        legs: list[tuple[SimCall, str, float]] = []  # (leg, outcome, seconds after dialing)
        for key, kind, element in targets:
            person = self.scenario.person(key)
            leg = self._new_leg(call, key, caller_id, person, element, timeout)
            if kind == "conference":
                legs.append((leg, "failed", 0.5))
                leg.error = {"code": None, "message": "<Conference> is not simulated"}
            elif person.voice == "invalid":
                legs.append((leg, "failed", 0.5))
            elif person.voice == "busy":
                legs.append((leg, "busy", network.ring_s + 1.0))
            elif (
                person.voice in {"answer", "voicemail"} and network.ring_s + person.answer_after_s <= timeout
            ):
                legs.append((leg, "answered", network.ring_s + person.answer_after_s))
            else:
                legs.append((leg, "no-answer", timeout))
        call.timeline.add(self.now(), "dial", {"targets": [leg.to for leg, _, _ in legs], "timeout": timeout})
        for leg, _, _ in legs:
            leg.timeline.add(self.now(), "initiated")
            self._status_event(leg, "initiated", "initiated")
        answered = [(at, leg) for leg, outcome, at in legs if outcome == "answered"]
        winner = min(answered, key=lambda pair: pair[0])[1] if answered else None
        stop_at = min(at for at, _ in answered) if answered else max((at for _, _, at in legs), default=0.0)
        # Everything that happens while the parties ring, in time order.
        events: list[tuple[float, int, Callable[[], None]]] = []
        for order, (leg, outcome, at) in enumerate(legs):
            if outcome != "failed":
                events.append((min(network.ring_s, at), order, self._ringing_action(leg)))
            if leg is winner:
                events.append((at, order, self._leg_answer_action(leg)))
            elif at <= stop_at and outcome != "answered":
                events.append((at, order, self._leg_finish_action(leg, outcome)))
            else:
                events.append((stop_at, order, self._leg_finish_action(leg, "canceled")))
        events.sort(key=lambda e: (e[0], e[1]))
        elapsed = 0.0
        try:
            for at, _, action in events:
                if at > elapsed:
                    yield at - elapsed
                    elapsed = at
                action()
            if winner is None:
                outcomes = {outcome for _, outcome, _ in legs}
                status = (
                    "failed" if outcomes <= {"failed"} else "no-answer" if "no-answer" in outcomes else "busy"
                )
                for leg, _, _ in legs:
                    call.dialed.append(self._dialed_entry(leg))
                return status, legs[0][0].sid if len(legs) == 1 else None, 0
            talk = min(winner.person.talk_s, time_limit)
            yield talk
            self._finish(winner, "completed")
            call.dialed.extend(self._dialed_entry(leg) for leg, _, _ in legs)
            return "completed", winner.sid, winner.duration_s
        except _Interrupt:
            for leg, _, _ in legs:
                if leg.status not in FINAL_CALL_STATUSES:
                    self._finish(leg, "completed" if leg.start_time is not None else "canceled")
            call.dialed.extend(self._dialed_entry(leg) for leg, _, _ in legs)
            raise

    def _ringing_action(self, leg: SimCall) -> Callable[[], None]:
        def ring() -> None:
            if leg.status in {"queued"}:
                self._set_status(leg, "ringing")
                self._status_event(leg, "ringing", "ringing")

        return ring

    def _leg_answer_action(self, leg: SimCall) -> Callable[[], None]:
        def answer() -> None:
            self._answer(leg)
            self._status_event(leg, "answered", "in-progress")

        return answer

    def _leg_finish_action(self, leg: SimCall, status: str) -> Callable[[], None]:
        return lambda: self._finish(leg, status)

    def _dialed_entry(self, leg: SimCall) -> dict[str, Any]:
        return {"to": leg.to, "call_sid": leg.sid, "status": leg.status, "duration": leg.duration_s}

    def _new_leg(
        self, parent: SimCall, key: str, caller_id: str, person: Person, element: Element, timeout: float
    ) -> SimCall:
        now = self.now()
        events = (element.get("statusCallbackEvent") or "completed").replace(",", " ").split()
        leg = SimCall(
            sid=new_sid("CA"),
            account_sid=parent.account_sid,
            to=key,
            from_=caller_id,
            direction="outbound-dial",
            created_at=now,
            updated_at=now,
            person=person,
            parent_call_sid=parent.sid,
            status_callback=element.get("statusCallback"),
            status_callback_method=_method(element.get("statusCallbackMethod")),
            status_callback_events=frozenset(events),
            timeout_s=timeout,
            timeline=Timeline(now),
        )
        with self._lock:
            self.calls[leg.sid] = leg
            leg.timeline.add(now, "created", {"parent": parent.sid})
        return leg

    def _dial_queue(
        self, call: SimCall, element: Element, timeout: float
    ) -> Generator[float, None, tuple[str, str | None, int]]:
        name = (element.text or "").strip()
        waited = 0.0
        while True:
            with self._lock:
                waiting = self.queues.get(name)
                caller_sid = waiting.popleft() if waiting else None
                caller = self.calls.get(caller_sid) if caller_sid else None
            if caller is not None and caller.process is not None:
                break
            if waited >= timeout:
                call.timeline.add(self.now(), "queue-empty", {"queue": name})
                return "no-answer", None, 0
            yield 1.0
            waited += 1.0
        talk = call.person.talk_s
        call.timeline.add(self.now(), "dequeued", {"queue": name, "caller": caller.sid})
        self._deliver(caller, _Bridged(call.sid, talk))
        yield talk
        call.dialed.append(
            {"to": f"queue:{name}", "call_sid": caller.sid, "status": "completed", "duration": round(talk)}
        )
        return "completed", caller.sid, round(talk)

    # --- Enqueue ------------------------------------------------------------------------------------------

    def _enqueue(self, call: SimCall, document: _Document, verb: Element) -> Generator[float, None, _Next]:
        name = (verb.text or "").strip()
        queue_sid = "QU" + uuid.uuid5(uuid.NAMESPACE_URL, f"{self.account_sid}/{name}").hex
        entered = self.now()
        with self._lock:
            self.queues.setdefault(name, deque()).append(call.sid)
            call.queue = name
            call.timeline.add(entered, "enqueued", {"queue": name})
        wait_url = self._resolve(document, verb.get("waitUrl")) if verb.get("waitUrl") else None
        wait_method = _method(verb.get("waitUrlMethod"))
        result = "hangup"
        try:
            try:
                while True:
                    if self.now() - entered >= QUEUE_PATIENCE_S:
                        raise _HangUp("completed", by="caller")
                    if wait_url is None:
                        yield 10.0  # hold music
                        continue
                    with self._lock:
                        members = list(self.queues.get(name, ()))
                    position = members.index(call.sid) + 1 if call.sid in members else 1
                    params = {
                        "QueueSid": queue_sid,
                        "QueuePosition": str(position),
                        "QueueTime": str(round(self.now() - entered)),
                        "AvgQueueTime": str(round(self.now() - entered)),
                        "CurrentQueueSize": str(len(members)),
                        "MaxQueueSize": "100",
                    }
                    wait_doc = self._fetch(call, _Source(wait_url, wait_method, params))
                    if wait_doc is None:
                        yield 10.0
                        continue
                    following = yield from self._run(call, wait_doc, in_queue=True)
                    if isinstance(following, _Source) and following.url:
                        wait_url, wait_method = following.url, following.method
                    if not wait_doc.verbs:
                        yield 5.0
            except _LeftQueue:
                result = "leave"
            except _Bridged as bridged:
                call.timeline.add(self.now(), "bridged", {"agent_call": bridged.agent_call_sid})
                result = "bridged"
                yield bridged.talk_s
        except _HangUp:
            # The action still hears about it (its TwiML goes nowhere: the caller is gone).
            target = self._resolve(document, verb.get("action")) if verb.get("action") else None
            if target is not None:
                params = self._call_params(call, "completed")
                params.update(
                    {
                        "QueueResult": "hangup",
                        "QueueSid": queue_sid,
                        "QueueTime": str(round(self.now() - entered)),
                    }
                )
                self._callback(
                    call.timeline, target, _method(verb.get("method")), params, "enqueue-action", chaos=False
                )
            raise
        finally:
            with self._lock:
                members_now = self.queues.get(name)
                if members_now is not None and call.sid in members_now:
                    members_now.remove(call.sid)
                call.queue = None
        call.timeline.add(self.now(), "dequeue", {"queue": name, "result": result})
        action = verb.get("action")
        if not action:
            return None
        target = self._resolve(document, action)
        if target is None:
            return None
        params = {"QueueResult": result, "QueueSid": queue_sid, "QueueTime": str(round(self.now() - entered))}
        return _Source(target, _method(verb.get("method")), params)
