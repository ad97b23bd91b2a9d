"""Inbound lines and their routing plans, site states, agents, emergencies, reroutes, and every call.

Calls and their legs are kept so a failover drill can later report when traffic reached the alternate site.
Caller numbers are personal data: a call keeps only a keyed hash (to recognise a repeat caller) and a masked
form; voicemails and callback requests, which exist to call someone back, keep the number encrypted.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from continuity.routing import EmergencyScope, SiteState, TargetKind
from core.db import Base, enum_type
from core.time import utcnow


class LineKind(enum.StrEnum):
    CUSTOMER = "customer"  # callers are routed by the line's plan
    AGENT_LOGIN = "agent_login"  # home agents call in to go available or away


class RoutingPlan(Base):
    """A named routing plan; ``definition`` is the document described in :mod:`continuity.plans`."""

    __tablename__ = "continuity_plans"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class InboundLine(Base):
    """One of the center's phone numbers. Numbers are unique across organizations: the carrier's ``To``
    names the line."""

    __tablename__ = "continuity_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)  # E.164
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[LineKind] = mapped_column(enum_type(LineKind, 16), default=LineKind.CUSTOMER)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("continuity_plans.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    plan: Mapped[RoutingPlan | None] = relationship(lazy="joined")


class SiteStatus(Base):
    """A site's state for routing, and its heartbeat. Only a hash of the heartbeat token is stored."""

    __tablename__ = "continuity_site_status"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), unique=True)
    state: Mapped[SiteState] = mapped_column(enum_type(SiteState, 16), default=SiteState.NORMAL)
    state_reason: Mapped[str] = mapped_column(Text, default="")
    state_changed_at: Mapped[datetime | None]
    # True while the site is down because its heartbeats stopped (not because a supervisor said so): only then
    # do returning heartbeats propose, or with auto_return make, the way back up.
    down_for_silence: Mapped[bool] = mapped_column(default=False)
    proposed_up: Mapped[bool] = mapped_column(default=False)
    proposed_up_at: Mapped[datetime | None]
    last_heartbeat_at: Mapped[datetime | None]
    heartbeat_limit_s: Mapped[int] = mapped_column(default=90)
    auto_return: Mapped[bool] = mapped_column(default=False)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str | None] = mapped_column(String(12))
    token_created_at: Mapped[datetime | None]


class Agent(Base):
    """A seat at a site: what to dial (E.164, ``client:…`` or ``sip:…``) and whether someone is there."""

    __tablename__ = "continuity_agents"
    __table_args__ = (UniqueConstraint("organization_id", "endpoint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    endpoint: Mapped[str] = mapped_column(String(200))
    available: Mapped[bool] = mapped_column(default=True)
    available_changed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HomeAgent(Base):
    """A member of staff in the home-agent pool. The number to ring is the person's own: it is stored
    encrypted, with a keyed hash so a call from it can be recognised, and is never shown to anyone else."""

    __tablename__ = "continuity_home_agents"
    __table_args__ = (Index("ix_continuity_home_agents_org_available", "organization_id", "available"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), unique=True)
    number_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    number_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    available: Mapped[bool] = mapped_column(default=False)
    available_changed_at: Mapped[datetime | None]
    pin_hash: Mapped[str | None] = mapped_column(String(255))
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:  # never leak the number through a log line
        return f"<HomeAgent {self.id} staff={self.staff_id} available={self.available}>"


class Emergency(Base):
    """Emergency mode for a line, a site or everything; ignored once ``ended_at`` or ``ends_at`` has passed."""

    __tablename__ = "continuity_emergencies"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    scope: Mapped[EmergencyScope] = mapped_column(enum_type(EmergencyScope, 8))
    line_id: Mapped[int | None] = mapped_column(ForeignKey("continuity_lines.id", ondelete="CASCADE"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    announcement_ja: Mapped[str] = mapped_column(Text, default="")
    announcement_en: Mapped[str] = mapped_column(Text, default="")
    recording_url: Mapped[str | None] = mapped_column(String(500))
    starts_at: Mapped[datetime] = mapped_column(default=utcnow)
    ends_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(index=True)
    ended_by: Mapped[str | None] = mapped_column(String(200))


class LineOverride(Base):
    """A supervisor's reroute of one line: to another plan, and/or its traffic split across sites by weight.
    ``split`` is a list of ``{"site": code, "weight": n}``."""

    __tablename__ = "continuity_line_overrides"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("continuity_lines.id", ondelete="CASCADE"), unique=True)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("continuity_plans.id", ondelete="CASCADE"))
    split: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChangeKind(enum.StrEnum):
    SITE_STATE = "site_state"
    LINE_OVERRIDE = "line_override"
    EMERGENCY = "emergency"


class RoutingChange(Base):
    """Every reroute, with who, when and why, and the state before and after, so it can be undone."""

    __tablename__ = "continuity_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    kind: Mapped[ChangeKind] = mapped_column(enum_type(ChangeKind, 16))
    subject_id: Mapped[int] = mapped_column()  # site id, line id or emergency id, by kind
    summary: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    before: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    undoes_id: Mapped[int | None] = mapped_column(ForeignKey("continuity_changes.id", ondelete="SET NULL"))
    undone_at: Mapped[datetime | None]
    undone_by: Mapped[str | None] = mapped_column(String(200))


class InboundCall(Base):
    """One call to one of the lines, identified by the carrier's call SID."""

    __tablename__ = "continuity_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("continuity_lines.id", ondelete="CASCADE"), index=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    caller_hash: Mapped[str] = mapped_column(String(64), index=True)
    caller_masked: Mapped[str] = mapped_column(String(40))
    mode: Mapped[str] = mapped_column(String(16))  # routing.Mode of the first decision
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # completed (someone took it), voicemail, callback_request, sms_sent, hung_up, exhausted…
    outcome: Mapped[str | None] = mapped_column(String(32))

    legs: Mapped[list[CallLeg]] = relationship(
        back_populates="call", order_by="CallLeg.position", cascade="all, delete-orphan"
    )


class LegOutcome(enum.StrEnum):
    """What became of one target of a call. ``None`` on the row while it is still ringing or waiting."""

    COMPLETED = "completed"  # a person took the call (Dial answered, or picked up from the queue)
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    FAILED = "failed"
    CANCELED = "canceled"
    LEFT_QUEUE = "left-queue"  # waited too long in the queue, moved on
    HUNG_UP = "hung-up"  # the caller hung up while this target was ringing or waiting
    PLAYED = "played"  # announcement, FAQ menu, voicemail greeting… played, then the call moved on
    RECORDED = "recorded"  # a voicemail was left
    SMS_SENT = "sms-sent"
    CALLBACK_REQUESTED = "callback-requested"


class CallLeg(Base):
    """One target tried for a call: its place in the line-up, what it was, when, and how it ended."""

    __tablename__ = "continuity_call_legs"
    __table_args__ = (
        UniqueConstraint("call_id", "position"),
        Index("ix_continuity_call_legs_started", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("continuity_calls.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column()
    kind: Mapped[TargetKind] = mapped_column(enum_type(TargetKind, 20))
    site_code: Mapped[str | None] = mapped_column(String(20))
    queue_name: Mapped[str | None] = mapped_column(String(60))
    reason: Mapped[str] = mapped_column(Text, default="")
    endpoint_count: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    outcome: Mapped[LegOutcome | None] = mapped_column(enum_type(LegOutcome, 20))
    dial_call_sid: Mapped[str | None] = mapped_column(String(64))
    duration_s: Mapped[int | None]

    call: Mapped[InboundCall] = relationship(back_populates="legs")


class Voicemail(Base):
    __tablename__ = "continuity_voicemails"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("continuity_lines.id", ondelete="CASCADE"))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("continuity_calls.id", ondelete="SET NULL"))
    recording_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    recording_url: Mapped[str] = mapped_column(String(500))
    duration_s: Mapped[int] = mapped_column(default=0)
    caller_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    caller_masked: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    handled_at: Mapped[datetime | None]
    handled_by: Mapped[str | None] = mapped_column(String(200))

    def __repr__(self) -> str:
        return f"<Voicemail {self.id} line={self.line_id}>"


class CallbackRequest(Base):
    __tablename__ = "continuity_callback_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("continuity_lines.id", ondelete="CASCADE"))
    call_id: Mapped[int | None] = mapped_column(
        ForeignKey("continuity_calls.id", ondelete="SET NULL"), unique=True
    )
    caller_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    caller_masked: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    handled_at: Mapped[datetime | None]
    handled_by: Mapped[str | None] = mapped_column(String(200))

    def __repr__(self) -> str:
        return f"<CallbackRequest {self.id} line={self.line_id}>"
