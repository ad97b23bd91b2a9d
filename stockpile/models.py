"""Stockpile tables: each organization's item catalogue, per-site settings, and the lots each site holds."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, enum_type
from core.directory.models import Site
from core.time import utcnow
from stockpile.calculator import DEFAULT_DAYS, DEFAULT_EXPIRY_HORIZON_MONTHS, RateKind

# Shares and ratios keep four decimals (0.1000); quantities three (a 0.5 L bottle, a 0.333 share of a case).
RATIO = Numeric(6, 4)
QUANTITY = Numeric(14, 3)


class StockItem(Base):
    """A kind of supply an organization keeps, with the rate that sizes it (see ``stockpile.calculator.Item``).

    Items are never deleted once lots refer to them; ``active`` takes one out of requirements and purchase lists.
    """

    __tablename__ = "stockpile_items"
    __table_args__ = (UniqueConstraint("organization_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    key: Mapped[str] = mapped_column(String(40))
    name_ja: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    unit: Mapped[str] = mapped_column(String(20))
    rate_kind: Mapped[RateKind] = mapped_column(enum_type(RateKind))
    rate: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    per_n_people: Mapped[int | None]
    shelf_life_months: Mapped[int | None]
    position: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def name(self, language: str = "ja") -> str:
        return self.name_ja if language == "ja" else (self.name_en or self.name_ja)


class SiteStockSettings(Base):
    """How a site sizes its stockpile. A site without a row uses the defaults below."""

    __tablename__ = "stockpile_site_settings"

    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)
    visitor_ratio: Mapped[Decimal] = mapped_column(RATIO, default=Decimal("0.1"))
    extra_people: Mapped[int] = mapped_column(default=0)
    days: Mapped[int] = mapped_column(default=DEFAULT_DAYS)
    # Warn when one storage location holds more than this share of an item (one flooded basement…).
    max_location_share: Mapped[Decimal] = mapped_column(RATIO, default=Decimal("0.5"))
    expiry_horizon_months: Mapped[int] = mapped_column(default=DEFAULT_EXPIRY_HORIZON_MONTHS)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StockLot(Base):
    """A quantity of one item kept in one storage location of a site, with its expiry date (if any).

    ``unit`` is the item's unit when the lot was counted; the service refuses lots in any other unit, so a
    requirement in litres is never compared with a count of bottles.
    """

    __tablename__ = "stockpile_lots"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("stockpile_items.id"), index=True)
    quantity: Mapped[Decimal] = mapped_column(QUANTITY)
    unit: Mapped[str] = mapped_column(String(20))
    location: Mapped[str] = mapped_column(String(120), default="")
    expires_on: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    item: Mapped[StockItem] = relationship(lazy="joined")
    site: Mapped[Site] = relationship(lazy="joined")
