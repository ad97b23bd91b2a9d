"""What the JMA auto-trigger remembers: feed health, every bulletin received, every decision and why, the state of
each event per organization, held broadcasts waiting for their countdown, and each organization's rules.

Bulletins and feeds are global (JMA publishes one feed for everybody); events, decisions, holds and rules belong
to one organization.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, enum_type
from core.time import utcnow


class FeedState(Base):
    """One JMA Atom feed (``eqvol``, ``extra``): the validators for conditional requests and how healthy it is."""

    __tablename__ = "jma_feed_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    feed: Mapped[str] = mapped_column(String(20), unique=True)
    url: Mapped[str] = mapped_column(Text, default="")
    # Sent back as If-None-Match / If-Modified-Since; only valid for ``url`` (a changed feed base drops them).
    etag: Mapped[str | None] = mapped_column(String(200))
    last_modified: Mapped[str | None] = mapped_column(String(64))
    last_checked_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_status: Mapped[int | None]  # HTTP status of the last answer (None: no answer at all)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    entries_in_feed: Mapped[int] = mapped_column(default=0)


class BulletinState(enum.StrEnum):
    CLAIMED = "claimed"  # a worker took it and is fetching / processing it (a stale claim is taken over)
    PROCESSED = "processed"  # parsed, evaluated for every organization, decisions acted on
    INVALID = "invalid"  # fetched but not a bulletin we can read (the error says why); never retried
    FETCH_FAILED = "fetch_failed"  # the bulletin could not be downloaded; retried a few times
    FAILED = "failed"  # processing raised; retried a few times, then left for a person to look at


class JmaBulletin(Base):
    """One bulletin, fetched and processed once: ``entry_id`` is unique, so a worker that loses the race to insert
    it does nothing."""

    __tablename__ = "jma_bulletins"
    __table_args__ = (
        Index("ix_jma_bulletins_state", "state", "claimed_at"),
        Index("ix_jma_bulletins_event_key", "event_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The Atom entry id (JMA uses the bulletin's URL) or ``replay:<uuid>`` for a bulletin injected by hand.
    entry_id: Mapped[str] = mapped_column(String(500), unique=True)
    source: Mapped[str] = mapped_column(String(20))  # eqvol, extra, replay
    url: Mapped[str | None] = mapped_column(Text)
    feed_title: Mapped[str] = mapped_column(String(200), default="")
    feed_updated_at: Mapped[datetime | None]
    state: Mapped[BulletinState] = mapped_column(enum_type(BulletinState, 16), default=BulletinState.CLAIMED)
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    received_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None]
    raw_zlib: Mapped[bytes | None] = mapped_column(LargeBinary)  # the bytes as received, zlib-compressed
    document: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # Bulletin.to_json_dict()
    title: Mapped[str] = mapped_column(String(200), default="")
    data_type: Mapped[str | None] = mapped_column(String(10))
    status: Mapped[str | None] = mapped_column(String(4))  # Control/Status: 通常, 訓練, 試験
    info_type: Mapped[str | None] = mapped_column(String(4))  # Head/InfoType: 発表, 訂正, 取消 …
    kind: Mapped[str | None] = mapped_column(String(20))
    event_key: Mapped[str | None] = mapped_column(String(255))
    report_time: Mapped[datetime | None]
    headline: Mapped[str | None] = mapped_column(Text)


class JmaRuleSet(Base):
    """An organization's rules (the JSON of :class:`ivr.jma.rules.RuleSet`) and its switches."""

    __tablename__ = "jma_rulesets"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), unique=True)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Off: bulletins are still evaluated and recorded, but nothing is sent or held.
    enabled: Mapped[bool] = mapped_column(default=True)
    # Routing emergency mode for a site whose prefecture reaches this intensity in a real earthquake; None = never.
    emergency_min_intensity: Mapped[str | None] = mapped_column(String(4))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200), default="")


class EventStatus(enum.StrEnum):
    HELD = "held"  # waiting for its countdown (a HeldTrigger)
    SENT = "sent"  # the broadcast was started
    CANCELLED = "cancelled"  # withdrawn while held: nobody was contacted
    ENDED = "ended"  # the warning was lifted; a new one for the same region is a new event


class JmaEvent(Base):
    """What was decided so far for one event (EventID or weather region), one template, real or drill."""

    __tablename__ = "jma_events"
    __table_args__ = (UniqueConstraint("organization_id", "event_key", "template", "mode"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    event_key: Mapped[str] = mapped_column(String(255))
    template: Mapped[str] = mapped_column(String(40))
    mode: Mapped[str] = mapped_column(String(8))  # real, drill
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[EventStatus] = mapped_column(enum_type(EventStatus, 12))
    audience: Mapped[dict[str, Any]] = mapped_column(JSON)  # ivr.jma.rules.Audience.to_json_dict()
    max_intensity: Mapped[str | None] = mapped_column(String(4))
    # Highest intensity seen per prefecture in this event's bulletins (for emergency mode).
    prefecture_intensities: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # Sites this event already switched to emergency mode: a later bulletin never switches them on again (a
    # supervisor may have ended it on purpose).
    emergency_sites: Mapped[list[str]] = mapped_column(JSON, default=list)
    # ReportDateTime of the bulletin that started it, and of the latest one about it (JMA's clock, not ours).
    report_time: Mapped[datetime]
    last_report_time: Mapped[datetime]
    broadcast_id: Mapped[int | None] = mapped_column(ForeignKey("ivr_broadcasts.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None]


class HeldState(enum.StrEnum):
    WAITING = "waiting"
    RELEASED = "released"  # the broadcast was started (countdown over, or "send now")
    CANCELLED = "cancelled"  # 取消 / 訂正 from JMA, or a person pressed "cancel"


class HeldTrigger(Base):
    """A broadcast waiting ``hold_minutes`` before it starts, in case JMA withdraws the bulletin."""

    __tablename__ = "jma_held_triggers"
    __table_args__ = (Index("ix_jma_held_triggers_due", "state", "send_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("jma_events.id", ondelete="CASCADE"), index=True)
    send_at: Mapped[datetime]
    state: Mapped[HeldState] = mapped_column(enum_type(HeldState, 12), default=HeldState.WAITING)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolution: Mapped[str | None] = mapped_column(Text)
    broadcast_id: Mapped[int | None] = mapped_column(ForeignKey("ivr_broadcasts.id", ondelete="SET NULL"))

    event: Mapped[JmaEvent] = relationship(lazy="joined")


class JmaDecision(Base):
    """One decision and why — from a bulletin (``bulletin_id``) or from a countdown / a person (release, cancel)."""

    __tablename__ = "jma_decisions"
    __table_args__ = (Index("ix_jma_decisions_org_created", "organization_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    bulletin_id: Mapped[int | None] = mapped_column(
        ForeignKey("jma_bulletins.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[int | None] = mapped_column(ForeignKey("jma_events.id", ondelete="SET NULL"))
    # start, hold, widen, cancel, notify_only, suppress, replace (the rules' words); release (a hold ran out or
    # "send now")
    action: Mapped[str] = mapped_column(String(20))
    template: Mapped[str | None] = mapped_column(String(40))
    mode: Mapped[str | None] = mapped_column(String(8))
    event_key: Mapped[str] = mapped_column(String(255), default="")
    reason: Mapped[str] = mapped_column(Text)
    # What was actually done, e.g. "broadcast 12 started to 34 people" or why it could not be.
    outcome: Mapped[str] = mapped_column(Text, default="")
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    hold_until: Mapped[datetime | None]
    max_intensity: Mapped[str | None] = mapped_column(String(4))
    broadcast_id: Mapped[int | None] = mapped_column(ForeignKey("ivr_broadcasts.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(200), default="jma")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JmaNotification(Base):
    """A message to the crisis managers (aftershock, withdrawn after sending, a broadcast on hold …)."""

    __tablename__ = "jma_notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("jma_decisions.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)  # e-mail addresses it was queued to
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
