"""How much a site must keep in stock, what it holds, and what to buy: pure arithmetic on plain values.

Quantities are ``Decimal`` or ``int`` throughout. Binary floats are not used for arithmetic because a
visitor ratio of 0.1 is not exactly representable: ``100 * 1.1`` in floats is ``110.00000000000001``, which
rounds up to 111 people. A float passed in by a caller is converted through its shortest ``repr`` (0.1 → "0.1").

Everything that is bought or prepared is rounded *up* to whole units (one cannot shelter 7.7 people or buy
half a first-aid kit); ratios shown to people (days covered) are rounded *down* so they never flatter the stock.

A lot's expiry date is the last day it may be used: a lot expiring on ``today`` still counts, one that expired
yesterday does not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

DEFAULT_VISITOR_RATIO = Decimal("0.10")  # Tokyo's guidance: stock for 10 % more people than the staff
DEFAULT_DAYS = 3
DEFAULT_EXPIRY_HORIZON_MONTHS = 6
DEFAULT_MAX_LOCATION_SHARE = Decimal("0.5")
DEFAULT_ROTATION_BATCHES = 3

_ONE_DECIMAL = Decimal("0.1")
_TWO_DECIMALS = Decimal("0.01")

Number = Decimal | int | float | str


def to_decimal(value: Number, what: str = "value") -> Decimal:
    """``value`` as an exact ``Decimal``; floats go through their shortest repr so 0.1 stays 0.1."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a number, not a bool")
    result = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not result.is_finite():
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return result


def round_up(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (or earlier); the 31st becomes the last day of a shorter month."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, _days_in_month(year, month)))


def _days_in_month(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (date(year, month + 1, 1) - date(year, month, 1)).days


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def _quarter(day: date) -> tuple[int, int]:
    return day.year, (day.month - 1) // 3 + 1


# --------------------------------------------------------------------------------------------------------------
# Headcount and requirements
# --------------------------------------------------------------------------------------------------------------


def headcount(staff: int, visitor_ratio: Number, extra: int = 0) -> int:
    """People to provide for: ``ceil(staff × (1 + visitor_ratio)) + extra``.

    ``staff`` are the people assigned to the site, ``visitor_ratio`` the share of visitors on top of them
    (the app passes ``DEFAULT_VISITOR_RATIO``), ``extra`` further people such as contractors. A partial person
    counts as a whole one: 7 staff with 10 % visitors are 8 people.
    """
    if staff < 0 or extra < 0:
        raise ValueError("staff and extra people cannot be negative")
    ratio = to_decimal(visitor_ratio, "visitor ratio")
    if ratio < 0:
        raise ValueError("visitor ratio cannot be negative")
    return round_up(staff * (1 + ratio)) + extra


class RateKind(StrEnum):
    PER_PERSON_PER_DAY = "per_person_per_day"  # water, food, toilet uses
    PER_PERSON = "per_person"  # blankets: needed once, however long the stay
    PER_N_PEOPLE = "per_n_people"  # e.g. one first-aid kit per 50 people, whole kits


@dataclass(frozen=True)
class Item:
    """A kind of supply and how much of it one site needs.

    ``rate`` is the quantity (in ``unit``) per person per day, per person, or per ``per_n_people`` people,
    depending on ``rate_kind``. ``shelf_life_months`` is how long a freshly bought lot keeps (None: it does
    not expire); it dates the lots proposed by the rotation plan.
    """

    key: str
    name_ja: str
    name_en: str
    unit: str
    rate_kind: RateKind
    rate: Decimal
    per_n_people: int | None = None
    shelf_life_months: int | None = None

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("an item needs a key")
        rate = to_decimal(self.rate, f"rate of {self.key}")
        if rate <= 0:
            raise ValueError(f"rate of {self.key} must be positive")
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "rate_kind", RateKind(self.rate_kind))
        if self.rate_kind is RateKind.PER_N_PEOPLE:
            if self.per_n_people is None or self.per_n_people < 1:
                raise ValueError(f"{self.key} is counted per N people: per_n_people must be at least 1")
        elif self.per_n_people is not None:
            raise ValueError(f"per_n_people only applies to {RateKind.PER_N_PEOPLE.value} items")
        if self.shelf_life_months is not None and self.shelf_life_months < 1:
            raise ValueError(f"shelf life of {self.key} must be at least one month")

    def name(self, language: str = "ja") -> str:
        return self.name_ja if language == "ja" else self.name_en

    def quantity_for(self, headcount: int, days: int) -> int:
        """Whole units needed for ``headcount`` people over ``days`` days."""
        if self.rate_kind is RateKind.PER_PERSON_PER_DAY:
            return round_up(headcount * days * self.rate)
        if self.rate_kind is RateKind.PER_PERSON:
            return round_up(headcount * self.rate)
        assert self.per_n_people is not None
        groups = -(-headcount // self.per_n_people)  # ceil without floats: 51 people need 2 kits of 50
        return round_up(groups * self.rate)

    def daily_need(self, headcount: int) -> Decimal | None:
        """Consumption per day, or None for items that are not used up day by day (blankets, kits)."""
        if self.rate_kind is RateKind.PER_PERSON_PER_DAY:
            return headcount * self.rate
        return None


WATER = Item("water", "飲料水", "Water", "L", RateKind.PER_PERSON_PER_DAY, Decimal(3), shelf_life_months=60)
FOOD = Item(
    "food", "食料", "Food (meals)", "meals", RateKind.PER_PERSON_PER_DAY, Decimal(3), shelf_life_months=60
)
TOILET = Item(
    "toilet", "簡易トイレ", "Portable toilet (uses)", "uses", RateKind.PER_PERSON_PER_DAY, Decimal(5)
)
BLANKET = Item("blanket", "毛布", "Blankets", "pcs", RateKind.PER_PERSON, Decimal(1))

DEFAULT_ITEMS: tuple[Item, ...] = (WATER, FOOD, TOILET, BLANKET)


@dataclass(frozen=True)
class Requirement:
    item: Item
    unit: str
    quantity: int


def requirements(
    headcount: int, days: int = DEFAULT_DAYS, items: Sequence[Item] = DEFAULT_ITEMS
) -> list[Requirement]:
    """What ``headcount`` people need for ``days`` days, one row per item in catalogue order.

    100 people for 3 days: 900 L water, 900 meals, 1,500 toilet uses, 100 blankets.
    """
    if headcount < 0:
        raise ValueError("headcount cannot be negative")
    if days < 1:
        raise ValueError("days must be at least 1")
    return [Requirement(item, item.unit, item.quantity_for(headcount, days)) for item in items]


# --------------------------------------------------------------------------------------------------------------
# Inventory status
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lot:
    """A quantity of one item in one storage location, as counted by facilities.

    ``item`` is the item's key; ``unit`` must be the item's unit (units are not converted). ``ref`` is an opaque
    identifier the caller may set (e.g. the database id) to find the lot again.
    """

    item: str
    quantity: Decimal
    unit: str
    location: str
    expires_on: date | None = None
    note: str = ""
    ref: int | str | None = None

    def __post_init__(self) -> None:
        quantity = to_decimal(self.quantity, f"quantity of a {self.item} lot")
        if quantity < 0:
            raise ValueError(f"quantity of a {self.item} lot cannot be negative")
        object.__setattr__(self, "quantity", quantity)

    def is_expired(self, today: date) -> bool:
        return self.expires_on is not None and self.expires_on < today


def _by_expiry(lot: Lot) -> tuple[bool, date, str, str]:
    return (lot.expires_on is None, lot.expires_on or date.max, lot.location, lot.note)


@dataclass(frozen=True)
class ConcentrationWarning:
    """More than the allowed share of an item's usable stock sits in one storage location."""

    item: str
    location: str
    quantity: Decimal
    total: Decimal
    share: Decimal  # exact, e.g. Decimal("0.75"); format for display

    @property
    def percent(self) -> Decimal:
        return (self.share * 100).quantize(_ONE_DECIMAL, rounding=ROUND_FLOOR)


@dataclass(frozen=True)
class StockStatus:
    """One item at one site on ``as_of``.

    ``usable`` counts only lots not expired on ``as_of``. ``days_covered`` (usable stock ÷ daily need, rounded
    down to 0.1 day) exists only for items consumed per day; ``coverage`` (usable ÷ required, rounded down to
    0.01) exists for every item with a non-zero requirement. ``expiring_soon`` are usable lots whose expiry
    falls within the horizon (on or before ``horizon_ends_on``), soonest first.
    """

    item: Item
    as_of: date
    horizon_ends_on: date
    required: int
    usable: Decimal
    expired: Decimal
    shortfall: Decimal
    surplus: Decimal
    coverage: Decimal | None
    days_covered: Decimal | None
    usable_lots: tuple[Lot, ...]
    expired_lots: tuple[Lot, ...]
    expiring_soon: tuple[Lot, ...]
    concentrations: tuple[ConcentrationWarning, ...] = ()

    @property
    def expiring_soon_quantity(self) -> Decimal:
        return sum((lot.quantity for lot in self.expiring_soon), Decimal(0))


def stock_status(
    *,
    headcount: int,
    lots: Iterable[Lot],
    today: date,
    days: int = DEFAULT_DAYS,
    items: Sequence[Item] = DEFAULT_ITEMS,
    expiring_within_months: int = DEFAULT_EXPIRY_HORIZON_MONTHS,
    max_location_share: Number = DEFAULT_MAX_LOCATION_SHARE,
) -> list[StockStatus]:
    """Stock against requirement for every item in ``items``, in catalogue order.

    Lots of items not in ``items`` are ignored. A lot whose unit differs from its item's unit raises
    ``ValueError``: counting bottles as litres would hide a shortfall, so the caller must fix the data.
    A concentration warning is given for each location holding strictly more than ``max_location_share`` of
    the item's usable stock (exactly half in one place is not a warning at the default 0.5).
    """
    if expiring_within_months < 0:
        raise ValueError("the expiry horizon cannot be negative")
    share_limit = to_decimal(max_location_share, "maximum location share")
    horizon_ends_on = add_months(today, expiring_within_months)
    lots_by_item: Mapping[str, list[Lot]] = _group_lots(lots)
    statuses = []
    for requirement in requirements(headcount, days, items):
        item = requirement.item
        item_lots = lots_by_item.get(item.key, [])
        for lot in item_lots:
            if lot.unit != item.unit:
                raise ValueError(
                    f"a {item.key} lot at {lot.location!r} is counted in {lot.unit!r}, "
                    f"but {item.key} is counted in {item.unit!r}"
                )
        usable_lots = tuple(sorted((lot for lot in item_lots if not lot.is_expired(today)), key=_by_expiry))
        expired_lots = tuple(sorted((lot for lot in item_lots if lot.is_expired(today)), key=_by_expiry))
        usable = sum((lot.quantity for lot in usable_lots), Decimal(0))
        required = requirement.quantity
        daily = item.daily_need(headcount)
        statuses.append(
            StockStatus(
                item=item,
                as_of=today,
                horizon_ends_on=horizon_ends_on,
                required=required,
                usable=usable,
                expired=sum((lot.quantity for lot in expired_lots), Decimal(0)),
                shortfall=max(Decimal(0), required - usable),
                surplus=max(Decimal(0), usable - required),
                coverage=(usable / required).quantize(_TWO_DECIMALS, rounding=ROUND_FLOOR)
                if required
                else None,
                days_covered=(usable / daily).quantize(_ONE_DECIMAL, rounding=ROUND_FLOOR) if daily else None,
                usable_lots=usable_lots,
                expired_lots=expired_lots,
                expiring_soon=tuple(
                    lot
                    for lot in usable_lots
                    if lot.expires_on is not None and lot.expires_on <= horizon_ends_on
                ),
                concentrations=_concentrations(item.key, usable_lots, usable, share_limit),
            )
        )
    return statuses


def _group_lots(lots: Iterable[Lot]) -> dict[str, list[Lot]]:
    grouped: dict[str, list[Lot]] = defaultdict(list)
    for lot in lots:
        grouped[lot.item].append(lot)
    return grouped


def _concentrations(
    item_key: str, usable_lots: Sequence[Lot], total: Decimal, share_limit: Decimal
) -> tuple[ConcentrationWarning, ...]:
    if total <= 0:
        return ()
    per_location: dict[str, Decimal] = defaultdict(Decimal)
    for lot in usable_lots:
        per_location[lot.location] += lot.quantity
    # Compared by multiplication so that "exactly half" is decided exactly, not after a rounded division.
    warnings = [
        ConcentrationWarning(item_key, location, quantity, total, quantity / total)
        for location, quantity in per_location.items()
        if quantity > share_limit * total
    ]
    warnings.sort(key=lambda warning: (-warning.quantity, warning.location))
    return tuple(warnings)


# --------------------------------------------------------------------------------------------------------------
# Rotation plan
# --------------------------------------------------------------------------------------------------------------


class PurchaseReason(StrEnum):
    SHORTFALL = "shortfall"
    EXPIRY_REPLACEMENT = "expiry_replacement"


@dataclass(frozen=True)
class PlannedPurchase:
    """Buy ``quantity`` of ``item`` on ``buy_on``.

    For a replacement, ``replaces_from``/``replaces_until`` span the expiry dates of the lots it replaces and
    ``batch``/``batches`` number it within its group. ``expected_expiry`` dates the new lot from the item's
    shelf life (None when the item has none).
    """

    item: Item
    buy_on: date
    quantity: int
    reason: PurchaseReason
    expected_expiry: date | None
    replaces_from: date | None = None
    replaces_until: date | None = None
    batch: int = 1
    batches: int = 1


@dataclass(frozen=True)
class ItemRotation:
    """``use_first``: usable lots that expire, soonest first, to be used (in drills, or given away) before
    their date. ``purchases``: what to buy and when, in date order."""

    item: Item
    use_first: tuple[Lot, ...]
    purchases: tuple[PlannedPurchase, ...]


def rotation_plan(
    statuses: Sequence[StockStatus], *, batches: int = DEFAULT_ROTATION_BATCHES
) -> list[ItemRotation]:
    """A deterministic rotation plan per item from ``stock_status`` results.

    1. The shortfall is bought at once, on the status date.
    2. Usable lots expiring within the status horizon are grouped by the calendar quarter of their expiry.
       Walking the quarters in order, a group is replaced only as far as the stock would otherwise drop below
       the requirement: surplus stock absorbs expiries first, so a site holding more than it needs buys less.
    3. A group's replacement is split into up to ``batches`` nearly equal batches (larger ones first), bought on
       the first day of each of the months just before the month of the group's earliest expiry: with 3
       batches and lots expiring in March, in December, January and February. The new lots therefore expire in
       three different months instead of together, and every batch arrives before the old stock runs out.
       When fewer months remain before the expiry, there are fewer (larger) batches; a batch that falls in the
       current month is bought on the status date itself.
    """
    if batches < 1:
        raise ValueError("batches must be at least 1")
    plan = []
    for status in statuses:
        item = status.item
        purchases: list[PlannedPurchase] = []
        shortfall = round_up(status.shortfall)
        if shortfall:
            purchases.append(
                PlannedPurchase(
                    item, status.as_of, shortfall, PurchaseReason.SHORTFALL, _expiry(item, status.as_of)
                )
            )
        # Stock beyond the requirement once the shortfall is bought; it shrinks as groups expire.
        slack = status.surplus
        for group in _expiry_groups(status.expiring_soon):
            expiring = sum((lot.quantity for lot in group), Decimal(0))
            replacement = round_up(max(Decimal(0), expiring - slack))
            slack = max(Decimal(0), slack - expiring)
            if replacement:
                purchases.extend(_replacement_batches(item, status.as_of, group, replacement, batches))
        purchases.sort(key=lambda purchase: (purchase.buy_on, purchase.reason != PurchaseReason.SHORTFALL))
        use_first = tuple(lot for lot in status.usable_lots if lot.expires_on is not None)
        plan.append(ItemRotation(item, use_first, tuple(purchases)))
    return plan


def _expiry(item: Item, bought_on: date) -> date | None:
    return add_months(bought_on, item.shelf_life_months) if item.shelf_life_months else None


def _expiry_groups(expiring_lots: Sequence[Lot]) -> list[list[Lot]]:
    groups: dict[tuple[int, int], list[Lot]] = defaultdict(list)
    for lot in expiring_lots:
        assert lot.expires_on is not None
        groups[_quarter(lot.expires_on)].append(lot)
    return [groups[quarter] for quarter in sorted(groups)]


def _replacement_batches(
    item: Item, today: date, group: Sequence[Lot], quantity: int, batches: int
) -> list[PlannedPurchase]:
    expiry_dates = [lot.expires_on for lot in group if lot.expires_on is not None]
    first_expiry, last_expiry = min(expiry_dates), max(expiry_dates)
    months_left = _month_index(first_expiry) - _month_index(today)
    # Never more batches than months before the expiry, nor than units to buy.
    count = max(1, min(batches, months_left, quantity))
    first_month = (
        add_months(first_expiry.replace(day=1), -count) if months_left >= 1 else today.replace(day=1)
    )
    base, remainder = divmod(quantity, count)
    result = []
    for index in range(count):
        buy_on = max(add_months(first_month, index), today)
        result.append(
            PlannedPurchase(
                item=item,
                buy_on=buy_on,
                quantity=base + (1 if index < remainder else 0),
                reason=PurchaseReason.EXPIRY_REPLACEMENT,
                expected_expiry=_expiry(item, buy_on),
                replaces_from=first_expiry,
                replaces_until=last_expiry,
                batch=index + 1,
                batches=count,
            )
        )
    return result


# --------------------------------------------------------------------------------------------------------------
# Purchase list
# --------------------------------------------------------------------------------------------------------------

PURCHASE_LIST_HEADERS: Mapping[str, tuple[str, ...]] = {
    "ja": ("拠点", "品目", "単位", "購入数量", "理由"),
    "en": ("Site", "Item", "Unit", "Quantity to buy", "Reason"),
}


@dataclass(frozen=True)
class PurchaseRow:
    """One line of a site's purchase list. ``expiring_by`` is the latest expiry of the lots a replacement
    row replaces."""

    site: str
    item: Item
    quantity: int
    reason: PurchaseReason
    expiring_by: date | None = None

    @property
    def unit(self) -> str:
        return self.item.unit

    def reason_text(self, language: str = "ja") -> str:
        if self.reason is PurchaseReason.SHORTFALL:
            return "不足分" if language == "ja" else "shortfall"
        until = self.expiring_by.isoformat() if self.expiring_by else ""
        if language == "ja":
            return f"{until}までに期限切れとなる在庫の入替"
        return f"replaces stock expiring by {until}"

    def as_row(self, language: str = "ja") -> tuple[str, str, str, str, str]:
        """Cells in the order of ``PURCHASE_LIST_HEADERS``, ready for a CSV writer or a PDF table."""
        return (
            self.site,
            self.item.name(language),
            self.unit,
            str(self.quantity),
            self.reason_text(language),
        )


def purchase_list(site: str, statuses: Sequence[StockStatus]) -> list[PurchaseRow]:
    """What ``site`` must buy: per item, the shortfall and the replacement of stock expiring within the
    status horizon, with the same quantities as ``rotation_plan`` (the list is its total per item and reason)."""
    rows = []
    for rotation in rotation_plan(statuses):
        shortfall = sum(p.quantity for p in rotation.purchases if p.reason is PurchaseReason.SHORTFALL)
        replacements = [p for p in rotation.purchases if p.reason is PurchaseReason.EXPIRY_REPLACEMENT]
        if shortfall:
            rows.append(PurchaseRow(site, rotation.item, shortfall, PurchaseReason.SHORTFALL))
        if replacements:
            rows.append(
                PurchaseRow(
                    site,
                    rotation.item,
                    sum(p.quantity for p in replacements),
                    PurchaseReason.EXPIRY_REPLACEMENT,
                    expiring_by=max(p.replaces_until for p in replacements if p.replaces_until is not None),
                )
            )
    return rows
