"""Working-time arithmetic on a calendar of working days and daily hours, time-zone correct."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays


@dataclass(frozen=True)
class WorkingCalendar:
    """Working days (a predicate) with one working interval per day in a time zone."""

    zone: ZoneInfo
    opens: time
    closes: time
    is_working_day: Callable[[date], bool]

    def interval(self, day: date) -> tuple[datetime, datetime] | None:
        """The working interval of DAY as aware instants, or None on a day off."""
        if not self.is_working_day(day):
            return None
        return (datetime.combine(day, self.opens, self.zone),
                datetime.combine(day, self.closes, self.zone))


def russian_calendar() -> WorkingCalendar:
    """10:00-19:00 Moscow time on working days of the Russian production calendar.

    `holidays.RU` knows public holidays, transferred days off and transferred working
    Saturdays (`is_working_day` is true on those).
    """
    production = holidays.country_holidays("RU")
    return WorkingCalendar(ZoneInfo("Europe/Moscow"), time(10), time(19), production.is_working_day)


def is_working_time(instant: datetime, calendar: WorkingCalendar) -> bool:
    """Whether INSTANT falls inside a working interval of CALENDAR."""
    # The database may hand back naive datetimes; ours are always UTC.
    aware = instant if instant.tzinfo else instant.replace(tzinfo=UTC)
    local = aware.astimezone(calendar.zone)
    interval = calendar.interval(local.date())
    return interval is not None and interval[0] <= local < interval[1]


def add_working(start: datetime, duration: timedelta, calendar: WorkingCalendar) -> datetime:
    """The instant when DURATION of working time has passed after START."""
    remaining = duration
    cursor = start.astimezone(calendar.zone)
    # A bound on the loop: no real calendar has a year without working days.
    for _ in range(366 * 10):
        interval = calendar.interval(cursor.date())
        if interval is not None:
            opens, closes = interval
            cursor = max(cursor, opens)
            if cursor < closes:
                available = closes.astimezone(UTC) - cursor.astimezone(UTC)
                if remaining <= available:
                    return (cursor.astimezone(UTC) + remaining).astimezone(start.tzinfo)
                remaining -= available
        next_day = cursor.date() + timedelta(days=1)
        cursor = datetime.combine(next_day, time(0), calendar.zone)
    raise ValueError("calendar has no working time in ten years")
