"""When the next scheduled drill is and which scenario it plays. Pure: dates and lists in, dates and names out."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Recurrence:
    every_months: int = 1
    day_of_month: int = 15
    start_hour: int = 10
    duration_minutes: int = 60


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def drill_day(year: int, month: int, day_of_month: int) -> date:
    """``day_of_month`` in that month, or its last day when the month is shorter (31 → 30 April, 28/29 Feb)."""
    return date(year, month, min(day_of_month, calendar.monthrange(year, month)[1]))


def next_drill_date(recurrence: Recurrence, *, after: date, last: date | None = None) -> date:
    """The first drill day strictly after ``after``.

    Without an earlier scheduled drill, the next matching day counts (monthly or not). With one (``last``),
    drills keep its rhythm: ``every_months`` after it, skipping whole periods that were missed.
    """
    step = max(1, recurrence.every_months)
    if last is None:
        year, month = after.year, after.month
        candidate = drill_day(year, month, recurrence.day_of_month)
        while candidate <= after:
            year, month = _add_months(year, month, 1)
            candidate = drill_day(year, month, recurrence.day_of_month)
        return candidate
    year, month = _add_months(last.year, last.month, step)
    candidate = drill_day(year, month, recurrence.day_of_month)
    while candidate <= after:
        year, month = _add_months(year, month, step)
        candidate = drill_day(year, month, recurrence.day_of_month)
    return candidate


def drill_window(recurrence: Recurrence, day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Planned start and end of a drill on ``day``, at the organization's local hour, as aware datetimes."""
    start = datetime.combine(day, time(hour=min(max(recurrence.start_hour, 0), 23)), tzinfo=tz)
    return start, start + timedelta(minutes=max(1, recurrence.duration_minutes))


def scenario_at(rotation: Sequence[str], index: int) -> str:
    """The scenario of the ``index``-th scheduled drill: the rotation repeats (earthquake → typhoon → … → again)."""
    if not rotation:
        raise ValueError("the scenario rotation is empty")
    return rotation[index % len(rotation)]


def upcoming(
    recurrence: Recurrence, rotation: Sequence[str], *, start_index: int, after: date, count: int
) -> list[tuple[date, str]]:
    """The next ``count`` drill days with their scenarios (for the schedule screen)."""
    out: list[tuple[date, str]] = []
    last: date | None = None
    day = after
    for n in range(count):
        day = next_drill_date(recurrence, after=day, last=last)
        out.append((day, scenario_at(rotation, start_index + n)))
        last = day
    return out


def reminder_due(planned_start: datetime, now: datetime, days_before: int) -> bool:
    """Whether the reminder for a drill starting at ``planned_start`` should go out at ``now``."""
    return planned_start - timedelta(days=max(0, days_before)) <= now < planned_start
