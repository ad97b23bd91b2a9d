"""Safety broadcasts: templates, broadcasts, one recipient per person, every attempt and every answer.

The database is the source of truth for outbound work: a recipient's ``next_action_at`` says when the ladder
moves next, an attempt's ``state`` and lease say whether a message or call still has to leave. Workers only
execute rows; nothing important lives only in the broker.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

import core.pacing  # noqa: F401  (its bucket table belongs to the same metadata)
from core.db import Base, enum_type
from core.time import utcnow


class BroadcastMode(enum.StrEnum):
    REAL = "real"
    DRILL = "drill"


class BroadcastState(enum.StrEnum):
    DRAFT = "draft"
    SENDING = "sending"  # the ladder is still working through people
    OPEN = "open"  # everyone answered or the ladders ran out; answers still accepted
    CLOSED = "closed"  # no more answers; links show "closed"
    CANCELLED = "cancelled"  # stopped before it finished; no more sends, no more answers

    @property
    def accepts_answers(self) -> bool:
        return self in (BroadcastState.SENDING, BroadcastState.OPEN)


class RecipientState(enum.StrEnum):
    PENDING = "pending"  # nothing sent yet
    CONTACTING = "contacting"  # the ladder is running
    ANSWERED = "answered"  # answered on any channel: the ladder stops
    UNREACHED = "unreached"  # the ladder ran out without an answer (a later answer still counts)


class AttemptChannel(enum.StrEnum):
    SMS = "sms"
    EMAIL = "email"
    VOICE = "voice"


class AttemptState(enum.StrEnum):
    """Where one call / message is. Only moves forward (see :data:`ivr.service.STATE_RANK`)."""

    PENDING = "pending"  # waiting for a worker and a pacing token
    RETRY = "retry"  # a transient provider error; leaves again at ``retry_at``
    DIALING = "dialing"  # a worker holds the lease and is handing it to the provider right now
    IN_PROGRESS = "in_progress"  # the provider accepted it (queued / ringing / answered / sent)
    COMPLETED = "completed"  # a call ended after being answered by a person / a message was delivered
    NO_ANSWER = "no_answer"  # rang until the timeout
    BUSY = "busy"  # the line was busy
    MACHINE = "machine"  # voicemail picked up: it got a short message, the SMS link was sent instead
    FAILED = "failed"  # the provider refused it or it could not be delivered (see error_code / error_reason)
    CANCELLED = "cancelled"  # not sent: the person answered elsewhere or the broadcast closed first

    @property
    def is_final(self) -> bool:
        return self in FINAL_ATTEMPT_STATES


FINAL_ATTEMPT_STATES = frozenset(
    {
        AttemptState.COMPLETED,
        AttemptState.NO_ANSWER,
        AttemptState.BUSY,
        AttemptState.MACHINE,
        AttemptState.FAILED,
        AttemptState.CANCELLED,
    }
)


class AnswerChannel(enum.StrEnum):
    WEB = "web"
    VOICE = "voice"
    SMS = "sms"


class BroadcastTemplate(Base):
    """A scenario template of one organization (seeded from the built-ins, editable by crisis managers)."""

    __tablename__ = "ivr_templates"
    __table_args__ = (UniqueConstraint("organization_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    key: Mapped[str] = mapped_column(String(40))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    builtin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Broadcast(Base):
    __tablename__ = "ivr_broadcasts"
    __table_args__ = (Index("ix_ivr_broadcasts_org_state", "organization_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    template_key: Mapped[str] = mapped_column(String(40))
    template: Mapped[dict[str, Any]] = mapped_column(JSON)  # snapshot at start
    title: Mapped[str] = mapped_column(String(200))
    mode: Mapped[BroadcastMode] = mapped_column(enum_type(BroadcastMode, 8))
    state: Mapped[BroadcastState] = mapped_column(enum_type(BroadcastState, 12), default=BroadcastState.DRAFT)
    channels: Mapped[list[str]] = mapped_column(JSON)
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # as chosen, for the record
    include_family: Mapped[bool] = mapped_column(default=False)
    origin: Mapped[str] = mapped_column(String(120), default="manual", index=True)  # "manual", "jma:<event>"
    created_by: Mapped[str] = mapped_column(String(200))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    closes_at: Mapped[datetime | None]  # the deadline: answers are refused after it
    closed_at: Mapped[datetime | None]
    first_answer_at: Mapped[datetime | None]
    summary_due_at: Mapped[datetime | None]
    summary_sent_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]


class Recipient(Base):
    """One person in one broadcast. ``site_id``/``department_id``/``prefecture`` are copied for GROUP BY."""

    __tablename__ = "ivr_recipients"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "staff_id"),
        # The dispatcher's query: due people of running broadcasts.
        Index("ix_ivr_recipients_due", "state", "next_action_at"),
        Index("ix_ivr_recipients_broadcast_state", "broadcast_id", "state"),
        # Covers the live status's per-person counts (ivr.service._recipient_cube groups by these columns) and
        # the overview's answer curve (answered_at): both read the index alone, never the rows.
        Index(
            "ix_ivr_recipients_counts",
            "broadcast_id",
            "department_id",
            "site_id",
            "prefecture",
            "state",
            "answer_channel",
            "answered_at",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("ivr_broadcasts.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    language: Mapped[str] = mapped_column(String(2), default="ja")
    state: Mapped[RecipientState] = mapped_column(
        enum_type(RecipientState, 12), default=RecipientState.PENDING
    )
    cycle: Mapped[int] = mapped_column(default=0)  # position of the next ladder step
    step: Mapped[int] = mapped_column(default=0)
    next_action_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    answer_channel: Mapped[AnswerChannel | None] = mapped_column(enum_type(AnswerChannel, 8))
    last_attempt_id: Mapped[int | None]  # no foreign key: recipients and attempts would point at each other
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="SET NULL"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id", ondelete="SET NULL"))
    prefecture: Mapped[str] = mapped_column(String(2), default="")  # the site's prefecture
    home_prefecture: Mapped[str] = mapped_column(String(2), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Attempt(Base):
    """One SMS, e-mail or call to one contact point. The id is the idempotency key of the send."""

    __tablename__ = "ivr_attempts"
    __table_args__ = (
        Index("ix_ivr_attempts_due", "state", "due_at"),
        Index("ix_ivr_attempts_lease", "state", "lease_until"),
        Index("ix_ivr_attempts_recipient", "recipient_id", "cycle", "step"),
        Index("ix_ivr_attempts_to_digest", "to_digest"),
        # Covers the live status's attempt counts (ivr.service.attempt_counts): read from the index alone.
        Index("ix_ivr_attempts_counts", "broadcast_id", "channel", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("ivr_broadcasts.id", ondelete="CASCADE"), index=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("ivr_recipients.id", ondelete="CASCADE"))
    channel: Mapped[AttemptChannel] = mapped_column(enum_type(AttemptChannel, 8))
    contact_point_id: Mapped[int | None] = mapped_column(ForeignKey("contact_points.id", ondelete="SET NULL"))
    cycle: Mapped[int] = mapped_column(default=0)
    step: Mapped[int] = mapped_column(default=0)
    purpose: Mapped[str] = mapped_column(
        String(20), default="ladder"
    )  # ladder, machine_followup, resend, invite
    state: Mapped[AttemptState] = mapped_column(enum_type(AttemptState, 12), default=AttemptState.PENDING)
    # Masked at send time ("+81 90-****-0012", "t***@example.com"): private values never sit here in clear.
    to_masked: Mapped[str] = mapped_column(String(80), default="")
    # HMAC of the address, so an inbound SMS can be matched to its recipient without storing the number.
    to_digest: Mapped[str | None] = mapped_column(String(64))
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    provider_status: Mapped[str | None] = mapped_column(String(20))  # Twilio's own word, as last reported
    answered_by: Mapped[str | None] = mapped_column(String(30))  # Twilio AMD: human, machine_start…
    error_code: Mapped[str | None] = mapped_column(String(12))  # Twilio error code, e.g. 21211
    error_reason: Mapped[str | None] = mapped_column(Text)
    tries: Mapped[int] = mapped_column(default=0)  # how many times a worker took the lease
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[datetime | None]
    body: Mapped[str | None] = mapped_column(Text)  # the text of a custom message (resend / invite)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    placed_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]


def ladder_attempt_row(
    *, broadcast_id: int, channel: str, cycle: int, step: int, now: datetime
) -> dict[str, Any]:
    """The columns of one send of a ladder step, due now (for Core inserts: the dispatcher's ladder step and the
    first step ``start_broadcast`` takes); the caller adds ``recipient_id`` and ``contact_point_id``."""
    return {
        "broadcast_id": broadcast_id,
        "channel": AttemptChannel(channel),
        "cycle": cycle,
        "step": step,
        "purpose": "ladder",
        "state": AttemptState.PENDING,
        "due_at": now,
        "tries": 0,
        "created_at": now,
        "updated_at": now,
    }


class Answer(Base):
    """Every answer ever given; ``current`` marks the latest per recipient and question (the one that counts)."""

    __tablename__ = "ivr_answers"
    __table_args__ = (
        Index("ix_ivr_answers_count", "broadcast_id", "current", "question_key", "value"),
        Index("ix_ivr_answers_recipient", "recipient_id", "question_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("ivr_broadcasts.id", ondelete="CASCADE"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("ivr_recipients.id", ondelete="CASCADE"))
    question_key: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(String(8))  # option digit; "" for free text / a voice message
    free_text: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[AnswerChannel] = mapped_column(enum_type(AnswerChannel, 8))
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("ivr_attempts.id", ondelete="SET NULL"))
    current: Mapped[bool] = mapped_column(default=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Invitation(Base):
    """ "Message everyone who answered X": who was invited to what (the routing part reads accepted ones)."""

    __tablename__ = "ivr_invitations"
    __table_args__ = (UniqueConstraint("broadcast_id", "recipient_id", "purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("ivr_broadcasts.id", ondelete="CASCADE"), index=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("ivr_recipients.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(40))  # e.g. "home_agent_pool"
    token: Mapped[str] = mapped_column(String(32), unique=True)
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[datetime | None]
    declined_at: Mapped[datetime | None]

    recipient: Mapped[Recipient] = relationship()


# The JMA trigger's tables belong to this part too: loading the part's models loads them (Alembic, create_all).
import ivr.jma.models  # noqa: E402, F401
