"""The words for the reports part's enums: English message ids, translated by the i18n catalogue."""

from __future__ import annotations

from reports.document import OUTCOME_LABELS  # noqa: F401  (part of this vocabulary)
from reports.models import ActionStatus, DrillState, DrillType, EntryKind, RecordKind, Scenario

TYPE_LABELS: dict[DrillType, str] = {
    DrillType.TABLETOP: "Tabletop exercise",
    DrillType.NOTIFICATION_TEST: "Notification test",
    DrillType.RELOCATION: "Relocation to the alternate site",
    DrillType.BACKUP_RETRIEVAL: "Backup-data retrieval",
    DrillType.OTHER: "Other",
}

SCENARIO_LABELS: dict[Scenario, str] = {
    Scenario.EARTHQUAKE: "Earthquake",
    Scenario.TSUNAMI: "Tsunami",
    Scenario.TYPHOON: "Typhoon / heavy rain",
    Scenario.PANDEMIC: "Pandemic",
    Scenario.CYBER_ATTACK: "Cyber attack",
    Scenario.SYSTEM_OUTAGE: "System outage",
    Scenario.FIRE: "Fire",
    Scenario.OTHER: "Other",
}

STATE_LABELS: dict[DrillState, str] = {
    DrillState.PLANNED: "Planned",
    DrillState.IN_PROGRESS: "In progress",
    DrillState.COMPLETED: "Completed",
    DrillState.CANCELLED: "Cancelled",
}

ENTRY_LABELS: dict[EntryKind, str] = {
    EntryKind.LOG: "Log",
    EntryKind.OBSERVATION: "Observation",
    EntryKind.ISSUE: "Issue",
}

ACTION_LABELS: dict[ActionStatus, str] = {
    ActionStatus.OPEN: "Open",
    ActionStatus.IN_PROGRESS: "In progress",
    ActionStatus.DONE: "Done",
    ActionStatus.CANCELLED: "Cancelled",
}

KIND_LABELS: dict[RecordKind, str] = {RecordKind.DRILL: "Drill", RecordKind.INCIDENT: "Incident"}

# Figures of the comparison table and of the metrics CSV: key → (label, unit).
FIGURES: dict[str, tuple[str, str]] = {
    "recipients": ("Recipients", "count"),
    "answered": ("Answered", "count"),
    "answer_rate": ("Answer rate", "percent"),
    "t25": ("Time to 25 % answered", "seconds"),
    "t50": ("Time to 50 % answered", "seconds"),
    "t75": ("Time to 75 % answered", "seconds"),
    "t90": ("Time to 90 % answered", "seconds"),
    "median": ("Median time to answer", "seconds"),
    "unreachable_contacts": ("Unreachable contact points", "count"),
    "failover_seconds": ("Decision to first call answered at the alternate site", "seconds"),
    "calls_lost": ("Calls lost", "count"),
}
