"""Drills and incident records: the exercise itself, who took part, what was observed, and the corrective
actions that follow an organization from drill to drill until they are closed.

The figures of a report are never stored here: they are read from what actually happened (the linked broadcast,
the routing changes and inbound calls of the drill's window) each time the report is built.
"""

from __future__ import annotations

import enum
import secrets
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

# A drill points at a broadcast, a routing change, sites, users and staff: their tables must be known first.
import continuity.models  # noqa: F401
import core.auth.models
import core.directory.models  # noqa: F401
import ivr.models  # noqa: F401
from core.db import Base, enum_type
from core.time import utcnow


class RecordKind(enum.StrEnum):
    DRILL = "drill"
    INCIDENT = "incident"  # a real event documented with the same record, timeline and report


class DrillType(enum.StrEnum):
    TABLETOP = "tabletop"
    NOTIFICATION_TEST = "notification_test"  # a drill safety broadcast
    RELOCATION = "relocation"  # traffic moved to the alternate site (a failover drill)
    BACKUP_RETRIEVAL = "backup_retrieval"
    OTHER = "other"


class Scenario(enum.StrEnum):
    EARTHQUAKE = "earthquake"
    TSUNAMI = "tsunami"
    TYPHOON = "typhoon"
    PANDEMIC = "pandemic"
    CYBER_ATTACK = "cyber_attack"
    SYSTEM_OUTAGE = "system_outage"
    FIRE = "fire"
    OTHER = "other"


class DrillState(enum.StrEnum):
    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class EntryKind(enum.StrEnum):
    LOG = "log"  # something that happened, for the timeline ("09:12 Osaka marked down")
    OBSERVATION = "observation"  # something an observer noticed
    ISSUE = "issue"  # a problem found; usually leads to a corrective action


class ActionStatus(enum.StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"

    @property
    def is_closed(self) -> bool:
        return self in (ActionStatus.DONE, ActionStatus.CANCELLED)


OPEN_ACTION_STATUSES = (ActionStatus.OPEN, ActionStatus.IN_PROGRESS)


def new_observation_token() -> str:
    """128 random bits: the observation link is the only thing that lets someone without a login write."""
    return secrets.token_urlsafe(16)


class Drill(Base):
    """One exercise (or one real incident, ``kind = incident``) with its plan, its actual window and its links."""

    __tablename__ = "reports_drills"
    __table_args__ = (Index("ix_reports_drills_org_type", "organization_id", "type", "actual_start_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    kind: Mapped[RecordKind] = mapped_column(enum_type(RecordKind, 12), default=RecordKind.DRILL)
    type: Mapped[DrillType] = mapped_column(enum_type(DrillType, 24))
    scenario: Mapped[Scenario] = mapped_column(enum_type(Scenario, 16))
    title: Mapped[str] = mapped_column(String(200))
    objectives: Mapped[str] = mapped_column(Text, default="")
    # Outcomes and recommendations in the exercise team's words (ISO 22301 §8.5 asks for both).
    summary: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[DrillState] = mapped_column(enum_type(DrillState, 12), default=DrillState.PLANNED)
    planned_start_at: Mapped[datetime | None]
    planned_end_at: Mapped[datetime | None]
    actual_start_at: Mapped[datetime | None]
    actual_end_at: Mapped[datetime | None]
    broadcast_id: Mapped[int | None] = mapped_column(
        ForeignKey("ivr_broadcasts.id", ondelete="SET NULL"), index=True
    )
    # The incidents part is optional, so no foreign key: the report shows the incident only when it exists.
    incident_id: Mapped[int | None] = mapped_column(index=True)
    # Failover drills: where traffic should land, and the reroute that counts as "the decision" (when not set,
    # the first site-down / evacuated / line move in the drill's window).
    alternate_site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="SET NULL"))
    decision_change_id: Mapped[int | None] = mapped_column(
        ForeignKey("continuity_changes.id", ondelete="SET NULL")
    )
    observation_token: Mapped[str | None] = mapped_column(String(40), unique=True)
    origin: Mapped[str] = mapped_column(String(20), default="manual")  # "manual" or "schedule"
    reminded_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    participants: Mapped[list[Participant]] = relationship(
        back_populates="drill", cascade="all, delete-orphan", order_by="Participant.id"
    )
    entries: Mapped[list[LogEntry]] = relationship(
        back_populates="drill", cascade="all, delete-orphan", order_by="[LogEntry.at, LogEntry.id]"
    )

    @property
    def starts_at(self) -> datetime | None:
        return self.actual_start_at or self.planned_start_at

    @property
    def ends_at(self) -> datetime | None:
        return self.actual_end_at or (self.planned_end_at if self.actual_start_at is None else None)


class Participant(Base):
    """Someone taking part: a user, a member of staff, or (for outside parties) just a name."""

    __tablename__ = "reports_participants"

    id: Mapped[int] = mapped_column(primary_key=True)
    drill_id: Mapped[int] = mapped_column(ForeignKey("reports_drills.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), index=True)
    name: Mapped[str] = mapped_column(String(200))  # as it was when added: the report must not change later
    role: Mapped[str] = mapped_column(String(100), default="")  # controller, player, observer …
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    drill: Mapped[Drill] = relationship(back_populates="participants")


class LogEntry(Base):
    """A timestamped line of the drill's log: an event, an observation or an issue found."""

    __tablename__ = "reports_log_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    drill_id: Mapped[int] = mapped_column(ForeignKey("reports_drills.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)  # when it happened (the author may backdate it)
    kind: Mapped[EntryKind] = mapped_column(enum_type(EntryKind, 12), default=EntryKind.OBSERVATION)
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(200))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    via: Mapped[str] = mapped_column(String(12), default="web")  # web (signed in) or link (observation link)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    drill: Mapped[Drill] = relationship(back_populates="entries")


class CorrectiveAction(Base):
    """An improvement raised by a drill. It belongs to the organization: every later drill lists it while open."""

    __tablename__ = "reports_corrective_actions"
    __table_args__ = (Index("ix_reports_actions_org_status", "organization_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    drill_id: Mapped[int] = mapped_column(ForeignKey("reports_drills.id", ondelete="CASCADE"), index=True)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("reports_log_entries.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(300))
    detail: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str] = mapped_column(String(200), default="")
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    due_on: Mapped[date | None]
    status: Mapped[ActionStatus] = mapped_column(enum_type(ActionStatus, 12), default=ActionStatus.OPEN)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Set when done or cancelled: a report of an older drill shows the action as it stood on that day.
    closed_at: Mapped[datetime | None]

    drill: Mapped[Drill] = relationship()


DEFAULT_ROTATION = [
    Scenario.EARTHQUAKE.value,
    Scenario.TYPHOON.value,
    Scenario.PANDEMIC.value,
    Scenario.CYBER_ATTACK.value,
]


class DrillSchedule(Base):
    """An organization's recurring drill: every N months on a day, rotating through scenarios."""

    __tablename__ = "reports_schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), unique=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    drill_type: Mapped[DrillType] = mapped_column(
        enum_type(DrillType, 24), default=DrillType.NOTIFICATION_TEST
    )
    every_months: Mapped[int] = mapped_column(default=1)
    day_of_month: Mapped[int] = mapped_column(default=15)  # clamped to the month's last day
    start_hour: Mapped[int] = mapped_column(default=10)  # local time of the organization
    duration_minutes: Mapped[int] = mapped_column(default=60)
    scenarios: Mapped[list[Any]] = mapped_column(JSON, default=lambda: list(DEFAULT_ROTATION))
    next_index: Mapped[int] = mapped_column(default=0)  # position in the rotation of the next drill created
    remind_days_before: Mapped[int] = mapped_column(default=7)
    updated_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
