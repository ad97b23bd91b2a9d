"""Incident command and crisis communication: incidents with their checklist and events, the public status page,
partner notices and their deliveries, bulletin boards, team conversations, care follow-up and notifications.

Outbound notices follow the same rule as safety calls: a delivery row per contact and channel is the source of
truth for what still has to leave; workers only execute rows.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

import ivr.models  # noqa: F401  (notices and care cases point at broadcasts)
from core.db import Base, enum_type
from core.time import utcnow

# --- incidents -------------------------------------------------------------------------------------------------


class IncidentType(enum.StrEnum):
    EARTHQUAKE = "earthquake"
    TSUNAMI = "tsunami"
    HEAVY_RAIN = "heavy_rain"  # heavy rain and typhoons share one playbook
    PANDEMIC = "pandemic"
    SYSTEM_OUTAGE = "system_outage"
    OTHER = "other"


class IncidentSeverity(enum.StrEnum):
    MINOR = "minor"  # one site disturbed, business continues
    MAJOR = "major"  # a site lost or many people affected
    CRITICAL = "critical"  # the organization's continuity is at stake

    @property
    def rank(self) -> int:
        return list(IncidentSeverity).index(self)


class IncidentState(enum.StrEnum):
    PROPOSED = "proposed"  # suggested by a JMA rule; a crisis manager confirms or dismisses it
    ACTIVE = "active"
    CLOSED = "closed"
    DISMISSED = "dismissed"  # a proposal that was not an incident after all


incident_sites = Table(
    "incident_sites",
    Base.metadata,
    Column("incident_id", ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True),
    Column("site_id", ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True),
)


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_org_state", "organization_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    type: Mapped[IncidentType] = mapped_column(enum_type(IncidentType, 20))
    title: Mapped[str] = mapped_column(String(200))
    severity: Mapped[IncidentSeverity] = mapped_column(enum_type(IncidentSeverity, 12))
    state: Mapped[IncidentState] = mapped_column(enum_type(IncidentState, 12), default=IncidentState.ACTIVE)
    # "manual", or what proposed it, e.g. "jma:20240101161010_20240101161010" — one proposal per source.
    source: Mapped[str] = mapped_column(String(120), default="manual", index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # When the event itself began (a bulletin's time); the timeline window opens here, not at the declaration.
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    declared_at: Mapped[datetime | None]
    declared_by: Mapped[str] = mapped_column(String(200), default="")
    declared_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(200))
    closing_summary: Mapped[str] = mapped_column(Text, default="")
    # Frozen at closing, so a report printed next year shows what was known when the incident ended.
    key_figures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    sites: Mapped[list[Any]] = relationship("Site", secondary=incident_sites, lazy="selectin")
    members: Mapped[list[IncidentMember]] = relationship(
        back_populates="incident", cascade="all, delete-orphan", lazy="selectin"
    )
    steps: Mapped[list[ChecklistStep]] = relationship(
        back_populates="incident", cascade="all, delete-orphan", order_by="ChecklistStep.position"
    )

    @property
    def is_open(self) -> bool:
        return self.state in (IncidentState.PROPOSED, IncidentState.ACTIVE)


class MemberRole(enum.StrEnum):
    COMMANDER = "commander"
    DEPUTY = "deputy"


class IncidentMember(Base):
    """The incident commander (one) and deputies, all users of the organization."""

    __tablename__ = "incident_members"
    __table_args__ = (UniqueConstraint("incident_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[MemberRole] = mapped_column(enum_type(MemberRole, 12))
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)

    incident: Mapped[Incident] = relationship(back_populates="members")
    user: Mapped[Any] = relationship("User", lazy="joined")


class Phase(enum.StrEnum):
    INITIAL_RESPONSE = "initial_response"
    NOTIFY = "notify"  # customers and partners
    EMERGENCY_MEASURES = "emergency_measures"
    RECOVERY = "recovery"


class StepState(enum.StrEnum):
    TODO = "todo"
    DOING = "doing"
    DONE = "done"
    SKIPPED = "skipped"


class ChecklistStep(Base):
    __tablename__ = "incident_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    phase: Mapped[Phase] = mapped_column(enum_type(Phase, 20))
    title_ja: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200), default="")
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    state: Mapped[StepState] = mapped_column(enum_type(StepState, 8), default=StepState.TODO)
    note: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    incident: Mapped[Incident] = relationship(back_populates="steps")
    owner: Mapped[Any] = relationship("User", lazy="joined")

    def title(self, language: str) -> str:
        return self.title_en if language == "en" and self.title_en else self.title_ja


class IncidentEvent(Base):
    """What happened to the incident itself (declared, commander assigned, a step done, a decision taken).

    The rest of the timeline — broadcasts, reroutes, site states — is read from the audit log.
    """

    __tablename__ = "incident_events"
    __table_args__ = (Index("ix_incident_events_incident_at", "incident_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(
        String(40)
    )  # declared, commander, deputy, step, decision, note, closed…
    actor: Mapped[str] = mapped_column(String(200))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# --- public status page ------------------------------------------------------------------------------------------


class ServiceState(enum.StrEnum):
    NORMAL = "normal"
    DEGRADED = "degraded"
    OUTAGE = "outage"

    @property
    def rank(self) -> int:
        return list(ServiceState).index(self)


class StatusPage(Base):
    """Everything the public page shows, in one row found by the organization's slug: no join on the way out.

    ``entries`` is a list of ``{"key", "label_ja", "label_en", "state", "site_id"}``.
    """

    __tablename__ = "incident_status_pages"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), unique=True)
    slug: Mapped[str] = mapped_column(String(60), unique=True)  # copied from the organization
    title: Mapped[str] = mapped_column(String(200))  # the organization's name, copied
    announcement_ja: Mapped[str] = mapped_column(Text, default="")
    announcement_en: Mapped[str] = mapped_column(Text, default="")
    entries: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200), default="")
    version: Mapped[int] = mapped_column(default=1)  # part of the ETag


# --- partner and customer notices --------------------------------------------------------------------------------


class PartnerKind(enum.StrEnum):
    CUSTOMER = "customer"
    PARTNER = "partner"


class PartnerContact(Base):
    """An external contact: a company (and the person there) to tell when something happens.

    A company's contact details are business data, not private: stored as they are.
    """

    __tablename__ = "incident_partner_contacts"
    __table_args__ = (UniqueConstraint("organization_id", "company", "person"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    kind: Mapped[PartnerKind] = mapped_column(enum_type(PartnerKind, 12), default=PartnerKind.PARTNER)
    company: Mapped[str] = mapped_column(String(200))
    person: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(20), default="")  # E.164
    email: Mapped[str] = mapped_column(String(254), default="")
    language: Mapped[str] = mapped_column(String(2), default="ja")
    note: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class NoticeAudience(enum.StrEnum):
    PARTNERS = "partners"  # partner and customer contacts
    FAMILY = "family"  # family contacts of staff who answered safe (one notice per broadcast)


class Notice(Base):
    __tablename__ = "incident_notices"
    __table_args__ = (UniqueConstraint("broadcast_id", "audience"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    broadcast_id: Mapped[int | None] = mapped_column(ForeignKey("ivr_broadcasts.id", ondelete="CASCADE"))
    audience: Mapped[NoticeAudience] = mapped_column(enum_type(NoticeAudience, 12))
    subject_ja: Mapped[str] = mapped_column(String(200), default="")
    subject_en: Mapped[str] = mapped_column(String(200), default="")
    body_ja: Mapped[str] = mapped_column(Text, default="")
    body_en: Mapped[str] = mapped_column(Text, default="")
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(200))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def text(self, field: str, language: str) -> str:
        value: str = getattr(self, f"{field}_{'en' if language == 'en' else 'ja'}")
        return value or getattr(self, f"{field}_ja")


class DeliveryState(enum.StrEnum):
    """Where one message to one address is. Moves forward only (see ``notices.STATE_RANK``)."""

    QUEUED = "queued"  # waiting for a worker and a pacing token (again, after a transient error)
    SENDING = "sending"  # a worker holds the lease and is handing it to the provider right now
    SENT = "sent"  # the provider accepted it (an e-mail never gets further: there is no receipt)
    DELIVERED = "delivered"  # the carrier reported it delivered
    FAILED = "failed"  # refused for good, or undeliverable (see error)
    CANCELLED = "cancelled"  # not sent: no longer true (a family notice whose person changed their answer)


class DeliveryChannel(enum.StrEnum):
    SMS = "sms"
    EMAIL = "email"


class NoticeDelivery(Base):
    """One notice to one address on one channel. The id is the idempotency key of the send."""

    __tablename__ = "incident_notice_deliveries"
    __table_args__ = (
        UniqueConstraint("notice_id", "partner_id", "channel"),
        UniqueConstraint("notice_id", "contact_point_id", "channel"),
        Index("ix_incident_notice_deliveries_due", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("incident_notices.id", ondelete="CASCADE"), index=True)
    channel: Mapped[DeliveryChannel] = mapped_column(enum_type(DeliveryChannel, 8))
    partner_id: Mapped[int | None] = mapped_column(
        ForeignKey("incident_partner_contacts.id", ondelete="SET NULL")
    )
    # Family notices: the staff member and their family contact point (decrypted only when sending).
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    contact_point_id: Mapped[int | None] = mapped_column(ForeignKey("contact_points.id", ondelete="SET NULL"))
    to_masked: Mapped[str] = mapped_column(String(80), default="")
    language: Mapped[str] = mapped_column(String(2), default="ja")
    state: Mapped[DeliveryState] = mapped_column(enum_type(DeliveryState, 12), default=DeliveryState.QUEUED)
    provider_id: Mapped[str | None] = mapped_column(String(120), index=True)
    provider_status: Mapped[str | None] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    tries: Mapped[int] = mapped_column(default=0)
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    partner: Mapped[PartnerContact | None] = relationship(lazy="joined")


# --- bulletin boards ---------------------------------------------------------------------------------------------


class Board(Base):
    """One board per topic, created by an admin; staff read and post through their own link."""

    __tablename__ = "incident_boards"
    __table_args__ = (UniqueConstraint("organization_id", "title"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    archived_at: Mapped[datetime | None]


class Post(Base):
    __tablename__ = "incident_posts"
    __table_args__ = (Index("ix_incident_posts_board", "board_id", "pinned", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    board_id: Mapped[int] = mapped_column(ForeignKey("incident_boards.id", ondelete="CASCADE"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author_name: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    pinned: Mapped[bool] = mapped_column(default=False)
    hidden_at: Mapped[datetime | None]
    hidden_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    hidden_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="post", cascade="all, delete-orphan", lazy="selectin", order_by="Attachment.id"
    )


class Attachment(Base):
    """A photo or PDF attached to a post. The type is what the bytes are, never what the browser claimed."""

    __tablename__ = "incident_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("incident_posts.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(60))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    storage_name: Mapped[str] = mapped_column(String(80), unique=True)  # a random name under attachments/
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    post: Mapped[Post] = relationship(back_populates="attachments")


class Notification(Base):
    """Something a user should look at (a new post on their board, a care case given to them)."""

    __tablename__ = "incident_notifications"
    __table_args__ = (Index("ix_incident_notifications_user", "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    link: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]
    # The e-mail copy leaves through the notice worker; None = still to be mailed, or no mail wanted.
    mail_due: Mapped[bool] = mapped_column(default=False)
    mailed_at: Mapped[datetime | None]


# --- team conversations ------------------------------------------------------------------------------------------


class Group(Base):
    """A group of users who talk before anything is announced (the management team, a site's leads…)."""

    __tablename__ = "incident_groups"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    members: Mapped[list[GroupMember]] = relationship(
        back_populates="group", cascade="all, delete-orphan", lazy="selectin"
    )


class GroupMember(Base):
    __tablename__ = "incident_group_members"
    __table_args__ = (UniqueConstraint("group_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("incident_groups.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Read mark: the newest message this member has seen.
    last_read_message_id: Mapped[int | None]
    last_read_at: Mapped[datetime | None]

    group: Mapped[Group] = relationship(back_populates="members")
    user: Mapped[Any] = relationship("User", lazy="joined")


class GroupMessage(Base):
    __tablename__ = "incident_group_messages"
    __table_args__ = (Index("ix_incident_group_messages_group", "group_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("incident_groups.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author_name: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- care follow-up ----------------------------------------------------------------------------------------------


class CareState(enum.StrEnum):
    OPEN = "open"
    CONTACTED = "contacted"
    CLOSED = "closed"


class CareCase(Base):
    """Someone who said they are hurt or need help in a broadcast: one case per person per broadcast."""

    __tablename__ = "incident_care_cases"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "staff_id"),
        Index("ix_incident_care_cases_org_state", "organization_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("ivr_broadcasts.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(80))  # care reasons, comma-separated (injured, need_help…)
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    state: Mapped[CareState] = mapped_column(enum_type(CareState, 12), default=CareState.OPEN)
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    contacted_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]

    staff: Mapped[Any] = relationship("Staff", lazy="joined")
    owner: Mapped[Any] = relationship("User", lazy="joined")


class FamilyNoticeConsent(Base):
    """Whether a person allows their family contacts to be told that they answered safe (off unless they say so)."""

    __tablename__ = "incident_family_consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), unique=True)
    allowed: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
