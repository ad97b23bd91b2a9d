"""Placing calls and sending SMS: the :class:`TelephonyBackend` interface and its Twilio implementation.

Callers (Celery tasks executing outbound rows) get a :class:`PlacedCall` / :class:`SentMessage` back, or one of
two errors:

* :class:`TransientTelephonyError` — rate limited (HTTP 429 / Twilio 20429), Twilio had a 5xx, the connection
  failed or timed out. Nothing was placed (or we cannot know): retry with backoff.
* :class:`PermanentTelephonyError` — Twilio refused the request for good (invalid number 21211, unverified
  caller ID 21210, unreachable 21214, …). Retrying the same request cannot succeed; the contact point or the
  configuration is wrong. Carries Twilio's error code and message.

``TwilioBackend(api_base="http://127.0.0.1:5050")`` sends the official client's requests to the simulator; with
real credentials and no ``api_base`` it talks to Twilio.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

log = logging.getLogger(__name__)

TWILIO_API_BASE = "https://api.twilio.com"
ALL_CALL_EVENTS: tuple[str, ...] = ("initiated", "ringing", "answered", "completed")

# Twilio error codes that mean "this request will never succeed as it is" (the number or the account is wrong).
PERMANENT_ERROR_CODES = frozenset(
    {
        20003,  # authentication failed (wrong SID/token)
        20404,  # resource not found
        21201,  # no 'To' number
        21205,  # invalid Url
        21210,  # 'From' number not verified for this account
        21211,  # invalid 'To' phone number
        21212,  # invalid 'From' number
        21213,  # no 'From' number
        21214,  # 'To' number cannot be reached
        21215,  # geo permission: calls to this region are not enabled
        21216,  # call blocked by Twilio blocklist
        21217,  # phone number does not appear to be valid
        21234,  # invalid MachineDetection value
        21401,  # invalid phone number
        21408,  # permission to send an SMS to this region not enabled
        21602,  # message body required
        21603,  # 'From' required
        21604,  # 'To' required
        21606,  # 'From' is not a valid SMS-capable number
        21608,  # unverified number (trial account)
        21610,  # recipient unsubscribed (replied STOP)
        21612,  # cannot route to this number
        21614,  # 'To' is not a mobile number
        21617,  # body too long
    }
)
TRANSIENT_ERROR_CODES = frozenset({20429, 20500, 20503, 31000})


@dataclass(frozen=True)
class PlacedCall:
    sid: str
    status: str  # usually "queued"


@dataclass(frozen=True)
class SentMessage:
    sid: str
    status: str  # usually "queued" or "accepted"
    segments: int = 1


class TelephonyError(Exception):
    """A provider refusal or failure. ``code`` is Twilio's error code when there is one."""

    def __init__(self, message: str, *, code: int | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps code/http_status when a task result or a retry pickles the exception.
        return (_rebuild_error, (type(self), self.message, self.code, self.http_status))

    def __str__(self) -> str:
        return f"{self.message} (Twilio error {self.code})" if self.code else self.message


def _rebuild_error(
    cls: type[TelephonyError], message: str, code: int | None, http_status: int | None
) -> TelephonyError:
    return cls(message, code=code, http_status=http_status)


class TransientTelephonyError(TelephonyError):
    """Try again later (with backoff)."""


class PermanentTelephonyError(TelephonyError):
    """Do not retry this request; record the reason (e.g. the contact point is not a valid number)."""


class TelephonyBackend(Protocol):
    def place_call(
        self,
        *,
        to: str,
        from_: str,
        answer_url: str,
        status_callback_url: str | None = None,
        status_callback_events: Sequence[str] = ALL_CALL_EVENTS,
        timeout_s: int = 30,
        machine_detection: bool = False,
    ) -> PlacedCall: ...

    def cancel_call(self, call_sid: str) -> None: ...

    def end_call(self, call_sid: str) -> None: ...

    def send_sms(
        self, *, to: str, from_: str, body: str, status_callback_url: str | None = None
    ) -> SentMessage: ...


class TelephonySettings(Protocol):
    @property
    def twilio_account_sid(self) -> str: ...

    @property
    def twilio_auth_token(self) -> str: ...

    @property
    def twilio_api_base(self) -> str: ...


class RebasedHttpClient(TwilioHttpClient):
    """The SDK's own HTTP client, with ``https://api.twilio.com`` replaced by ``api_base`` (e.g. the simulator).

    Everything else — form encoding, repeated keys for lists, Basic auth, User-Agent, timeouts — is the SDK's.
    """

    def __init__(self, api_base: str, *, timeout: float | None = 15.0) -> None:
        super().__init__(timeout=timeout)
        self.api_base = api_base.rstrip("/")

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if url.startswith(TWILIO_API_BASE):
            url = self.api_base + url[len(TWILIO_API_BASE) :]
        return super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )


def classify(exc: Exception) -> TelephonyError:
    """Turn whatever the SDK raised into a transient or permanent :class:`TelephonyError`."""
    if isinstance(exc, TelephonyError):
        return exc
    if isinstance(exc, TwilioRestException):
        message = str(exc.msg or "Twilio refused the request")
        code = int(exc.code) if isinstance(exc.code, int) else None
        status = int(exc.status) if exc.status else None
        if status == 429 or code in TRANSIENT_ERROR_CODES or (status is not None and status >= 500):
            return TransientTelephonyError(message, code=code, http_status=status)
        return PermanentTelephonyError(message, code=code, http_status=status)
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        return TransientTelephonyError(f"Twilio unreachable: {type(exc).__name__}: {exc}")
    if isinstance(exc, requests.RequestException | TwilioException):
        return TransientTelephonyError(f"Twilio request failed: {type(exc).__name__}: {exc}")
    raise exc


class TwilioBackend:
    """:class:`TelephonyBackend` on the official ``twilio.rest.Client``."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        api_base: str | None = None,
        timeout_s: float = 15.0,
        http_client: HttpClient | None = None,
    ) -> None:
        if http_client is None:
            http_client = (
                RebasedHttpClient(api_base, timeout=timeout_s)
                if api_base and api_base.rstrip("/") != TWILIO_API_BASE
                else TwilioHttpClient(timeout=timeout_s)
            )
        self.client = Client(account_sid, auth_token, http_client=http_client)
        # The client imports its resources on first use (~50 ms): do it now, so that a worker's first call under
        # pacing leaves on time instead of landing just before the second.
        _ = self.client.calls, self.client.messages

    def place_call(
        self,
        *,
        to: str,
        from_: str,
        answer_url: str,
        status_callback_url: str | None = None,
        status_callback_events: Sequence[str] = ALL_CALL_EVENTS,
        timeout_s: int = 30,
        machine_detection: bool = False,
    ) -> PlacedCall:
        options: dict[str, Any] = {"timeout": timeout_s}
        if status_callback_url:
            options["status_callback"] = status_callback_url
            options["status_callback_event"] = list(status_callback_events)
            options["status_callback_method"] = "POST"
        if machine_detection:
            options["machine_detection"] = "Enable"
        try:
            call = self.client.calls.create(to=to, from_=from_, url=answer_url, method="POST", **options)
        except Exception as exc:
            raise classify(exc) from exc
        return PlacedCall(sid=str(call.sid), status=str(call.status or "queued"))

    def cancel_call(self, call_sid: str) -> None:
        """Stop a call that has not been answered yet (Twilio ignores this once it is answered)."""
        try:
            self.client.calls(call_sid).update(status="canceled")
        except Exception as exc:
            raise classify(exc) from exc

    def end_call(self, call_sid: str) -> None:
        """Hang up a call whatever its state (a ringing call is cancelled)."""
        try:
            self.client.calls(call_sid).update(status="completed")
        except Exception as exc:
            raise classify(exc) from exc

    def send_sms(
        self, *, to: str, from_: str, body: str, status_callback_url: str | None = None
    ) -> SentMessage:
        options: dict[str, Any] = {}
        if status_callback_url:
            options["status_callback"] = status_callback_url
        try:
            message = self.client.messages.create(to=to, from_=from_, body=body, **options)
        except Exception as exc:
            raise classify(exc) from exc
        segments = (
            int(message.num_segments) if message.num_segments and str(message.num_segments).isdigit() else 1
        )
        return SentMessage(sid=str(message.sid), status=str(message.status or "queued"), segments=segments)


def make_backend(settings: TelephonySettings) -> TelephonyBackend:
    """The backend the configuration asks for (the simulator when ``twilio_api_base`` points at it)."""
    return TwilioBackend(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token,
        api_base=settings.twilio_api_base or None,
    )
