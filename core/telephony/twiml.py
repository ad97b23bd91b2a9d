"""TwiML builders for domain code, so that only ``core.telephony`` imports ``twilio``.

Build with the SDK's own classes (``VoiceResponse().gather(...)``, ``MessagingResponse().message(...)``) and
return ``str(response)`` with :data:`TWIML_MIMETYPE`.
"""

from __future__ import annotations

from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

TWIML_MIMETYPE = "text/xml"

__all__ = ["TWIML_MIMETYPE", "Dial", "Gather", "MessagingResponse", "VoiceResponse"]
