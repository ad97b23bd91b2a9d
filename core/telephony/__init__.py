"""Telephony: the only package that imports ``twilio``.

* :mod:`core.telephony.backend` — :class:`TelephonyBackend` (place/cancel calls, send SMS), :class:`TwilioBackend`,
  :func:`make_backend`, and the transient/permanent error split callers retry on.
* :mod:`core.telephony.signature` — ``@twilio_webhook`` for Flask views, :func:`sign_request`.
* :mod:`core.telephony.twiml` — ``VoiceResponse`` / ``MessagingResponse`` for building TwiML.
* :mod:`core.telephony.simulator` — a Twilio-compatible telephone network for the embedded default and tests.
"""

from core.telephony.backend import (
    ALL_CALL_EVENTS,
    PermanentTelephonyError,
    PlacedCall,
    SentMessage,
    TelephonyBackend,
    TelephonyError,
    TransientTelephonyError,
    TwilioBackend,
    make_backend,
)
from core.telephony.signature import is_valid_twilio_request, public_url, sign_request, twilio_webhook

__all__ = [
    "ALL_CALL_EVENTS",
    "PermanentTelephonyError",
    "PlacedCall",
    "SentMessage",
    "TelephonyBackend",
    "TelephonyError",
    "TransientTelephonyError",
    "TwilioBackend",
    "is_valid_twilio_request",
    "make_backend",
    "public_url",
    "sign_request",
    "twilio_webhook",
]
