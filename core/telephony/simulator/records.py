"""What the simulated network remembers: calls, messages and e-mails, with their timelines.

These records are the simulator's state; the REST resources (shaped by Twilio's schema) and the ``/_sim``
introspection JSON are both rendered from them.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import phonenumbers

from core.telephony.simulator.scenario import Person

API_VERSION = "2010-04-01"
FINAL_CALL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
FINAL_MESSAGE_STATUSES = frozenset({"delivered", "undelivered", "failed", "received", "canceled"})

# A call's script: yields how many virtual seconds to wait before it continues.
Process = Generator[float, None, None]


def new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def rfc2822(ts: float | None) -> str | None:
    if ts is None:
        return None
    return format_datetime(datetime.fromtimestamp(ts, UTC))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def formatted(number: str) -> str:
    """How Twilio shows a number in ``*_formatted`` fields (national format where the number parses)."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)


@dataclass
class TimelineEntry:
    at: float
    event: str
    detail: Any = None


@dataclass
class Timeline:
    origin: float
    entries: list[TimelineEntry] = field(default_factory=list)

    def add(self, at: float, event: str, detail: Any = None) -> None:
        self.entries.append(TimelineEntry(at, event, detail))

    def as_list(self) -> list[dict[str, Any]]:
        return [
            {"t": round(e.at - self.origin, 3), "at": iso(e.at), "event": e.event, "detail": e.detail}
            for e in list(self.entries)
        ]

    def events(self) -> list[str]:
        return [e.event for e in list(self.entries)]


@dataclass
class SimCall:
    sid: str
    account_sid: str
    to: str
    from_: str
    direction: str  # outbound-api, inbound, outbound-dial
    created_at: float
    person: Person
    status: str = "queued"
    parent_call_sid: str | None = None
    url: str | None = None
    method: str = "POST"
    twiml: str | None = None
    fallback_url: str | None = None
    fallback_method: str = "POST"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[str] = frozenset({"completed"})
    timeout_s: float = 60.0
    time_limit_s: float = 14400.0
    machine_detection: str | None = None
    answered_by: str | None = None
    queue_time_ms: int = 0
    start_time: float | None = None
    end_time: float | None = None
    updated_at: float = 0.0
    sequence: int = 0
    digits_script: list[str] = field(default_factory=list)
    digits_pressed: list[str] = field(default_factory=list)
    said: list[dict[str, Any]] = field(default_factory=list)
    played: list[str] = field(default_factory=list)
    dialed: list[dict[str, Any]] = field(default_factory=list)
    recordings: list[dict[str, Any]] = field(default_factory=list)
    queue: str | None = None
    error: dict[str, Any] | None = None
    hangup_requested: str | None = None
    documents_fetched: int = 0
    process: Process | None = field(default=None, repr=False)
    wake_token: int = 0
    timeline: Timeline = field(default_factory=lambda: Timeline(0.0))

    @property
    def duration_s(self) -> int:
        if self.start_time is None:
            return 0
        end = self.end_time if self.end_time is not None else self.updated_at
        return max(0, round(end - self.start_time))

    @property
    def visible_status(self) -> str:
        # A cancel/hang-up asked for over REST shows at once, as on Twilio, even before the network has acted.
        if self.status not in FINAL_CALL_STATUSES and self.hangup_requested:
            return self.hangup_requested
        return self.status

    def resource(self) -> dict[str, Any]:
        """The Call resource exactly as Twilio's schema describes it (every property present)."""
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}"
        return {
            "sid": self.sid,
            "date_created": rfc2822(self.created_at),
            "date_updated": rfc2822(self.updated_at or self.created_at),
            "parent_call_sid": self.parent_call_sid,
            "account_sid": self.account_sid,
            "to": self.to,
            "to_formatted": formatted(self.to),
            "from": self.from_,
            "from_formatted": formatted(self.from_),
            "phone_number_sid": None,
            "status": self.visible_status,
            "start_time": rfc2822(self.start_time),
            "end_time": rfc2822(self.end_time),
            "duration": str(self.duration_s) if self.end_time is not None else None,
            "price": None,
            "price_unit": "USD",
            "direction": self.direction,
            "answered_by": self.answered_by,
            "api_version": API_VERSION,
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": str(self.queue_time_ms),
            "trunk_sid": None,
            "uri": f"{base}.json",
            "subresource_uris": {
                name: f"{base}/{segment}.json"
                for name, segment in (
                    ("notifications", "Notifications"),
                    ("recordings", "Recordings"),
                    ("payments", "Payments"),
                    ("events", "Events"),
                    ("siprec", "Siprec"),
                    ("streams", "Streams"),
                    ("transcriptions", "Transcriptions"),
                    ("user_defined_message_subscriptions", "UserDefinedMessageSubscriptions"),
                    ("user_defined_messages", "UserDefinedMessages"),
                )
            },
        }

    def summary(self) -> dict[str, Any]:
        """What ``/_sim/calls`` shows: the call as the network saw it."""
        return {
            "sid": self.sid,
            "to": self.to,
            "from": self.from_,
            "direction": self.direction,
            "status": self.visible_status,
            "parent_call_sid": self.parent_call_sid,
            "answered_by": self.answered_by,
            "duration": self.duration_s,
            "created_at": iso(self.created_at),
            "start_time": iso(self.start_time) if self.start_time is not None else None,
            "end_time": iso(self.end_time) if self.end_time is not None else None,
            "digits": list(self.digits_pressed),
            "said": [s["text"] for s in list(self.said)],
            "said_detail": list(self.said),
            "played": list(self.played),
            "dialed": list(self.dialed),
            "recordings": list(self.recordings),
            "queue": self.queue,
            "error": self.error,
            "person": self.person.as_dict(),
            "timeline": self.timeline.as_list(),
        }


@dataclass
class SimMessage:
    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    created_at: float
    person: Person
    direction: str = "outbound-api"
    status: str = "queued"
    status_callback: str | None = None
    messaging_service_sid: str | None = None
    sent_at: float | None = None
    updated_at: float = 0.0
    error_code: int | None = None
    error_message: str | None = None
    visits: list[dict[str, Any]] = field(default_factory=list)
    timeline: Timeline = field(default_factory=lambda: Timeline(0.0))

    @property
    def num_segments(self) -> int:
        # GSM-7 fits 160 characters a segment, anything else (Japanese) 70; concatenated parts carry a header.
        gsm = all(ord(ch) < 128 for ch in self.body)
        single, multi = (160, 153) if gsm else (70, 67)
        if len(self.body) <= single:
            return 1
        return -(-len(self.body) // multi)

    def resource(self) -> dict[str, Any]:
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
        return {
            "body": self.body,
            "num_segments": str(self.num_segments),
            "direction": self.direction,
            "from": self.from_,
            "to": self.to,
            "date_updated": rfc2822(self.updated_at or self.created_at),
            "price": None,
            "error_message": self.error_message,
            "uri": f"{base}.json",
            "account_sid": self.account_sid,
            "num_media": "0",
            "status": self.status,
            "messaging_service_sid": self.messaging_service_sid,
            "sid": self.sid,
            "date_sent": rfc2822(self.sent_at),
            "date_created": rfc2822(self.created_at),
            "error_code": self.error_code,
            "price_unit": "USD",
            "api_version": API_VERSION,
            "subresource_uris": {"media": f"{base}/Media.json", "feedback": f"{base}/Feedback.json"},
        }

    def summary(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "to": self.to,
            "from": self.from_,
            "body": self.body,
            "direction": self.direction,
            "status": self.status,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "created_at": iso(self.created_at),
            "visits": list(self.visits),
            "person": self.person.as_dict(),
            "timeline": self.timeline.as_list(),
        }


@dataclass
class SimMail:
    id: str
    to: str
    from_: str
    subject: str
    body: str
    received_at: float
    person: Person
    visits: list[dict[str, Any]] = field(default_factory=list)
    timeline: Timeline = field(default_factory=lambda: Timeline(0.0))

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "to": self.to,
            "from": self.from_,
            "subject": self.subject,
            "body": self.body,
            "received_at": iso(self.received_at),
            "visits": list(self.visits),
            "timeline": self.timeline.as_list(),
        }


@dataclass(frozen=True)
class InboundNumber:
    """One of the application's own numbers: where the network sends calls and SMS to it."""

    number: str
    voice_url: str | None = None
    voice_method: str = "POST"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    sms_url: str | None = None
    sms_method: str = "POST"

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "voice_url": self.voice_url,
            "voice_method": self.voice_method,
            "status_callback": self.status_callback,
            "status_callback_method": self.status_callback_method,
            "sms_url": self.sms_url,
            "sms_method": self.sms_method,
        }
