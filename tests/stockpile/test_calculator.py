from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from stockpile.calculator import (
    BLANKET,
    DEFAULT_ITEMS,
    FOOD,
    PURCHASE_LIST_HEADERS,
    WATER,
    Item,
    Lot,
    PurchaseReason,
    RateKind,
    add_months,
    headcount,
    purchase_list,
    requirements,
    rotation_plan,
    stock_status,
)

TODAY = date(2025, 10, 10)

FIRST_AID_KIT = Item(
    "first_aid_kit", "救急箱", "First-aid kits", "kits", RateKind.PER_N_PEOPLE, Decimal(1), 50
)
RADIO_BATTERIES = Item("batteries", "乾電池", "Batteries", "pcs", RateKind.PER_N_PEOPLE, Decimal(4), 10)
HELMET = Item("helmet", "ヘルメット", "Helmets", "pcs", RateKind.PER_PERSON, Decimal("0.5"))
SPORTS_DRINK = Item(
    "drink", "経口補水液", "Oral rehydration", "L", RateKind.PER_PERSON_PER_DAY, Decimal("1.5")
)


def water_lot(quantity: int, location: str = "B1 store", expires_on: date | None = None) -> Lot:
    return Lot("water", quantity, "L", location, expires_on)


def status_of(item: Item, lots: list[Lot], people: int = 100, **kwargs: object):
    (status,) = stock_status(headcount=people, lots=lots, today=TODAY, items=(item,), **kwargs)
    return status


# --- headcount ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("staff", "ratio", "extra", "expected"),
    [
        (100, Decimal(0), 0, 100),
        (100, Decimal("0.1"), 0, 110),
        (100, 0.1, 0, 110),  # a float ratio must not turn 110 into 111
        (100, "0.10", 0, 110),
        (7, 0.1, 0, 8),  # 7.7 people are 8
        (10, 0.1, 0, 11),
        (3, "0.15", 0, 4),  # 3.45 → 4
        (1, "0.01", 0, 2),
        (7, 0.1, 2, 10),  # contractors on top
        (0, 0.1, 5, 5),
        (0, 0.1, 0, 0),
    ],
)
def test_headcount_rounds_partial_people_up(staff: int, ratio: object, extra: int, expected: int) -> None:
    assert headcount(staff, ratio, extra) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("staff", "ratio", "extra"), [(-1, 0, 0), (1, -0.1, 0), (1, 0, -1), (1, "nan", 0)])
def test_headcount_rejects_impossible_input(staff: int, ratio: object, extra: int) -> None:
    with pytest.raises(ValueError):
        headcount(staff, ratio, extra)  # type: ignore[arg-type]


# --- requirements ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("people", "days", "expected"),
    [
        (100, 3, {"water": 900, "food": 900, "toilet": 1500, "blanket": 100}),
        (headcount(100, "0.1"), 3, {"water": 990, "food": 990, "toilet": 1650, "blanket": 110}),
        (
            100,
            7,
            {"water": 2100, "food": 2100, "toilet": 3500, "blanket": 100},
        ),  # blankets do not grow with days
        (0, 3, {"water": 0, "food": 0, "toilet": 0, "blanket": 0}),
    ],
)
def test_default_requirements(people: int, days: int, expected: dict[str, int]) -> None:
    rows = requirements(people, days)
    assert {row.item.key: row.quantity for row in rows} == expected
    assert [row.item.key for row in rows] == ["water", "food", "toilet", "blanket"]
    assert {row.item.key: row.unit for row in rows} == {
        "water": "L",
        "food": "meals",
        "toilet": "uses",
        "blanket": "pcs",
    }


def test_default_requirement_uses_three_days() -> None:
    assert [row.quantity for row in requirements(100)] == [row.quantity for row in requirements(100, 3)]


def test_default_items_have_japanese_and_english_names() -> None:
    names = {item.key: (item.name("ja"), item.name("en")) for item in DEFAULT_ITEMS}
    assert names == {
        "water": ("飲料水", "Water"),
        "food": ("食料", "Food (meals)"),
        "toilet": ("簡易トイレ", "Portable toilet (uses)"),
        "blanket": ("毛布", "Blankets"),
    }


@pytest.mark.parametrize(
    ("item", "people", "days", "expected"),
    [
        (FIRST_AID_KIT, 0, 3, 0),
        (FIRST_AID_KIT, 1, 3, 1),
        (FIRST_AID_KIT, 50, 3, 1),
        (FIRST_AID_KIT, 51, 3, 2),
        (FIRST_AID_KIT, 110, 7, 3),  # per N people: days do not matter
        (RADIO_BATTERIES, 25, 3, 12),  # 3 groups of 10 × 4 batteries
        (HELMET, 7, 3, 4),  # 3.5 helmets → 4
        (SPORTS_DRINK, 7, 3, 32),  # 31.5 L → 32
    ],
)
def test_configurable_items(item: Item, people: int, days: int, expected: int) -> None:
    (row,) = requirements(people, days, (item,))
    assert row.quantity == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate_kind": RateKind.PER_N_PEOPLE, "rate": Decimal(1)},  # per N people without N
        {"rate_kind": RateKind.PER_PERSON, "rate": Decimal(1), "per_n_people": 10},
        {"rate_kind": RateKind.PER_PERSON, "rate": Decimal(0)},
        {"rate_kind": RateKind.PER_PERSON, "rate": Decimal(1), "shelf_life_months": 0},
    ],
)
def test_item_rejects_inconsistent_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Item("x", "x", "x", "pcs", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("people", "days"), [(-1, 3), (10, 0)])
def test_requirements_reject_impossible_input(people: int, days: int) -> None:
    with pytest.raises(ValueError):
        requirements(people, days)


# --- stock status ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires_on", "counted"),
    [
        (None, True),
        (date(2025, 10, 9), False),  # expired yesterday
        (date(2025, 10, 10), True),  # last usable day is today
        (date(2030, 1, 1), True),
        (date(2020, 1, 1), False),
    ],
)
def test_expired_lots_are_not_counted(expires_on: date | None, counted: bool) -> None:
    status = status_of(WATER, [water_lot(500, expires_on=expires_on), water_lot(100)])
    assert status.usable == (600 if counted else 100)
    assert status.expired == (0 if counted else 500)
    assert status.shortfall == (300 if counted else 800)
    assert (len(status.expired_lots) == 1) is not counted


@pytest.mark.parametrize(
    ("item", "lots", "required", "shortfall", "surplus", "days_covered", "coverage"),
    [
        (WATER, [water_lot(700)], 900, 200, 0, Decimal("2.3"), Decimal("0.77")),  # 700/300 = 2.33
        (WATER, [water_lot(899)], 900, 1, 0, Decimal("2.9"), Decimal("0.99")),  # never rounded up to 3 days
        (WATER, [water_lot(1000)], 900, 0, 100, Decimal("3.3"), Decimal("1.11")),
        (WATER, [], 900, 900, 0, Decimal("0.0"), Decimal("0.00")),
        (BLANKET, [Lot("blanket", 50, "pcs", "3F")], 100, 50, 0, None, Decimal("0.50")),
    ],
)
def test_shortfall_surplus_and_coverage(
    item: Item,
    lots: list[Lot],
    required: int,
    shortfall: int,
    surplus: int,
    days_covered: Decimal | None,
    coverage: Decimal,
) -> None:
    status = status_of(item, lots)
    assert (status.required, status.shortfall, status.surplus) == (required, shortfall, surplus)
    assert status.days_covered == days_covered
    assert status.coverage == coverage


def test_days_covered_uses_the_headcount_with_visitors() -> None:
    status = status_of(WATER, [water_lot(700)], people=headcount(100, "0.1"))
    assert status.days_covered == Decimal("2.1")  # 700 L / 330 L a day


def test_no_requirement_means_no_ratios() -> None:
    status = status_of(WATER, [water_lot(10)], people=0)
    assert (status.coverage, status.days_covered, status.surplus) == (None, None, 10)


@pytest.mark.parametrize(
    ("months", "expires_on", "soon"),
    [
        (6, date(2026, 4, 10), True),  # exactly six months ahead
        (6, date(2026, 4, 11), False),
        (6, date(2025, 10, 10), True),  # today
        (6, date(2025, 10, 9), False),  # already expired: listed as expired, not as expiring
        (1, date(2025, 11, 10), True),
        (1, date(2025, 12, 1), False),
        (12, date(2026, 10, 1), True),
        (6, None, False),
    ],
)
def test_expiring_within_n_months(months: int, expires_on: date | None, soon: bool) -> None:
    lot = water_lot(300, expires_on=expires_on)
    status = status_of(
        WATER, [lot, water_lot(10, expires_on=date(2031, 1, 1))], expiring_within_months=months
    )
    assert (lot in status.expiring_soon) is soon
    assert status.horizon_ends_on == add_months(TODAY, months)


def test_expiring_soon_is_ordered_by_expiry() -> None:
    lots = [water_lot(1, expires_on=date(2026, 3, 1)), water_lot(2, expires_on=date(2025, 12, 1))]
    status = status_of(WATER, lots)
    assert [lot.quantity for lot in status.expiring_soon] == [2, 1]
    assert status.expiring_soon_quantity == 3


@pytest.mark.parametrize(
    ("lots", "warned"),
    [
        ([water_lot(51, "A"), water_lot(49, "B")], [("A", Decimal("0.51"))]),
        ([water_lot(50, "A"), water_lot(50, "B")], []),  # exactly half is not "more than half"
        ([water_lot(100, "A")], [("A", Decimal(1))]),
        ([water_lot(30, "A"), water_lot(31, "A"), water_lot(60, "B")], [("A", Decimal("61") / 121)]),
        ([water_lot(40, "A"), water_lot(30, "B"), water_lot(30, "C")], []),
        ([], []),
        # expired stock does not count: A holds 40 usable of 100
        (
            [water_lot(500, "A", date(2025, 1, 1)), water_lot(40, "A"), water_lot(60, "B")],
            [("B", Decimal("0.6"))],
        ),
        ([water_lot(500, "A", date(2025, 1, 1))], []),  # nothing usable: nothing to warn about
    ],
)
def test_concentration_warning_above_half_in_one_location(
    lots: list[Lot], warned: list[tuple[str, Decimal]]
) -> None:
    status = status_of(WATER, lots)
    assert [(warning.location, warning.share) for warning in status.concentrations] == warned


def test_concentration_share_is_configurable() -> None:
    lots = [water_lot(40, "A"), water_lot(35, "B"), water_lot(25, "C")]
    status = status_of(WATER, lots, max_location_share=Decimal("0.3"))
    assert [(w.location, w.share, w.percent) for w in status.concentrations] == [
        ("A", Decimal("0.4"), Decimal("40.0")),
        ("B", Decimal("0.35"), Decimal("35.0")),
    ]


def test_lot_in_another_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="bottles"):
        status_of(WATER, [Lot("water", 24, "bottles", "A")])


def test_lots_of_other_items_are_left_out() -> None:
    statuses = stock_status(headcount=10, lots=[water_lot(100), Lot("food", 5, "meals", "A")], today=TODAY)
    by_key = {status.item.key: status.usable for status in statuses}
    assert by_key == {"water": 100, "food": 5, "toilet": 0, "blanket": 0}


# --- rotation plan -----------------------------------------------------------------------------------------------


def plan_for(item: Item, lots: list[Lot], people: int = 100, batches: int = 3, months: int = 6):
    status = status_of(item, lots, people=people, expiring_within_months=months)
    (rotation,) = rotation_plan([status], batches=batches)
    return rotation


def purchases(rotation) -> list[tuple[date, int, PurchaseReason]]:
    return [(p.buy_on, p.quantity, p.reason) for p in rotation.purchases]


SHORT = PurchaseReason.SHORTFALL
REPLACE = PurchaseReason.EXPIRY_REPLACEMENT


@pytest.mark.parametrize(
    ("lots", "batches", "expected"),
    [
        # everything expires in March: three batches in the three months before, none in the expiry month
        (
            [water_lot(900, expires_on=date(2026, 3, 15))],
            3,
            [
                (date(2025, 12, 1), 300, REPLACE),
                (date(2026, 1, 1), 300, REPLACE),
                (date(2026, 2, 1), 300, REPLACE),
            ],
        ),
        # uneven split: larger batches first; the lot without expiry needs no replacement
        (
            [water_lot(800, expires_on=date(2026, 3, 15)), water_lot(100, "B2")],
            3,
            [
                (date(2025, 12, 1), 267, REPLACE),
                (date(2026, 1, 1), 267, REPLACE),
                (date(2026, 2, 1), 266, REPLACE),
            ],
        ),
        # the surplus covers the lot expiring: 1,000 held, 900 needed, 1,000 expire → 900
        (
            [water_lot(1000, expires_on=date(2026, 3, 15))],
            3,
            [
                (date(2025, 12, 1), 300, REPLACE),
                (date(2026, 1, 1), 300, REPLACE),
                (date(2026, 2, 1), 300, REPLACE),
            ],
        ),
        (
            [water_lot(800, expires_on=date(2026, 3, 15)), water_lot(100, "B2", date(2026, 2, 1))],
            3,
            [
                (date(2025, 11, 1), 300, REPLACE),
                (date(2025, 12, 1), 300, REPLACE),
                (date(2026, 1, 1), 300, REPLACE),
            ],
        ),
        # only one month left before the expiry: one batch, bought today
        ([water_lot(900, expires_on=date(2025, 11, 20))], 3, [(TODAY, 900, REPLACE)]),
        # expiring this very month
        ([water_lot(900, expires_on=date(2025, 10, 31))], 3, [(TODAY, 900, REPLACE)]),
        # two months left: two batches, the first one today
        (
            [water_lot(900, expires_on=date(2025, 12, 5))],
            3,
            [(TODAY, 450, REPLACE), (date(2025, 11, 1), 450, REPLACE)],
        ),
        ([water_lot(900, expires_on=date(2026, 3, 15))], 1, [(date(2026, 2, 1), 900, REPLACE)]),
        # shortfall is bought now; nothing expires within the horizon
        ([water_lot(600, expires_on=date(2029, 1, 1))], 3, [(TODAY, 300, SHORT)]),
        # stock beyond the requirement absorbs the expiry first: 1,000 held, 400 expire, 900 needed → 300
        (
            [water_lot(600, expires_on=date(2029, 1, 1)), water_lot(400, "B2", date(2026, 2, 20))],
            3,
            [
                (date(2025, 11, 1), 100, REPLACE),
                (date(2025, 12, 1), 100, REPLACE),
                (date(2026, 1, 1), 100, REPLACE),
            ],
        ),
        # enough surplus: nothing to buy
        ([water_lot(1000), water_lot(100, "B2", date(2026, 2, 20))], 3, []),
        # fewer units than batches: no empty batches
        (
            [water_lot(898), water_lot(4, "B2", date(2026, 3, 20))],
            3,
            [(date(2026, 1, 1), 1, REPLACE), (date(2026, 2, 1), 1, REPLACE)],
        ),
    ],
)
def test_rotation_batches(
    lots: list[Lot], batches: int, expected: list[tuple[date, int, PurchaseReason]]
) -> None:
    assert purchases(plan_for(WATER, lots, batches=batches)) == expected


def test_rotation_replaces_each_quarter_separately() -> None:
    lots = [
        water_lot(300, "A", date(2026, 1, 20)),
        water_lot(300, "B", date(2026, 3, 5)),  # same quarter as January: one group, replaced before January
        water_lot(300, "C", date(2026, 4, 10)),  # next quarter: its own group, replaced before April
    ]
    rotation = plan_for(WATER, lots, months=7)
    assert [
        (p.buy_on, p.quantity, p.replaces_from, p.replaces_until, p.batch, p.batches)
        for p in rotation.purchases
    ] == [
        (TODAY, 200, date(2026, 1, 20), date(2026, 3, 5), 1, 3),
        (date(2025, 11, 1), 200, date(2026, 1, 20), date(2026, 3, 5), 2, 3),
        (date(2025, 12, 1), 200, date(2026, 1, 20), date(2026, 3, 5), 3, 3),
        (date(2026, 1, 1), 100, date(2026, 4, 10), date(2026, 4, 10), 1, 3),
        (date(2026, 2, 1), 100, date(2026, 4, 10), date(2026, 4, 10), 2, 3),
        (date(2026, 3, 1), 100, date(2026, 4, 10), date(2026, 4, 10), 3, 3),
    ]


def test_staggered_batches_expire_in_different_months() -> None:
    rotation = plan_for(FOOD, [Lot("food", 900, "meals", "A", date(2026, 3, 15))])
    expiries = [p.expected_expiry for p in rotation.purchases]
    assert expiries == [date(2030, 12, 1), date(2031, 1, 1), date(2031, 2, 1)]  # five-year shelf life
    assert len({(e.year, e.month) for e in expiries if e}) == 3


def test_shortfall_and_replacement_together() -> None:
    rotation = plan_for(WATER, [water_lot(500, expires_on=date(2026, 2, 10))])
    assert purchases(rotation) == [
        (TODAY, 400, SHORT),
        (date(2025, 11, 1), 167, REPLACE),
        (date(2025, 12, 1), 167, REPLACE),
        (date(2026, 1, 1), 166, REPLACE),
    ]


def test_item_without_shelf_life_gets_no_expected_expiry() -> None:
    rotation = plan_for(BLANKET, [Lot("blanket", 40, "pcs", "A")])
    assert [(p.quantity, p.expected_expiry) for p in rotation.purchases] == [(60, None)]


def test_use_first_lists_expiring_lots_soonest_first() -> None:
    lots = [
        water_lot(1, "A", date(2027, 1, 1)),
        water_lot(2, "B"),  # never expires: nothing to use up first
        water_lot(3, "C", date(2026, 1, 1)),
        water_lot(4, "D", date(2025, 1, 1)),  # expired: not usable any more
    ]
    assert [lot.location for lot in plan_for(WATER, lots).use_first] == ["C", "A"]


# --- purchase list -----------------------------------------------------------------------------------------------


def test_purchase_list_rows() -> None:
    lots = [
        water_lot(1000, expires_on=date(2026, 3, 15)),  # 100 surplus, 1,000 expiring → replace 900
        Lot("food", 500, "meals", "A", date(2031, 1, 1)),  # with the lot below, 600 of 900: shortfall 300
        Lot("food", 100, "meals", "A", date(2025, 12, 31)),  # expiring while short → replaced in full
        Lot("toilet", 1500, "uses", "A"),  # enough: no row
        Lot("blanket", 100, "pcs", "A"),
    ]
    statuses = stock_status(headcount=100, lots=lots, today=TODAY)
    rows = purchase_list("TKY", statuses)
    assert [(row.site, row.item.key, row.unit, row.quantity, row.reason) for row in rows] == [
        ("TKY", "water", "L", 900, REPLACE),
        ("TKY", "food", "meals", 300, SHORT),
        ("TKY", "food", "meals", 100, REPLACE),
    ]
    assert rows[0].as_row("en") == ("TKY", "Water", "L", "900", "replaces stock expiring by 2026-03-15")
    assert rows[1].as_row("ja") == ("TKY", "食料", "meals", "300", "不足分")
    assert rows[2].as_row("ja")[4] == "2025-12-31までに期限切れとなる在庫の入替"
    assert len(PURCHASE_LIST_HEADERS["ja"]) == len(PURCHASE_LIST_HEADERS["en"]) == len(rows[0].as_row())


def test_purchase_list_matches_rotation_totals() -> None:
    lots = [
        water_lot(300, "A", date(2026, 1, 20)),
        water_lot(300, "B", date(2026, 3, 5)),
        water_lot(100, "C"),
    ]
    statuses = stock_status(headcount=100, lots=lots, today=TODAY, items=(WATER,))
    (rotation,) = rotation_plan(statuses)
    rows = purchase_list("OSA", statuses)
    assert sum(row.quantity for row in rows) == sum(p.quantity for p in rotation.purchases) == 800


def test_nothing_to_buy_when_stock_is_sufficient() -> None:
    lots = [
        water_lot(900),
        Lot("food", 900, "meals", "A"),
        Lot("toilet", 1500, "uses", "A"),
        Lot("blanket", 100, "pcs", "A"),
    ]
    assert purchase_list("TKY", stock_status(headcount=100, lots=lots, today=TODAY)) == []


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2025, 8, 31), 6, date(2026, 2, 28)),
        (date(2027, 8, 31), 6, date(2028, 2, 29)),
        (date(2025, 1, 15), -3, date(2024, 10, 15)),
        (date(2025, 12, 1), 1, date(2026, 1, 1)),
        (date(2025, 10, 10), 0, date(2025, 10, 10)),
    ],
)
def test_add_months(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected
