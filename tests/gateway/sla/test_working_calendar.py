"""Calendar arithmetic: tables across evenings, weekends, holidays and DST, and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sla.policy import CalendarModel
from gateway.sla.working_calendar import (
    WorkingCalendar,
    add_working,
    in_working_time,
    is_working_time,
    next_open,
    russian_calendar,
    working_between,
)

MSK = ZoneInfo("Europe/Moscow")
NYC = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
MOSCOW = russian_calendar()
# New York, 09:00-17:00 with a lunch hour, US federal holidays: clocks change in March/November.
NEW_YORK = WorkingCalendar(CalendarModel(
    time_zone="America/New_York", country="US", hours=["09:00-12:00", "13:00-17:00"]).spec())
# Moscow hours with the day before a public holiday an hour shorter, and two site dates.
SHORTENED = WorkingCalendar(CalendarModel(
    time_zone="Europe/Moscow", country="RU", pre_holiday_shortening_min=60,
    days={"2026-12-29": [], "2026-12-26": ["12:00-15:00"]}).spec())
# Round the clock every day in Berlin: a day has 23 or 25 hours when the clocks change.
BERLIN_ALWAYS = WorkingCalendar(CalendarModel(
    time_zone="Europe/Berlin", hours=["00:00-24:00"],
    working_days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"]).spec())


def msk(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=MSK)  # type: ignore[misc]


H = timedelta(hours=1)


@pytest.mark.parametrize(("calendar", "start", "duration", "expected"), [
    # Within the day, and exactly to closing time.
    (MOSCOW, msk(2026, 11, 25, 11), H, msk(2026, 11, 25, 12)),
    (MOSCOW, msk(2026, 11, 25, 18), H, msk(2026, 11, 25, 19)),
    # Evening: the rest carries to the next morning.
    (MOSCOW, msk(2026, 11, 25, 18, 30), H, msk(2026, 11, 26, 10, 30)),
    # Night: counting starts at 10:00.
    (MOSCOW, msk(2026, 11, 26, 3), H, msk(2026, 11, 26, 11)),
    # Friday evening -> Monday; Saturday -> Monday.
    (MOSCOW, msk(2026, 11, 27, 18, 30), H, msk(2026, 11, 30, 10, 30)),
    (MOSCOW, msk(2026, 11, 28, 12), 5 * H, msk(2026, 11, 30, 15)),
    # The day before Unity Day works; Unity Day (4 Nov) does not.
    (MOSCOW, msk(2026, 11, 3, 18), 2 * H, msk(2026, 11, 5, 11)),
    # New Year holidays: 31 Dec 2026 is a transferred day off; work resumes on 11 Jan 2027.
    (MOSCOW, msk(2026, 12, 30, 18), 2 * H, msk(2027, 1, 11, 11)),
    # 1 Nov 2025 was a transferred working Saturday (3 Nov the day off in exchange).
    (MOSCOW, msk(2025, 10, 31, 18), 2 * H, msk(2025, 11, 1, 11)),
    (MOSCOW, msk(2025, 11, 1, 18), 2 * H, msk(2025, 11, 5, 11)),
    # 16 and 40 working hours.
    (MOSCOW, msk(2026, 11, 25, 10), 16 * H, msk(2026, 11, 26, 17)),
    (MOSCOW, msk(2026, 11, 25, 10), 40 * H, msk(2026, 12, 1, 14)),
    # Shortened day: 3 Nov 2026 ends at 18:00 before Unity Day.
    (SHORTENED, msk(2026, 11, 3, 17), 2 * H, msk(2026, 11, 5, 11)),
    # Site-specific dates: a Saturday worked 12:00-15:00, a Tuesday off.
    (SHORTENED, msk(2026, 12, 25, 18), 2 * H, msk(2026, 12, 26, 13)),
    (SHORTENED, msk(2026, 12, 28, 18), 2 * H, msk(2026, 12, 30, 11)),
    # Lunch break in New York.
    (NEW_YORK, datetime(2026, 11, 25, 11, 30, tzinfo=NYC), H,
     datetime(2026, 11, 25, 13, 30, tzinfo=NYC)),
    # DST: Friday 16:00 EST + 2 h -> Monday 10:00 EDT (clocks went forward on Sunday 8 March).
    (NEW_YORK, datetime(2026, 3, 6, 16, tzinfo=NYC), 2 * H,
     datetime(2026, 3, 9, 10, tzinfo=NYC)),
    # DST back: Friday 16:00 EDT + 2 h -> Monday 10:00 EST (1 November); US holiday 26 Nov.
    (NEW_YORK, datetime(2026, 10, 30, 16, tzinfo=NYC), 2 * H,
     datetime(2026, 11, 2, 10, tzinfo=NYC)),
    (NEW_YORK, datetime(2026, 11, 25, 16, tzinfo=NYC), 2 * H,
     datetime(2026, 11, 27, 10, tzinfo=NYC)),
    # A round-the-clock calendar counts the real hours across the change.
    (BERLIN_ALWAYS, datetime(2026, 3, 29, 0, tzinfo=BERLIN), 3 * H,
     datetime(2026, 3, 29, 4, tzinfo=BERLIN)),
])
def test_add_working(calendar: WorkingCalendar, start: datetime, duration: timedelta,
                     expected: datetime) -> None:
    """Working time counts only the calendar's windows on its working days, in its zone."""
    assert add_working(start, duration, calendar) == expected


@pytest.mark.parametrize(("calendar", "start", "expected"), [
    (MOSCOW, msk(2026, 11, 25, 12), msk(2026, 11, 25, 12)),
    (MOSCOW, msk(2026, 11, 25, 10), msk(2026, 11, 25, 10)),
    (MOSCOW, msk(2026, 11, 25, 19), msk(2026, 11, 26, 10)),
    (MOSCOW, msk(2026, 11, 27, 20), msk(2026, 11, 30, 10)),
    (MOSCOW, msk(2026, 12, 31, 9), msk(2027, 1, 11, 10)),
    (MOSCOW, msk(2025, 11, 1, 9), msk(2025, 11, 1, 10)),
    (NEW_YORK, datetime(2026, 11, 25, 12, 15, tzinfo=NYC), datetime(2026, 11, 25, 13, tzinfo=NYC)),
])
def test_next_open(calendar: WorkingCalendar, start: datetime, expected: datetime) -> None:
    """next_open is the instant itself inside working time, else the next window's start."""
    assert next_open(start, calendar) == expected


@pytest.mark.parametrize(("calendar", "a", "b", "expected"), [
    (MOSCOW, msk(2026, 11, 27, 18), msk(2026, 11, 30, 11), 2 * H),
    (MOSCOW, msk(2026, 12, 30, 0), msk(2027, 1, 12, 0), 18 * H),
    (MOSCOW, msk(2026, 11, 30, 11), msk(2026, 11, 27, 18), -2 * H),
    (NEW_YORK, datetime(2026, 11, 25, 8, tzinfo=NYC), datetime(2026, 11, 25, 18, tzinfo=NYC),
     7 * H),
    (BERLIN_ALWAYS, datetime(2026, 3, 29, tzinfo=BERLIN), datetime(2026, 3, 30, tzinfo=BERLIN),
     23 * H),
    (BERLIN_ALWAYS, datetime(2026, 10, 25, tzinfo=BERLIN), datetime(2026, 10, 26, tzinfo=BERLIN),
     25 * H),
])
def test_working_between(calendar: WorkingCalendar, a: datetime, b: datetime,
                         expected: timedelta) -> None:
    """working_between counts the working time between two instants, signed."""
    assert working_between(a, b, calendar) == expected


CALENDARS = st.sampled_from([MOSCOW, NEW_YORK, SHORTENED])
INSTANTS = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 10, 1),
                        timezones=st.just(UTC)).map(lambda t: t.replace(microsecond=0))
DURATIONS = st.integers(min_value=0, max_value=120 * 60).map(lambda m: timedelta(minutes=m))
PROPERTIES = settings(max_examples=150, deadline=None)


@PROPERTIES
@given(CALENDARS, INSTANTS, INSTANTS, DURATIONS, DURATIONS)
def test_add_is_monotone(calendar: WorkingCalendar, t1: datetime, t2: datetime,
                         d1: timedelta, d2: timedelta) -> None:
    """A later start or a longer duration never gives an earlier result."""
    t1, t2 = sorted((t1, t2))
    d1, d2 = sorted((d1, d2))
    assert add_working(t1, d1, calendar) <= add_working(t2, d1, calendar)
    assert add_working(t1, d1, calendar) <= add_working(t1, d2, calendar)


@PROPERTIES
@given(CALENDARS, INSTANTS, DURATIONS, DURATIONS)
def test_add_composes(calendar: WorkingCalendar, t: datetime, a: timedelta,
                      b: timedelta) -> None:
    """add(add(t, a), b) == add(t, a + b)."""
    assert add_working(add_working(t, a, calendar), b, calendar) == add_working(t, a + b,
                                                                                 calendar)


@PROPERTIES
@given(CALENDARS, INSTANTS, DURATIONS)
def test_between_inverts_add(calendar: WorkingCalendar, t: datetime, d: timedelta) -> None:
    """working_between(t, add(t, d)) == d."""
    assert working_between(t, add_working(t, d, calendar), calendar) == d


@PROPERTIES
@given(CALENDARS, INSTANTS, DURATIONS.filter(bool))
def test_result_lies_in_working_time(calendar: WorkingCalendar, t: datetime,
                                     d: timedelta) -> None:
    """A working-time target ends inside a window (after its start, at most at its end)."""
    result = add_working(t, d, calendar)
    assert in_working_time(result - timedelta(seconds=1), calendar)
    assert working_between(result - timedelta(seconds=1), result, calendar) == timedelta(
        seconds=1)
    assert next_open(t, calendar) <= result


@PROPERTIES
@given(CALENDARS, INSTANTS)
def test_next_open_is_open(calendar: WorkingCalendar, t: datetime) -> None:
    """next_open is in working time, and no working time lies between T and it."""
    opened = next_open(t, calendar)
    assert in_working_time(opened, calendar)
    assert working_between(t, opened, calendar) == timedelta(0)


def test_is_working_time_takes_naive_instants_as_utc() -> None:
    """Instants read back from the database may be naive; they are UTC."""
    assert is_working_time(datetime(2026, 11, 25, 8, 0), MOSCOW)
    assert not is_working_time(datetime(2026, 11, 25, 16, 0), MOSCOW)
    assert is_working_time(msk(2026, 11, 25, 18, 59), MOSCOW)
