"""Routing plans as stored (a JSON document per plan) and as ``routing.choose`` reads them.

A plan document::

    {
      "timezone": "Asia/Tokyo",
      "site": "TKY",                                   # home site (for site-wide emergencies); optional
      "business_hours": [{"days": "Mon-Fri", "opens": "09:00", "closes": "18:00"}],   # absent: never closes
      "holidays": ["2026-01-01"],
      "closed_message": {"ja": "...", "en": "...", "recording_url": null},
      "holiday_message": {...}, "unavailable_message": {...},
      "targets": [
        {"kind": "site_agents", "site": "TKY", "ring_timeout_s": 20, "skip_when_unavailable": true},
        {"kind": "queue", "queue": "support", "capacity": 10, "message": {"ja": "...", "en": "..."}},
        {"kind": "voicemail", "message": {...}},
        ...
      ],
      "faq": [{"digit": "1", "question": {...}, "answer": {...}}]      # read by the faq_menu target
    }

Pure: plain values in, ``routing`` dataclasses out; every mistake is a ``ValueError`` naming where it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time
from typing import Any

from continuity import routing
from continuity.routing import BusinessHours, Message, OpeningWindow, Plan, Target, TargetKind

_DAY_NAMES = {
    name.lower(): index for index, name in enumerate(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))
}
_CLOCK = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")
MAX_TARGETS = 20
MAX_FAQ_ENTRIES = 9


@dataclass(frozen=True)
class FaqEntry:
    digit: str
    question: Message
    answer: Message


def plan_from_definition(line: str, definition: Mapping[str, Any], *, name: str = "") -> Plan:
    """The ``routing.Plan`` a stored plan document describes, for the line numbered ``line``."""
    if not isinstance(definition, Mapping):
        raise ValueError("a plan is a JSON object")
    timezone = str(definition.get("timezone") or routing.DEFAULT_TIMEZONE)
    try:
        routing.zone(timezone)
    except Exception as exc:
        raise ValueError(f"unknown time zone {timezone!r}") from exc
    raw_targets = definition.get("targets")
    if not isinstance(raw_targets, Sequence) or isinstance(raw_targets, str) or not raw_targets:
        raise ValueError("a plan needs a non-empty list of targets")
    if len(raw_targets) > MAX_TARGETS:
        raise ValueError(f"a plan has at most {MAX_TARGETS} targets")
    targets = tuple(_target(raw, f"targets[{n}]", timezone) for n, raw in enumerate(raw_targets))
    hours = definition.get("business_hours")
    closed = _message(definition.get("closed_message"), "closed_message")
    return Plan(
        line=line,
        name=name,
        targets=targets,
        timezone=timezone,
        site_code=_optional_str(definition.get("site")),
        business_hours=_hours(hours, "business_hours", timezone) if hours else None,
        holidays=frozenset(_holidays(definition.get("holidays") or [])),
        closed_message=closed or routing.DEFAULT_CLOSED_MESSAGE,
        holiday_message=_message(definition.get("holiday_message"), "holiday_message"),
        unavailable_message=_message(definition.get("unavailable_message"), "unavailable_message"),
    )


def faq_entries(definition: Mapping[str, Any]) -> tuple[FaqEntry, ...]:
    """The FAQ menu's questions and answers, in the order they are read."""
    raw = definition.get("faq") or []
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ValueError("faq is a list of {digit, question, answer}")
    if len(raw) > MAX_FAQ_ENTRIES:
        raise ValueError(f"the FAQ menu has at most {MAX_FAQ_ENTRIES} entries (one per key 1-9)")
    entries = []
    seen: set[str] = set()
    for n, item in enumerate(raw):
        where = f"faq[{n}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: an entry is an object")
        digit = str(item.get("digit", ""))
        if digit not in tuple("123456789"):
            raise ValueError(f"{where}: digit must be one of 1-9")
        if digit in seen:
            raise ValueError(f"{where}: digit {digit} is used twice")
        seen.add(digit)
        question = _message(item.get("question"), f"{where}.question")
        answer = _message(item.get("answer"), f"{where}.answer")
        if question is None or answer is None:
            raise ValueError(f"{where}: question and answer are required")
        entries.append(FaqEntry(digit, question, answer))
    return tuple(entries)


def validate_definition(definition: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` when the document is not a usable plan (used before saving one)."""
    plan_from_definition("+0", definition)
    faq_entries(definition)


def _target(raw: Any, where: str, timezone: str) -> Target:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: a target is an object")
    unknown = set(raw) - {
        "kind",
        "site",
        "ring_timeout_s",
        "business_hours",
        "skip_when_unavailable",
        "queue",
        "capacity",
        "message",
    }
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    try:
        kind = TargetKind(str(raw.get("kind")))
    except ValueError:
        raise ValueError(f"{where}: kind must be one of {[k.value for k in TargetKind]}") from None
    hours = raw.get("business_hours")
    capacity = raw.get("capacity")
    try:
        return Target(
            kind=kind,
            site_code=_optional_str(raw.get("site")),
            ring_timeout_s=int(raw.get("ring_timeout_s", routing.DEFAULT_RING_TIMEOUT_S)),
            business_hours=_hours(hours, f"{where}.business_hours", timezone) if hours else None,
            skip_when_unavailable=bool(raw.get("skip_when_unavailable", False)),
            queue_name=_optional_str(raw.get("queue")),
            queue_capacity=int(capacity) if capacity is not None else None,
            message=_message(raw.get("message"), f"{where}.message"),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def _optional_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _message(raw: Any, where: str) -> Message | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return Message(raw)
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: a message is text or {{ja, en, recording_url}}")
    ja, en = str(raw.get("ja") or ""), str(raw.get("en") or "")
    recording = _optional_str(raw.get("recording_url"))
    if not (ja or en or recording):
        raise ValueError(f"{where}: a message needs ja, en or recording_url")
    if recording is not None and not recording.startswith(("https://", "http://")):
        raise ValueError(f"{where}: recording_url must be an http(s) URL")
    return Message(ja, en, recording)


def _hours(raw: Any, where: str, timezone: str) -> BusinessHours:
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise ValueError(f"{where}: a list of {{days, opens, closes}}")
    windows = []
    for n, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}[{n}]: a window is an object")
        windows.append(
            OpeningWindow(
                opens=_clock(item.get("opens"), f"{where}[{n}].opens"),
                closes=_clock(item.get("closes"), f"{where}[{n}].closes"),
                weekdays=_days(item.get("days"), f"{where}[{n}].days"),
            )
        )
    return BusinessHours(tuple(windows), timezone)


def _clock(value: Any, where: str) -> time:
    match = _CLOCK.match(str(value or ""))
    if not match:
        raise ValueError(f"{where}: a time is HH:MM")
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour == 24:
        if minute:
            raise ValueError(f"{where}: 24:MM is not a time")
        return time(0)  # "until midnight": a window closing at 00:00 runs to the end of the day
    return time(hour, minute)


def _days(value: Any, where: str) -> frozenset[int]:
    """``"Mon-Fri"``, ``"Sat,Sun"``, ``[0, 1, 2]`` or absent (every day)."""
    if value is None or value == "":
        return frozenset(range(7))
    if isinstance(value, Sequence) and not isinstance(value, str):
        days = set()
        for day in value:
            if not isinstance(day, int) or not 0 <= day <= 6:
                raise ValueError(f"{where}: weekdays are 0 (Monday) to 6 (Sunday)")
            days.add(day)
        return frozenset(days)
    days = set()
    for part in str(value).replace(" ", "").lower().split(","):
        first, _, last = part.partition("-")
        if first not in _DAY_NAMES or (last and last not in _DAY_NAMES):
            raise ValueError(f"{where}: days are like Mon-Fri or Sat,Sun")
        start, end = _DAY_NAMES[first], _DAY_NAMES[last or first]
        day = start
        while True:
            days.add(day)
            if day == end:
                break
            day = (day + 1) % 7
    return frozenset(days)


def _holidays(raw: Any) -> list[date]:
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ValueError("holidays is a list of YYYY-MM-DD dates")
    out = []
    for value in raw:
        try:
            out.append(date.fromisoformat(str(value)))
        except ValueError:
            raise ValueError(f"holidays: {value!r} is not a YYYY-MM-DD date") from None
    return out
