"""English words for the stored enum values (the message ids the Japanese catalogue translates)."""

from __future__ import annotations

import enum
from typing import Any

from core.i18n import gettext

LABELS: dict[str, str] = {
    # incident states and severities
    "proposed": "Proposed",
    "active": "Active",
    "closed": "Closed",
    "dismissed": "Dismissed",
    "minor": "Minor",
    "major": "Major",
    "critical": "Critical",
    # checklist
    "todo": "To do",
    "doing": "In progress",
    "done": "Done",
    "skipped": "Skipped",
    "commander": "Incident commander",
    "deputy": "Deputy",
    # care
    "open": "Open",
    "contacted": "Contacted",
    "injured": "Injured",
    "need_help": "Needs help",
    "need_to_talk": "Wants someone to talk to",
    "unwell": "Tested positive",
    # deliveries
    "queued": "Queued",
    "sending": "Sending",
    "sent": "Sent",
    "delivered": "Delivered",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "sms": "SMS",
    "email": "E-mail",
    "customer": "Customer",
    "partner": "Partner",
    "partners": "Partners and customers",
    "family": "Family",
    # status page
    "normal": "Operating normally",
    "degraded": "Degraded",
    "outage": "Outage",
    # timeline parts
    "incidents": "Incident",
    "ivr": "Safety calls",
    "continuity": "Routing",
    "stockpile": "Stockpile",
    "directory": "Directory",
    "admin": "Administration",
    "reports": "Reports",
}


def label(value: Any, language: str | None = None) -> str:
    key = value.value if isinstance(value, enum.Enum) else str(value)
    return gettext(LABELS.get(key, key), language)
