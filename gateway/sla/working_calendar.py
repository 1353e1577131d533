"""Working-time arithmetic on calendars of weekly windows, holidays and time zones (pure)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.sla.country_holidays import country_holidays, transferred_days_off

# Windows are minutes after local midnight, [start, end); 1440 is the end of the day.
Window = tuple[int, int]
Windows = tuple[Window, ...]
Interval = tuple[datetime, datetime]  # two UTC instants, start < end

# A bound on every search: no real calendar has ten years without working time.
_MAX_DAYS = 366 * 10
_MIDNIGHT = 24 * 60
_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class CalendarSpec:
    """A calendar as data: what the policy file says, nothing computed.

    `weekly[0]` (Monday) to `weekly[6]` (Sunday) are the windows of that weekday when it is a
    working day. With a COUNTRY, the `holidays` package decides which days are working
    (weekends, public holidays, transferred days off and transferred working Saturdays, which
    take `hours`); without one, `working_weekdays` do. `days` override single dates
    (an empty tuple is a day off). `extra_days_off` and `extra_working_days` add a decree's
    transfers the package does not know yet (a working day takes its weekday's windows). A
    working day before a holiday of the country ends `pre_holiday_shortening_min` minutes
    early; a day before a transferred day off is not shortened.
    """

    zone: str
    hours: Windows
    weekly: tuple[Windows, ...] = ()
    working_weekdays: frozenset[int] = frozenset(range(5))
    country: str | None = None
    subdivision: str | None = None
    days: tuple[tuple[date, Windows], ...] = ()
    pre_holiday_shortening_min: int = 0
    extra_days_off: frozenset[date] = frozenset()
    extra_working_days: frozenset[date] = frozenset()


class WorkingCalendar:
    """A CalendarSpec with the days it was asked about resolved to UTC intervals (cached)."""

    def __init__(self, spec: CalendarSpec) -> None:
        self.spec = spec
        self.zone = ZoneInfo(spec.zone)
        self._country: Any = (country_holidays(spec.country, spec.subdivision)
                              if spec.country else None)
        self._days = dict(spec.days)
        self._cache: dict[date, tuple[Interval, ...]] = {}
        self._transfers: dict[int, frozenset[date]] = {}

    def __reduce__(self) -> tuple[Callable[[CalendarSpec], WorkingCalendar], tuple[CalendarSpec]]:
        # Worker processes get the spec, and keep one calendar (and its caches) per spec.
        return (calendar_of, (self.spec,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkingCalendar) and other.spec == self.spec

    def __hash__(self) -> int:
        return hash(self.spec)

    @property
    def country_calendar(self) -> Any:
        """The holidays package's calendar of the country, or None."""
        return self._country

    def is_working_day(self, day: date) -> bool:
        return bool(self.local_windows(day))

    def local_windows(self, day: date) -> Windows:
        """The working windows of DAY in local minutes; empty on a day off."""
        if day in self._days:
            return self._days[day]
        if day in self.spec.extra_days_off or not (
                day in self.spec.extra_working_days or self._works_by_rule(day)):
            return ()
        windows = self.spec.hours
        if self.spec.weekly and self.spec.weekly[day.weekday()]:
            windows = self.spec.weekly[day.weekday()]
        cut = self.spec.pre_holiday_shortening_min
        if cut and self._before_holiday(day + timedelta(days=1)):
            *first, (start, end) = windows
            windows = (*first, (start, end - cut)) if end - cut > start else tuple(first)
        return windows

    def _before_holiday(self, following: date) -> bool:
        """Whether FOLLOWING is a holiday proper: not a day off moved there by a decree."""
        spec = self.spec
        if (self._country is None or following not in self._country
                or following in spec.extra_days_off or following in spec.extra_working_days):
            return False
        transfers = self._transfers.get(following.year)
        if transfers is None:
            transfers = self._transfers[following.year] = transferred_days_off(
                self._country, following.year)
        return following not in transfers

    def _works_by_rule(self, day: date) -> bool:
        if self._country is not None:
            return bool(self._country.is_working_day(day))
        return day.weekday() in self.spec.working_weekdays

    def intervals(self, day: date) -> tuple[Interval, ...]:
        """The working time of DAY as UTC intervals, in order."""
        cached = self._cache.get(day)
        if cached is None:
            cached = self._cache[day] = tuple(
                (s, e) for s, e in ((self._instant(day, a), self._instant(day, b))
                                    for a, b in self.local_windows(day)) if s < e)
        return cached

    def _instant(self, day: date, minutes: int) -> datetime:
        # A wall time that does not exist (a DST gap) maps to the instant after the gap.
        if minutes >= _MIDNIGHT:
            day, minutes = day + timedelta(days=1), minutes - _MIDNIGHT
        local = datetime.combine(day, time(minutes // 60, minutes % 60), self.zone)
        return local.astimezone(UTC)


@functools.lru_cache(maxsize=64)
def calendar_of(spec: CalendarSpec) -> WorkingCalendar:
    """One calendar per spec in this process, so its caches are shared."""
    return WorkingCalendar(spec)


def _intervals_from(t: datetime, calendar: WorkingCalendar,
                    until: datetime | None = None) -> Iterator[Interval]:
    """Working intervals (UTC) ending after T, clipped to start no earlier than T, in order.

    Stops after UNTIL's day when given, else raises after ten years without working time.
    """
    instant = t.astimezone(UTC)
    day = instant.astimezone(calendar.zone).date()
    last = until.astimezone(calendar.zone).date() if until is not None else None
    for _ in range(_MAX_DAYS):
        for start, end in calendar.intervals(day):
            if end > instant:
                yield max(start, instant), end
        if last is not None and day >= last:
            return
        day += timedelta(days=1)
    if until is None:
        raise ValueError("calendar has no working time in ten years")


def _as(instant: datetime, like: datetime) -> datetime:
    return instant.astimezone(like.tzinfo)


def next_open(t: datetime, calendar: WorkingCalendar) -> datetime:
    """T itself when it lies in working time, else the instant working time next begins."""
    start, _ = next(_intervals_from(t, calendar))
    return _as(start, t)


def in_working_time(t: datetime, calendar: WorkingCalendar) -> bool:
    """Whether T lies inside a working window (start included, end excluded)."""
    return next_open(t, calendar) == t


def is_working_time(instant: datetime, calendar: WorkingCalendar) -> bool:
    """in_working_time for instants from the database, where a naive one is UTC."""
    return in_working_time(instant if instant.tzinfo else instant.replace(tzinfo=UTC),
                           calendar)


def add_working(t: datetime, duration: timedelta, calendar: WorkingCalendar) -> datetime:
    """The instant when DURATION of working time has passed after T (T for zero)."""
    if duration < timedelta(0):
        raise ValueError("duration must not be negative")
    if not duration:
        return t
    # The loop of _intervals_from written out: this runs several times per registration.
    remaining = duration
    instant = t.astimezone(UTC)
    day = instant.astimezone(calendar.zone).date()
    for _ in range(_MAX_DAYS):
        for start, end in calendar.intervals(day):
            if end <= instant:
                continue
            start = max(start, instant)
            if remaining <= end - start:
                return _as(start + remaining, t)
            remaining -= end - start
        day += _ONE_DAY
    raise ValueError("calendar has no working time in ten years")


def working_between(a: datetime, b: datetime, calendar: WorkingCalendar) -> timedelta:
    """Working time from A to B (negative when B is before A)."""
    if b < a:
        return -working_between(b, a, calendar)
    end_instant = b.astimezone(UTC)
    total = timedelta(0)
    for start, end in _intervals_from(a, calendar, until=b):
        if start >= end_instant:
            break
        total += min(end, end_instant) - start
    return total


def add(t: datetime, duration: timedelta, calendar: WorkingCalendar | None) -> datetime:
    """Clock time without a calendar, working time with one."""
    if calendar is None:
        return _as(t.astimezone(UTC) + duration, t)
    return add_working(t, duration, calendar)


def between(a: datetime, b: datetime, calendar: WorkingCalendar | None) -> timedelta:
    """Clock time without a calendar, working time with one."""
    if calendar is None:
        return b.astimezone(UTC) - a.astimezone(UTC)
    return working_between(a, b, calendar)


# The seed's calendar: 10:00-19:00 Moscow time on working days of the Russian production
# calendar.
SEED_CALENDAR = CalendarSpec(zone="Europe/Moscow", hours=((600, 1140),), country="RU")


def russian_calendar() -> WorkingCalendar:
    """10:00-19:00 Moscow time on working days of the Russian production calendar."""
    return WorkingCalendar(SEED_CALENDAR)
