"""The recurring drill schedule (pure): which day, which scenario, when to remind."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from reports.schedule import Recurrence, drill_window, next_drill_date, reminder_due, scenario_at, upcoming

ROTATION = ["earthquake", "typhoon", "pandemic", "cyber_attack"]


@pytest.mark.parametrize(
    ("recurrence", "after", "last", "expected"),
    [
        (Recurrence(day_of_month=15), date(2026, 3, 10), None, date(2026, 3, 15)),
        (Recurrence(day_of_month=15), date(2026, 3, 15), None, date(2026, 4, 15)),  # strictly after
        (Recurrence(day_of_month=31), date(2026, 2, 1), None, date(2026, 2, 28)),  # short month
        (Recurrence(day_of_month=31), date(2028, 2, 1), None, date(2028, 2, 29)),  # leap year
        (Recurrence(day_of_month=15), date(2026, 12, 20), None, date(2027, 1, 15)),  # year end
        # Every three months keeps the rhythm of the last scheduled drill.
        (Recurrence(every_months=3, day_of_month=15), date(2026, 2, 1), date(2026, 1, 15), date(2026, 4, 15)),
        # Whole periods missed (the job did not run): the next one in the rhythm, never one in the past.
        (
            Recurrence(every_months=3, day_of_month=15),
            date(2026, 5, 20),
            date(2026, 1, 15),
            date(2026, 7, 15),
        ),
        (Recurrence(every_months=1, day_of_month=10), date(2026, 1, 5), date(2026, 1, 10), date(2026, 2, 10)),
    ],
)
def test_next_drill_day(recurrence, after, last, expected):
    assert next_drill_date(recurrence, after=after, last=last) == expected


def test_scenarios_rotate_earthquake_typhoon_pandemic_cyber_then_again():
    assert [scenario_at(ROTATION, i) for i in range(6)] == [
        "earthquake",
        "typhoon",
        "pandemic",
        "cyber_attack",
        "earthquake",
        "typhoon",
    ]


def test_an_empty_rotation_is_refused():
    with pytest.raises(ValueError):
        scenario_at([], 0)


def test_upcoming_drills_continue_the_rotation_where_it_stands():
    plan = upcoming(Recurrence(day_of_month=15), ROTATION, start_index=2, after=date(2026, 3, 20), count=4)
    assert plan == [
        (date(2026, 4, 15), "pandemic"),
        (date(2026, 5, 15), "cyber_attack"),
        (date(2026, 6, 15), "earthquake"),
        (date(2026, 7, 15), "typhoon"),
    ]


def test_drill_window_is_at_the_local_hour():
    tokyo = ZoneInfo("Asia/Tokyo")
    start, end = drill_window(Recurrence(start_hour=10, duration_minutes=90), date(2026, 4, 15), tokyo)
    assert start.astimezone(UTC) == datetime(2026, 4, 15, 1, 0, tzinfo=UTC)
    assert end - start == timedelta(minutes=90)


@pytest.mark.parametrize(
    ("days_before_start", "remind_days", "due"),
    [(8, 7, False), (7, 7, True), (1, 7, True), (0.01, 7, True), (-0.01, 7, False), (2, 0, False)],
)
def test_reminder_is_due_within_the_period_before_the_drill(days_before_start, remind_days, due):
    start = datetime(2026, 4, 15, 1, 0, tzinfo=UTC)
    now = start - timedelta(days=days_before_start)
    assert reminder_due(start, now, remind_days) is due
