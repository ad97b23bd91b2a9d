"""What a printed drill (or incident) report says, as plain values: the service fills it, ``reports.pdf`` prints it.

Free texts (titles, observations, department names) are as entered; the labels of types, scenarios and states
are already in the report's language. Datetimes are aware; the printer shows them in ``timezone``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from reports.metrics import ComparisonRow, CurvePoint, FailoverFigures, GroupFigures, UnreachableContact

Translate = Callable[[str], str]


# How an attempt or a lost call ended, in words (message ids).
OUTCOME_LABELS: dict[str, str] = {
    "completed": "completed",
    "machine": "voicemail picked up",
    "failed": "failed",
    "no_answer": "no answer",
    "busy": "busy",
    "voicemail": "voicemail",
    "callback_request": "callback request",
    "sms_sent": "SMS link sent",
    "hung_up": "caller hung up",
    "exhausted": "no target left",
    "announcement": "announcement only",
    "ended": "ended without an agent",
}


def outcome_label(value: str, tr: Translate) -> str:
    return tr(OUTCOME_LABELS.get(value, value))


def identity(message: str) -> str:
    return message


@dataclass(frozen=True)
class PersonRow:
    """Someone who never answered the drill broadcast (hidden executives are unnamed)."""

    employee_id: str
    name: str
    department: str
    site: str
    last_attempt: str


@dataclass(frozen=True)
class BroadcastSection:
    id: int
    title: str
    state: str
    started_at: datetime | None
    closed_at: datetime | None
    recipients: int
    answered: int
    unreached: int
    in_progress: int
    answer_rate: float
    times: dict[int, float | None]  # percent → seconds to reach it
    median_seconds: float | None
    curve: list[CurvePoint]
    by_department: list[GroupFigures]
    by_site: list[GroupFigures]
    unreachable_contacts: list[UnreachableContact]
    unreached_people: list[PersonRow]
    unreached_people_total: int = 0


@dataclass(frozen=True)
class RoutingRow:
    at: datetime
    actor: str
    summary: str
    reason: str
    is_decision: bool = False


@dataclass(frozen=True)
class FailoverSection:
    figures: FailoverFigures
    changes: list[RoutingRow]
    alternate_site_label: str
    down_site_label: str


@dataclass(frozen=True)
class KeyFigure:
    label: str
    value: str


@dataclass(frozen=True)
class TimelineRow:
    at: datetime
    source: str  # already translated: "Log", "Observation", "Safety call", "Routing", "Incident" …
    actor: str
    text: str


@dataclass(frozen=True)
class ActionRow:
    id: int
    title: str
    detail: str
    owner: str
    due_on: date | None
    status: str  # ActionStatus value
    status_label: str
    raised_in: str  # title of the drill that raised it
    carried_over: bool  # raised by an earlier drill and still open when this one took place
    overdue: bool


@dataclass(frozen=True)
class ParticipantRow:
    name: str
    role: str
    affiliation: str


@dataclass(frozen=True)
class ComparisonSection:
    headers: list[str]  # one per earlier drill, most recent first (e.g. "2026-03-15 Earthquake")
    rows: list[ComparisonRow]
    labels: dict[str, str]  # key → label in the report's language
    units: dict[str, str]  # key → "seconds", "percent" or "count"


@dataclass
class DrillReport:
    id: int
    language: str
    timezone: str
    organization: str
    kind: str  # "drill" or "incident"
    title: str
    type_label: str
    scenario_label: str
    state_label: str
    planned_start: datetime | None
    planned_end: datetime | None
    actual_start: datetime | None
    actual_end: datetime | None
    objectives: str
    summary: str
    generated_at: datetime
    participants: list[ParticipantRow] = field(default_factory=list)
    broadcast: BroadcastSection | None = None
    failover: FailoverSection | None = None
    incident_figures: list[KeyFigure] = field(default_factory=list)
    timeline: list[TimelineRow] = field(default_factory=list)
    observations: list[TimelineRow] = field(default_factory=list)
    issues: list[TimelineRow] = field(default_factory=list)
    actions: list[ActionRow] = field(default_factory=list)
    comparison: ComparisonSection | None = None
    scope_note: str = ""


def format_duration(seconds: float | None, tr: Translate = identity) -> str:
    """``None`` → "-" (never reached); otherwise "45 s", "4 min 30 s" or "2 h 05 min" in the reader's words."""
    if seconds is None:
        return "-"
    total = round(seconds)
    if total < 60:
        return tr("{s} s").format(s=total)
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return tr("{m} min {s} s").format(m=minutes, s=f"{secs:02d}")
    hours, minutes = divmod(minutes, 60)
    return tr("{h} h {m} min").format(h=hours, m=f"{minutes:02d}")


def format_percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} %"
