from __future__ import annotations

import enum
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, enum_type
from core.time import utcnow


def new_token() -> str:
    """128 bits of randomness, URL-safe: used for self-service links."""
    return secrets.token_urlsafe(16)


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(60), default="Asia/Tokyo")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Site(Base):
    """A call-center location."""

    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("organization_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200), default="")
    prefecture_code: Mapped[str] = mapped_column(String(2))  # JIS X 0401, e.g. "13" Tokyo
    municipality_code: Mapped[str] = mapped_column(String(7), default="")  # JMA/JIS code, e.g. "1310400"
    address: Mapped[str] = mapped_column(Text, default="")
    seats: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Department(Base):
    __tablename__ = "departments"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    parent: Mapped[Department | None] = relationship(remote_side="Department.id")


class Language(enum.StrEnum):
    JA = "ja"
    EN = "en"


class Staff(Base):
    __tablename__ = "staff"
    __table_args__ = (UniqueConstraint("organization_id", "employee_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    employee_id: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    name_kana: Mapped[str] = mapped_column(String(200), default="")
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), index=True)
    home_prefecture: Mapped[str] = mapped_column(String(2), default="")
    language: Mapped[Language] = mapped_column(enum_type(Language, 2), default=Language.JA)
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    can_work_from_home: Mapped[bool] = mapped_column(default=False)
    hide_from_answer_views: Mapped[bool] = mapped_column(default=False)
    self_service_token: Mapped[str] = mapped_column(String(40), unique=True, default=new_token)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    department: Mapped[Department | None] = relationship(lazy="joined")
    site: Mapped[Site | None] = relationship(lazy="joined")
    manager: Mapped[Staff | None] = relationship(remote_side="Staff.id")
    contacts: Mapped[list[ContactPoint]] = relationship(
        back_populates="staff", cascade="all, delete-orphan", order_by="ContactPoint.position"
    )


class ContactKind(enum.StrEnum):
    WORK_PHONE = "work_phone"
    WORK_EMAIL = "work_email"
    PRIVATE_PHONE = "private_phone"
    PRIVATE_EMAIL = "private_email"
    FAMILY_PHONE = "family_phone"
    FAMILY_EMAIL = "family_email"

    @property
    def is_private(self) -> bool:
        """Private and family values are encrypted and never shown to anyone but their owner."""
        return self not in (ContactKind.WORK_PHONE, ContactKind.WORK_EMAIL)

    @property
    def is_phone(self) -> bool:
        return self.value.endswith("_phone")


class ContactPoint(Base):
    __tablename__ = "contact_points"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    kind: Mapped[ContactKind] = mapped_column(enum_type(ContactKind))
    position: Mapped[int] = mapped_column(default=0)
    # Work contacts are stored as they are; private and family ones only as ciphertext (core.crypto).
    value: Mapped[str | None] = mapped_column(String(254))
    value_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    label: Mapped[str] = mapped_column(String(60), default="")
    verified_at: Mapped[datetime | None]
    last_check_status: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    staff: Mapped[Staff] = relationship(back_populates="contacts")

    def __repr__(self) -> str:  # never leak a private value through a log line
        return f"<ContactPoint {self.id} {self.kind.value} staff={self.staff_id}>"
