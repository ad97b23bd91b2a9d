"""Stockpile use cases: the catalogue, site settings, lots (add, edit, delete, import), status and purchase lists.

Arithmetic lives in :mod:`stockpile.calculator`; this module loads rows, turns them into the calculator's plain
values and writes changes (``flush()`` only — the edge commits). Every change is audited.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core import db
from core.auth.service import audit
from core.directory.models import Organization, Site, Staff
from core.errors import ValidationError
from core.time import to_local, utcnow
from stockpile import importer, pdf
from stockpile.calculator import (
    DEFAULT_DAYS,
    DEFAULT_EXPIRY_HORIZON_MONTHS,
    DEFAULT_ITEMS,
    DEFAULT_MAX_LOCATION_SHARE,
    DEFAULT_VISITOR_RATIO,
    PURCHASE_LIST_HEADERS,
    ConcentrationWarning,
    Item,
    ItemRotation,
    Lot,
    PurchaseRow,
    RateKind,
    Requirement,
    StockStatus,
    headcount,
    purchase_list,
    requirements,
    rotation_plan,
    stock_status,
    to_decimal,
)
from stockpile.models import SiteStockSettings, StockItem, StockLot

Translate = Callable[..., str]

# Offered in every catalogue but switched off: their rates are a starting point for facilities to review,
# not guidance the way water, food, toilets and blankets are.
SUGGESTED_ITEMS: tuple[Item, ...] = (
    Item(
        "first_aid_kit",
        "救急箱",
        "First-aid kits",
        "kits",
        RateKind.PER_N_PEOPLE,
        Decimal(1),
        per_n_people=50,
    ),
    Item("torch", "懐中電灯", "Torches", "pcs", RateKind.PER_N_PEOPLE, Decimal(1), per_n_people=10),
    Item("radio", "携帯ラジオ", "Portable radios", "pcs", RateKind.PER_N_PEOPLE, Decimal(1), per_n_people=50),
    Item(
        "batteries",
        "乾電池",
        "Batteries",
        "pcs",
        RateKind.PER_N_PEOPLE,
        Decimal(4),
        per_n_people=10,
        shelf_life_months=120,
    ),
    Item("hygiene", "衛生用品セット", "Hygiene kits", "kits", RateKind.PER_PERSON, Decimal(1)),
)

# Units a person may write for an item's unit (compared after NFKC and case folding).
UNIT_ALIASES: dict[str, frozenset[str]] = {
    "l": frozenset({"l", "ℓ", "リットル", "litre", "liter", "litres", "liters"}),
    "meals": frozenset({"meal", "食", "食分"}),
    "uses": frozenset({"use", "回", "回分"}),
    "pcs": frozenset({"pc", "piece", "pieces", "個", "枚", "本", "台", "点"}),
    "kits": frozenset({"kit", "セット", "式"}),
}

MAX_LOCATION = 120


class InvalidInput(ValidationError):
    """What a person entered cannot be used. Each problem is a message id with parameters, so the edge can show
    it in the reader's language; ``str()`` and ``errors`` are the English texts."""

    def __init__(self, problems: Sequence[tuple[str, dict[str, Any]]], *, field: str | None = None) -> None:
        self.problems = list(problems)
        texts = [message.format(**params) if params else message for message, params in self.problems]
        super().__init__(texts[0], field=field, errors=texts)

    def texts(self, translate: Translate | None = None) -> list[str]:
        if translate is None:
            return list(self.errors)
        return [translate(message, **params) for message, params in self.problems]


def _invalid(message: str, field: str | None = None, **params: Any) -> InvalidInput:
    return InvalidInput([(message, params)], field=field)


# --------------------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------------------


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().casefold()


def unit_matches(given: str, unit: str) -> bool:
    wanted = _fold(unit)
    return _fold(given) == wanted or _fold(given) in UNIT_ALIASES.get(wanted, frozenset())


def today_for(organization_id: int) -> date:
    """Expiry dates are calendar days where the organization is (Japan by default)."""
    tz_name = db.session.scalar(select(Organization.timezone).where(Organization.id == organization_id))
    try:
        zone = ZoneInfo(tz_name or "Asia/Tokyo")
    except (KeyError, ValueError):
        zone = ZoneInfo("Asia/Tokyo")
    return to_local(utcnow(), zone).date()


def as_item(row: StockItem) -> Item:
    return Item(
        key=row.key,
        name_ja=row.name_ja,
        name_en=row.name_en,
        unit=row.unit,
        rate_kind=row.rate_kind,
        rate=Decimal(row.rate),
        per_n_people=row.per_n_people if row.rate_kind is RateKind.PER_N_PEOPLE else None,
        shelf_life_months=row.shelf_life_months,
    )


def as_lot(row: StockLot) -> Lot:
    return Lot(
        item=row.item.key,
        quantity=Decimal(row.quantity),
        unit=row.unit,
        location=row.location,
        expires_on=row.expires_on,
        note=row.note,
        ref=row.id,
    )


def format_quantity(value: Decimal | int) -> str:
    """1500 → "1,500"; 2.500 → "2.5": how people write amounts, without the database's trailing zeros."""
    number = Decimal(value)
    if number == number.to_integral_value():
        return f"{int(number):,}"
    text = f"{number.normalize():f}"
    whole, _, fraction = text.partition(".")
    return f"{int(whole):,}.{fraction}" if whole.lstrip("-").isdigit() else text


def json_number(value: Decimal | int | None) -> int | float | None:
    if value is None:
        return None
    number = Decimal(value)
    return int(number) if number == number.to_integral_value() else float(number)


# --------------------------------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------------------------------


def ensure_catalogue(*, organization_id: int) -> list[StockItem]:
    """The organization's catalogue, seeded with the calculator's defaults (and the switched-off suggestions)
    when they are missing. Safe to call on every request: existing items are never changed."""
    rows = _catalogue_rows(organization_id)
    present = {row.key for row in rows}
    wanted = [(item, True) for item in DEFAULT_ITEMS] + [(item, False) for item in SUGGESTED_ITEMS]
    missing = [
        (position, item, active) for position, (item, active) in enumerate(wanted) if item.key not in present
    ]
    if not missing:
        return rows
    try:
        # A concurrent request may seed the same keys; its rows win and ours are dropped with the savepoint.
        with db.session.begin_nested():
            for position, item, active in missing:
                db.session.add(_new_item_row(organization_id, item, position=position * 10, active=active))
    except IntegrityError:
        pass
    return _catalogue_rows(organization_id)


def _catalogue_rows(organization_id: int) -> list[StockItem]:
    return list(
        db.session.scalars(
            select(StockItem)
            .where(StockItem.organization_id == organization_id)
            .order_by(StockItem.position, StockItem.id)
        )
    )


def _new_item_row(organization_id: int, item: Item, *, position: int, active: bool) -> StockItem:
    return StockItem(
        organization_id=organization_id,
        key=item.key,
        name_ja=item.name_ja,
        name_en=item.name_en,
        unit=item.unit,
        rate_kind=item.rate_kind,
        rate=item.rate,
        per_n_people=item.per_n_people,
        shelf_life_months=item.shelf_life_months,
        position=position,
        active=active,
    )


def active_items(*, organization_id: int) -> list[StockItem]:
    return [row for row in ensure_catalogue(organization_id=organization_id) if row.active]


def _validated_item(
    *,
    key: str,
    name_ja: str,
    name_en: str,
    unit: str,
    rate_kind: str,
    rate: Decimal | str,
    per_n_people: int | None,
    shelf_life_months: int | None,
) -> Item:
    try:
        return Item(
            key=key,
            name_ja=name_ja.strip(),
            name_en=name_en.strip(),
            unit=unicodedata.normalize("NFKC", unit).strip(),
            rate_kind=RateKind(rate_kind),
            rate=to_decimal(rate, "rate"),
            per_n_people=per_n_people if rate_kind == RateKind.PER_N_PEOPLE.value else None,
            shelf_life_months=shelf_life_months or None,
        )
    except (ValueError, ArithmeticError) as exc:
        # The calculator's own checks (positive rate, per-N count, shelf life), in English only.
        raise _invalid("{problem}", problem=str(exc)) from exc


def add_item(
    *,
    organization_id: int,
    key: str,
    name_ja: str,
    name_en: str,
    unit: str,
    rate_kind: str,
    rate: Decimal | str,
    per_n_people: int | None = None,
    shelf_life_months: int | None = None,
    actor: str,
    actor_user_id: int | None = None,
) -> StockItem:
    key = _fold(key).replace(" ", "_")
    if not key or not key.replace("_", "").isalnum() or not key.isascii():
        raise _invalid("the key must be letters, digits and underscores", field="key")
    if not name_ja.strip() or not unit.strip():
        raise _invalid("an item needs a Japanese name and a unit")
    rows = ensure_catalogue(organization_id=organization_id)
    if any(row.key == key for row in rows):
        raise _invalid("an item with key {key} already exists", field="key", key=key)
    item = _validated_item(
        key=key,
        name_ja=name_ja,
        name_en=name_en,
        unit=unit,
        rate_kind=rate_kind,
        rate=rate,
        per_n_people=per_n_people,
        shelf_life_months=shelf_life_months,
    )
    row = _new_item_row(
        organization_id, item, position=max((r.position for r in rows), default=0) + 10, active=True
    )
    db.session.add(row)
    db.session.flush()
    audit(
        action="stockpile.item.create",
        organization_id=organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="stockpile_item",
        target_id=row.id,
        summary=f"stockpile item {key} added ({item.rate} {item.unit}, {item.rate_kind.value})",
    )
    return row


def update_item(
    *,
    item: StockItem,
    name_ja: str,
    name_en: str,
    unit: str,
    rate_kind: str,
    rate: Decimal | str,
    per_n_people: int | None,
    shelf_life_months: int | None,
    active: bool,
    actor: str,
    actor_user_id: int | None = None,
) -> StockItem:
    checked = _validated_item(
        key=item.key,
        name_ja=name_ja,
        name_en=name_en,
        unit=unit,
        rate_kind=rate_kind,
        rate=rate,
        per_n_people=per_n_people,
        shelf_life_months=shelf_life_months,
    )
    if checked.unit != item.unit:
        counted = db.session.scalar(
            select(func.count()).select_from(StockLot).where(StockLot.item_id == item.id)
        )
        if counted:
            # Lots counted in the old unit would be compared with a requirement in the new one.
            raise _invalid(
                "{count} lots are counted in {unit}; change or remove them before changing the unit",
                field="unit",
                count=counted,
                unit=item.unit,
            )
    before = _item_summary(item)
    item.name_ja = checked.name_ja
    item.name_en = checked.name_en
    item.unit = checked.unit
    item.rate_kind = checked.rate_kind
    item.rate = checked.rate
    item.per_n_people = checked.per_n_people
    item.shelf_life_months = checked.shelf_life_months
    item.active = active
    db.session.flush()
    audit(
        action="stockpile.item.update",
        organization_id=item.organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="stockpile_item",
        target_id=item.id,
        summary=f"stockpile item {item.key} changed",
        detail={"before": before, "after": _item_summary(item)},
    )
    return item


def _item_summary(item: StockItem) -> dict[str, Any]:
    return {
        "name_ja": item.name_ja,
        "name_en": item.name_en,
        "unit": item.unit,
        "rate_kind": RateKind(item.rate_kind).value,
        "rate": str(item.rate),
        "per_n_people": item.per_n_people,
        "shelf_life_months": item.shelf_life_months,
        "active": item.active,
    }


def get_item(*, organization_id: int, item_id: int) -> StockItem | None:
    row = db.session.get(StockItem, item_id)
    return row if row is not None and row.organization_id == organization_id else None


def _item_lookup(rows: Iterable[StockItem]) -> dict[str, StockItem]:
    """Items by key and by either name, as a person might write them in a file."""
    lookup: dict[str, StockItem] = {}
    for row in rows:
        for text in (row.name_en, row.name_ja):
            if text:
                lookup.setdefault(_fold(text), row)
    for row in rows:
        lookup[_fold(row.key)] = row  # a key always wins over a name
    return lookup


# --------------------------------------------------------------------------------------------------------------
# Sites, settings and plans
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StockSettings:
    visitor_ratio: Decimal = DEFAULT_VISITOR_RATIO
    extra_people: int = 0
    days: int = DEFAULT_DAYS
    max_location_share: Decimal = DEFAULT_MAX_LOCATION_SHARE
    expiry_horizon_months: int = DEFAULT_EXPIRY_HORIZON_MONTHS

    @classmethod
    def of(cls, row: SiteStockSettings | None) -> StockSettings:
        if row is None:
            return cls()
        return cls(
            visitor_ratio=Decimal(row.visitor_ratio),
            extra_people=row.extra_people,
            days=row.days,
            max_location_share=Decimal(row.max_location_share),
            expiry_horizon_months=row.expiry_horizon_months,
        )


def find_site(*, organization_id: int, code: str) -> Site | None:
    site = db.session.scalar(select(Site).where(Site.organization_id == organization_id, Site.code == code))
    if site is not None:
        return site
    # Codes typed by hand ("osa", "ＯＳＡ") still find the site when only one matches.
    matches = [s for s in list_sites(organization_id=organization_id) if _fold(s.code) == _fold(code)]
    return matches[0] if len(matches) == 1 else None


def list_sites(*, organization_id: int, site_ids: frozenset[int] | None = None) -> list[Site]:
    query = select(Site).where(Site.organization_id == organization_id).order_by(Site.code)
    if site_ids is not None:
        query = query.where(Site.id.in_(site_ids))
    return list(db.session.scalars(query))


def settings_for(*, site_id: int) -> StockSettings:
    return StockSettings.of(db.session.get(SiteStockSettings, site_id))


def staff_counts(*, site_ids: Iterable[int]) -> dict[int, int]:
    ids = list(site_ids)
    if not ids:
        return {}
    rows = db.session.execute(
        select(Staff.site_id, func.count(Staff.id)).where(Staff.site_id.in_(ids)).group_by(Staff.site_id)
    ).all()
    counts = {site_id: 0 for site_id in ids}
    counts.update({site_id: count for site_id, count in rows if site_id is not None})
    return counts


def update_site_settings(
    *,
    site: Site,
    visitor_ratio: Decimal | str,
    extra_people: int,
    days: int,
    max_location_share: Decimal | str | None = None,
    expiry_horizon_months: int | None = None,
    actor: str,
    actor_user_id: int | None = None,
) -> StockSettings:
    errors: list[tuple[str, dict[str, Any]]] = []
    try:
        ratio = to_decimal(visitor_ratio, "visitor ratio")
    except (ValueError, ArithmeticError):
        ratio = Decimal(-1)
    if not Decimal(0) <= ratio <= Decimal(5):
        errors.append(("the visitor ratio must be between 0 % and 500 %", {}))
    if not 0 <= extra_people <= 100_000:
        errors.append(("extra people must be between 0 and 100,000", {}))
    if not 1 <= days <= 60:
        errors.append(("days must be between 1 and 60", {}))
    current = db.session.get(SiteStockSettings, site.id)
    before = StockSettings.of(current)
    share = before.max_location_share
    if max_location_share is not None:
        try:
            share = to_decimal(max_location_share, "share")
        except (ValueError, ArithmeticError):
            share = Decimal(-1)
        if not Decimal("0.01") <= share <= Decimal(1):
            errors.append(("the share in one location must be between 1 % and 100 %", {}))
    horizon = before.expiry_horizon_months if expiry_horizon_months is None else expiry_horizon_months
    if not 0 <= horizon <= 60:
        errors.append(("the expiry horizon must be between 0 and 60 months", {}))
    if errors:
        raise InvalidInput(errors)
    if current is None:
        current = SiteStockSettings(site_id=site.id)
        db.session.add(current)
    current.visitor_ratio = ratio.quantize(Decimal("0.0001"))
    current.extra_people = extra_people
    current.days = days
    current.max_location_share = share.quantize(Decimal("0.0001"))
    current.expiry_horizon_months = horizon
    db.session.flush()
    after = StockSettings.of(current)
    audit(
        action="stockpile.settings.update",
        organization_id=site.organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="site",
        target_id=site.id,
        summary=f"stockpile settings of site {site.code} changed",
        detail={"before": _settings_summary(before), "after": _settings_summary(after)},
    )
    return after


def _settings_summary(settings: StockSettings) -> dict[str, Any]:
    return {
        "visitor_ratio": str(settings.visitor_ratio),
        "extra_people": settings.extra_people,
        "days": settings.days,
        "max_location_share": str(settings.max_location_share),
        "expiry_horizon_months": settings.expiry_horizon_months,
    }


@dataclass(frozen=True)
class Plan:
    """Who a site provides for and what that takes. ``staff`` is None for a plan not tied to a site."""

    staff: int | None
    visitor_ratio: Decimal
    extra_people: int
    days: int
    headcount: int
    requirements: list[Requirement]


def plan_for_headcount(
    *,
    people: int,
    days: int = DEFAULT_DAYS,
    visitor_ratio: Decimal | str | float = Decimal(0),
    extra_people: int = 0,
    items: Sequence[Item] = DEFAULT_ITEMS,
) -> Plan:
    ratio = to_decimal(visitor_ratio, "visitor ratio")
    total = headcount(people, ratio, extra_people)
    return Plan(None, ratio, extra_people, days, total, requirements(total, days, items))


def plan_for_site(
    *,
    site: Site,
    days: int | None = None,
    visitor_ratio: Decimal | str | float | None = None,
    extra_people: int | None = None,
) -> Plan:
    """The site's live headcount (staff assigned to it now) with its settings; any argument overrides one."""
    settings = settings_for(site_id=site.id)
    staff = staff_counts(site_ids=[site.id])[site.id]
    items = [as_item(row) for row in active_items(organization_id=site.organization_id)]
    plan = plan_for_headcount(
        people=staff,
        days=settings.days if days is None else days,
        visitor_ratio=settings.visitor_ratio if visitor_ratio is None else visitor_ratio,
        extra_people=settings.extra_people if extra_people is None else extra_people,
        items=items,
    )
    return Plan(staff, plan.visitor_ratio, plan.extra_people, plan.days, plan.headcount, plan.requirements)


# --------------------------------------------------------------------------------------------------------------
# Lots
# --------------------------------------------------------------------------------------------------------------


def _checked_lot_fields(
    *,
    organization_id: int,
    item_key: str,
    quantity: Decimal | str,
    unit: str | None,
    location: str,
) -> tuple[StockItem, Decimal, str]:
    errors: list[tuple[str, dict[str, Any]]] = []
    item = _item_lookup(ensure_catalogue(organization_id=organization_id)).get(_fold(item_key))
    if item is None:
        errors.append(("unknown item {item}", {"item": item_key}))
    amount = Decimal(0)
    try:
        amount = importer.parse_quantity(str(quantity))
    except importer.CellError as exc:
        errors.append((exc.message, exc.params))
    if item is not None and unit and not unit_matches(unit, item.unit):
        errors.append(
            ("{item} is counted in {unit}, not {given}", {"item": item.key, "unit": item.unit, "given": unit})
        )
    place = unicodedata.normalize("NFKC", location).strip()
    if len(place) > MAX_LOCATION:
        errors.append(("the storage location is longer than {limit} characters", {"limit": MAX_LOCATION}))
    if errors or item is None:
        raise InvalidInput(errors)
    return item, amount, place


def add_lot(
    *,
    site: Site,
    item_key: str,
    quantity: Decimal | str,
    location: str,
    expires_on: date | None,
    note: str = "",
    unit: str | None = None,
    actor: str,
    actor_user_id: int | None = None,
) -> StockLot:
    item, amount, place = _checked_lot_fields(
        organization_id=site.organization_id,
        item_key=item_key,
        quantity=quantity,
        unit=unit,
        location=location,
    )
    lot = StockLot(
        organization_id=site.organization_id,
        site_id=site.id,
        item_id=item.id,
        quantity=amount,
        unit=item.unit,
        location=place,
        expires_on=expires_on,
        note=note.strip(),
    )
    db.session.add(lot)
    db.session.flush()
    audit(
        action="stockpile.lot.create",
        organization_id=site.organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="stockpile_lot",
        target_id=lot.id,
        summary=f"{format_quantity(amount)} {item.unit} of {item.key} added at {site.code} / {place or '-'}",
        detail=_lot_summary(lot),
    )
    return lot


def update_lot(
    *,
    lot: StockLot,
    item_key: str,
    quantity: Decimal | str,
    location: str,
    expires_on: date | None,
    note: str = "",
    unit: str | None = None,
    actor: str,
    actor_user_id: int | None = None,
) -> StockLot:
    item, amount, place = _checked_lot_fields(
        organization_id=lot.organization_id,
        item_key=item_key,
        quantity=quantity,
        unit=unit,
        location=location,
    )
    before = _lot_summary(lot)
    lot.item = item
    lot.item_id = item.id
    lot.quantity = amount
    lot.unit = item.unit
    lot.location = place
    lot.expires_on = expires_on
    lot.note = note.strip()
    db.session.flush()
    audit(
        action="stockpile.lot.update",
        organization_id=lot.organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="stockpile_lot",
        target_id=lot.id,
        summary=f"lot {lot.id} at {lot.site.code} changed",
        detail={"before": before, "after": _lot_summary(lot)},
    )
    return lot


def delete_lot(*, lot: StockLot, actor: str, actor_user_id: int | None = None) -> None:
    summary = _lot_summary(lot)
    organization_id, lot_id, site_code = lot.organization_id, lot.id, lot.site.code
    db.session.delete(lot)
    db.session.flush()
    audit(
        action="stockpile.lot.delete",
        organization_id=organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="stockpile_lot",
        target_id=lot_id,
        summary=f"lot {lot_id} at {site_code} removed ({summary['quantity']} {summary['unit']} of {summary['item']})",
        detail=summary,
    )


def _lot_summary(lot: StockLot) -> dict[str, Any]:
    return {
        "site": lot.site.code if lot.site is not None else None,
        "item": lot.item.key if lot.item is not None else None,
        "quantity": f"{Decimal(lot.quantity).normalize():f}",
        "unit": lot.unit,
        "location": lot.location,
        "expires_on": lot.expires_on.isoformat() if lot.expires_on else None,
        "note": lot.note,
    }


def get_lot(*, site: Site, lot_id: int) -> StockLot | None:
    lot = db.session.get(StockLot, lot_id)
    return lot if lot is not None and lot.site_id == site.id else None


def lots_of(*, site_ids: Iterable[int]) -> list[StockLot]:
    ids = list(site_ids)
    if not ids:
        return []
    return list(
        db.session.scalars(
            select(StockLot)
            .join(StockItem, StockLot.item_id == StockItem.id)
            .where(StockLot.site_id.in_(ids))
            .order_by(StockItem.position, StockLot.expires_on.is_(None), StockLot.expires_on, StockLot.id)
        )
    )


def locations_of(*, site_id: int) -> list[str]:
    return list(
        db.session.scalars(
            select(StockLot.location).where(StockLot.site_id == site_id, StockLot.location != "").distinct()
        )
    )


# --------------------------------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteStatus:
    site: Site
    settings: StockSettings
    plan: Plan
    as_of: date
    items: list[StockStatus]
    rotation: list[ItemRotation]
    purchases: list[PurchaseRow]
    lots: list[StockLot]
    catalogue: dict[str, StockItem] = field(default_factory=dict)

    @property
    def lots_by_id(self) -> dict[int, StockLot]:
        return {lot.id: lot for lot in self.lots}

    @property
    def short(self) -> list[StockStatus]:
        return [status for status in self.items if status.shortfall > 0]

    @property
    def expiring(self) -> list[StockLot]:
        by_id = self.lots_by_id
        lots = [
            by_id[int(lot.ref)]
            for status in self.items
            for lot in status.expiring_soon
            if lot.ref is not None
        ]
        return sorted(lots, key=lambda lot: (lot.expires_on or date.max, lot.id))

    @property
    def expired(self) -> list[StockLot]:
        by_id = self.lots_by_id
        lots = [
            by_id[int(lot.ref)] for status in self.items for lot in status.expired_lots if lot.ref is not None
        ]
        return sorted(lots, key=lambda lot: (lot.expires_on or date.max, lot.id))

    @property
    def concentrations(self) -> list[ConcentrationWarning]:
        return [warning for status in self.items for warning in status.concentrations]

    @property
    def state(self) -> str:
        """ "short" when any item falls short, "expiring" when stock expires within the horizon (or already has),
        "concentrated" when only a location warning remains, otherwise "ok"."""
        if self.short:
            return "short"
        if self.expiring or self.expired:
            return "expiring"
        if self.concentrations:
            return "concentrated"
        return "ok"


def site_status(
    *, site: Site, today: date | None = None, expiring_within_months: int | None = None
) -> SiteStatus:
    (status,) = statuses_for(
        organization_id=site.organization_id,
        site_ids=frozenset({site.id}),
        today=today,
        expiring_within_months=expiring_within_months,
    )
    return status


def statuses_for(
    *,
    organization_id: int,
    site_ids: frozenset[int] | None,
    today: date | None = None,
    expiring_within_months: int | None = None,
) -> list[SiteStatus]:
    """The status of every site in ``site_ids`` (None: all sites of the organization), in site-code order.

    A handful of queries whatever the number of sites: staff counted with GROUP BY, lots loaded once.
    """
    today = today or today_for(organization_id)
    sites = list_sites(organization_id=organization_id, site_ids=site_ids)
    ids = [site.id for site in sites]
    catalogue = ensure_catalogue(organization_id=organization_id)
    items = [as_item(row) for row in catalogue if row.active]
    by_key = {row.key: row for row in catalogue}
    counts = staff_counts(site_ids=ids)
    settings_rows = (
        {
            row.site_id: row
            for row in db.session.scalars(select(SiteStockSettings).where(SiteStockSettings.site_id.in_(ids)))
        }
        if ids
        else {}
    )
    lots_by_site: dict[int, list[StockLot]] = defaultdict(list)
    for lot in lots_of(site_ids=ids):
        lots_by_site[lot.site_id].append(lot)
    result = []
    for site in sites:
        settings = StockSettings.of(settings_rows.get(site.id))
        plan = plan_for_headcount(
            people=counts[site.id],
            days=settings.days,
            visitor_ratio=settings.visitor_ratio,
            extra_people=settings.extra_people,
            items=items,
        )
        plan = Plan(
            counts[site.id],
            plan.visitor_ratio,
            plan.extra_people,
            plan.days,
            plan.headcount,
            plan.requirements,
        )
        site_lots = lots_by_site.get(site.id, [])
        statuses = stock_status(
            headcount=plan.headcount,
            lots=[as_lot(lot) for lot in site_lots],
            today=today,
            days=plan.days,
            items=items,
            expiring_within_months=settings.expiry_horizon_months
            if expiring_within_months is None
            else expiring_within_months,
            max_location_share=settings.max_location_share,
        )
        result.append(
            SiteStatus(
                site=site,
                settings=settings,
                plan=plan,
                as_of=today,
                items=statuses,
                rotation=rotation_plan(statuses),
                purchases=purchase_list(site.code, statuses),
                lots=site_lots,
                catalogue=by_key,
            )
        )
    return result


def _lot_dict(lot: StockLot) -> dict[str, Any]:
    return {
        "id": lot.id,
        "item": lot.item.key,
        "quantity": json_number(lot.quantity),
        "unit": lot.unit,
        "location": lot.location,
        "expires_on": lot.expires_on.isoformat() if lot.expires_on else None,
        "note": lot.note,
    }


def status_as_dict(status: SiteStatus, *, language: str = "en") -> dict[str, Any]:
    """The status of one site as plain JSON values (the CLI's ``--json`` and the web's status.json)."""
    plan = status.plan
    return {
        "site": status.site.code,
        "site_name": status.site.name,
        "as_of": status.as_of.isoformat(),
        "state": status.state,
        "staff": plan.staff,
        "visitor_ratio": json_number(plan.visitor_ratio),
        "extra_people": plan.extra_people,
        "headcount": plan.headcount,
        "days": plan.days,
        "expiring_within_months": _months_between(status.as_of, status.items[0].horizon_ends_on)
        if status.items
        else status.settings.expiry_horizon_months,
        "max_location_share": json_number(status.settings.max_location_share),
        "items": [
            {
                "item": s.item.key,
                "name": s.item.name(language),
                "unit": s.item.unit,
                "required": s.required,
                "usable": json_number(s.usable),
                "expired": json_number(s.expired),
                "shortfall": json_number(s.shortfall),
                "surplus": json_number(s.surplus),
                "coverage": json_number(s.coverage),
                "days_covered": json_number(s.days_covered),
                "expiring_soon": json_number(s.expiring_soon_quantity),
            }
            for s in status.items
        ],
        "expiring": [_lot_dict(lot) for lot in status.expiring],
        "expired": [_lot_dict(lot) for lot in status.expired],
        "concentration_warnings": [
            {
                "item": w.item,
                "location": w.location,
                "quantity": json_number(w.quantity),
                "total": json_number(w.total),
                "percent": json_number(w.percent),
            }
            for w in status.concentrations
        ],
        "rotation": [
            {
                "item": r.item.key,
                "use_first": [lot.ref for lot in r.use_first],
                "purchases": [
                    {
                        "buy_on": p.buy_on.isoformat(),
                        "quantity": p.quantity,
                        "unit": p.item.unit,
                        "reason": p.reason.value,
                        "expected_expiry": p.expected_expiry.isoformat() if p.expected_expiry else None,
                        "replaces_from": p.replaces_from.isoformat() if p.replaces_from else None,
                        "replaces_until": p.replaces_until.isoformat() if p.replaces_until else None,
                        "batch": p.batch,
                        "batches": p.batches,
                    }
                    for p in r.purchases
                ],
            }
            for r in status.rotation
            if r.purchases or r.use_first
        ],
        "purchase_list": [
            {
                "item": row.item.key,
                "unit": row.unit,
                "quantity": row.quantity,
                "reason": row.reason.value,
                "reason_text": row.reason_text(language),
            }
            for row in status.purchases
        ],
    }


def _months_between(start: date, end: date) -> int:
    return (end.year - start.year) * 12 + end.month - start.month


# --------------------------------------------------------------------------------------------------------------
# Purchase list
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurchaseLine:
    """One printable line: text in the reader's language, the quantity as a number."""

    site_code: str
    site_name: str
    item_key: str
    item: str
    unit: str
    quantity: int
    reason: str


def purchase_lines(
    statuses: Sequence[SiteStatus], *, language: str, translate: Translate
) -> list[PurchaseLine]:
    return [
        PurchaseLine(
            site_code=status.site.code,
            site_name=status.site.name,
            item_key=row.item.key,
            item=row.item.name(language),
            unit=translate(row.unit),
            quantity=row.quantity,
            reason=row.reason_text(language),
        )
        for status in statuses
        for row in status.purchases
    ]


def purchase_totals(lines: Sequence[PurchaseLine]) -> list[tuple[str, str, int]]:
    """Quantity to buy per item (and unit) over all lines, in the order items first appear."""
    totals: dict[tuple[str, str, str], int] = {}
    for line in lines:
        key = (line.item_key, line.item, line.unit)
        totals[key] = totals.get(key, 0) + line.quantity
    return [(item, unit, quantity) for (_, item, unit), quantity in totals.items()]


def purchase_list_csv(lines: Sequence[PurchaseLine], *, language: str) -> bytes:
    """The list as Excel opens it on Japanese Windows without an import dialog: UTF-8 with BOM, CRLF."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(PURCHASE_LIST_HEADERS.get(language, PURCHASE_LIST_HEADERS["en"]))
    for line in lines:
        writer.writerow((line.site_code, line.item, line.unit, line.quantity, line.reason))
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def purchase_list_pdf(
    statuses: Sequence[SiteStatus],
    lines: Sequence[PurchaseLine],
    *,
    scope: str,
    translate: Translate,
) -> bytes:
    """The purchase list as an A4 PDF: one table per site, then the totals per item."""
    sections = [
        pdf.Section(
            heading=f"{status.site.code} {status.site.name}",
            note=sizing_note(status, translate),
            rows=[
                (line.item, line.unit, format_quantity(line.quantity), line.reason)
                for line in lines
                if line.site_code == status.site.code
            ],
        )
        for status in statuses
    ]
    totals = [(item, unit, format_quantity(qty)) for item, unit, qty in purchase_totals(lines)]
    return pdf.render_purchase_list(
        labels=pdf.Labels(
            title=translate("Stockpile purchase list"),
            generated=translate("Generated on {date}"),
            columns=(translate("Item"), translate("Unit"), translate("Quantity to buy"), translate("Reason")),
            totals=translate("Totals by item"),
            nothing_to_buy=translate("Nothing to buy."),
            page=translate("Page {page} of {pages}"),
        ),
        generated_on=statuses[0].as_of.isoformat() if statuses else "",
        scope=scope,
        sections=sections,
        totals=totals,
    )


def sizing_note(status: SiteStatus, translate: Translate) -> str:
    plan = status.plan
    return translate(
        "For {people} people × {days} days (staff {staff}, visitors {visitors} %, extra {extra}).",
        people=plan.headcount,
        days=plan.days,
        staff=plan.staff if plan.staff is not None else "-",
        visitors=format_quantity(plan.visitor_ratio * 100),
        extra=plan.extra_people,
    )


# --------------------------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportedLot:
    """A row ready to become a lot, as shown in the preview."""

    line: int
    site: Site
    item: StockItem
    quantity: Decimal
    location: str
    expires_on: date | None
    note: str


@dataclass
class ImportResult:
    encoding: str
    dry_run: bool
    skip_invalid: bool
    lots: list[ImportedLot] = field(default_factory=list)
    problems: list[importer.RowProblem] = field(default_factory=list)
    imported: int = 0

    @property
    def blocked(self) -> bool:
        """True when nothing was (or would be) imported because of bad rows and skip-invalid was not asked."""
        return bool(self.problems) and not self.skip_invalid

    @property
    def would_import(self) -> int:
        return 0 if self.blocked else len(self.lots)


def import_lots(
    *,
    organization_id: int,
    data: bytes,
    allowed_site_ids: frozenset[int] | None,
    dry_run: bool = False,
    skip_invalid: bool = False,
    default_site_code: str = "",
    actor: str,
    actor_user_id: int | None = None,
) -> ImportResult:
    """Lots from a CSV file (see :mod:`stockpile.importer`), all or nothing.

    Any bad row means nothing is imported unless ``skip_invalid``; then the good rows are. ``allowed_site_ids``
    limits the sites the file may touch (None: all of the organization's); rows naming another site are bad rows
    reported exactly like unknown sites, so a scoped user learns nothing about sites outside their scope.
    """
    parsed = importer.parse_lots(data, default_site_code=default_site_code)
    result = ImportResult(
        encoding=parsed.encoding, dry_run=dry_run, skip_invalid=skip_invalid, problems=list(parsed.problems)
    )
    sites = {
        _fold(site.code): site
        for site in list_sites(organization_id=organization_id, site_ids=allowed_site_ids)
    }
    items = _item_lookup(ensure_catalogue(organization_id=organization_id))
    for row in parsed.rows:
        site = sites.get(_fold(row.site_code))
        item = items.get(_fold(row.item))
        row_problems = []
        if site is None:
            row_problems.append(importer.RowProblem(row.line, "unknown site {code}", {"code": row.site_code}))
        if item is None:
            row_problems.append(importer.RowProblem(row.line, "unknown item {item}", {"item": row.item}))
        elif row.unit and not unit_matches(row.unit, item.unit):
            row_problems.append(
                importer.RowProblem(
                    row.line,
                    "{item} is counted in {unit}, not {given}",
                    {"item": row.item, "unit": item.unit, "given": row.unit},
                )
            )
        if row_problems or site is None or item is None:
            result.problems.extend(row_problems)
            continue
        result.lots.append(
            ImportedLot(row.line, site, item, row.quantity, row.location, row.expires_on, row.note)
        )
    result.problems.sort(key=lambda problem: problem.line)
    if dry_run or result.blocked or not result.lots:
        return result
    per_site: dict[str, int] = defaultdict(int)
    for entry in result.lots:
        db.session.add(
            StockLot(
                organization_id=organization_id,
                site_id=entry.site.id,
                item_id=entry.item.id,
                quantity=entry.quantity,
                unit=entry.item.unit,
                location=entry.location,
                expires_on=entry.expires_on,
                note=entry.note,
            )
        )
        per_site[entry.site.code] += 1
    db.session.flush()
    result.imported = len(result.lots)
    audit(
        action="stockpile.lot.import",
        organization_id=organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="stockpile_lot",
        summary=f"{result.imported} stockpile lots imported"
        + (f", {len(result.problems)} bad rows skipped" if result.problems else ""),
        detail={
            "per_site": dict(sorted(per_site.items())),
            "skipped_lines": sorted({problem.line for problem in result.problems}),
            "encoding": result.encoding,
        },
    )
    return result
