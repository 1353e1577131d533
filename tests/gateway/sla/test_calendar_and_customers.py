"""Working-time arithmetic on the Russian production calendar, and customer matching."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.config.customers import load_customers
from gateway.sla.deadlines import deadlines
from gateway.sla.working_calendar import add_working, russian_calendar
from rules.config_errors import ConfigError

MSK = ZoneInfo("Europe/Moscow")
CALENDAR = russian_calendar()


@pytest.mark.parametrize(("start", "hours", "expected"), [
    # Within the day.
    (datetime(2026, 11, 25, 11, 0, tzinfo=MSK), 1, datetime(2026, 11, 25, 12, 0, tzinfo=MSK)),
    # Evening: the rest carries to the next morning.
    (datetime(2026, 11, 25, 18, 30, tzinfo=MSK), 1, datetime(2026, 11, 26, 10, 30, tzinfo=MSK)),
    # Night: starts counting at 10:00.
    (datetime(2026, 11, 26, 3, 0, tzinfo=MSK), 1, datetime(2026, 11, 26, 11, 0, tzinfo=MSK)),
    # Friday evening -> Monday.
    (datetime(2026, 11, 27, 18, 30, tzinfo=MSK), 1, datetime(2026, 11, 30, 10, 30, tzinfo=MSK)),
    # New Year holidays: 31 Dec 2026 is a transferred day off; work resumes on 11 Jan 2027.
    (datetime(2026, 12, 30, 18, 0, tzinfo=MSK), 2, datetime(2027, 1, 11, 11, 0, tzinfo=MSK)),
    # 1 Nov 2025 was a transferred working Saturday.
    (datetime(2025, 10, 31, 18, 0, tzinfo=MSK), 2, datetime(2025, 11, 1, 11, 0, tzinfo=MSK)),
    # 16 working hours span two full days.
    (datetime(2026, 11, 25, 10, 0, tzinfo=MSK), 16, datetime(2026, 11, 26, 17, 0, tzinfo=MSK)),
])
def test_add_working(start: datetime, hours: float, expected: datetime) -> None:
    """Working time counts only 10:00-19:00 Moscow time on working days of the calendar."""
    assert add_working(start, timedelta(hours=hours), CALENDAR) == expected


def test_deadlines_by_tier() -> None:
    """8/5 counts in working hours, 24/7 on the clock, Premium reacts in 15 minutes."""
    friday_evening = datetime(2026, 11, 27, 18, 30, tzinfo=MSK)
    eight_five = deadlines(friday_evening, "8/5", "critical", "incident")
    assert eight_five.reaction_due == datetime(2026, 11, 30, 10, 30, tzinfo=MSK)
    assert eight_five.resolution_due == datetime(2026, 11, 30, 14, 30, tzinfo=MSK)
    round_clock = deadlines(friday_evening, "24/7", "critical", "incident")
    assert round_clock.resolution_due == friday_evening + timedelta(hours=5)
    premium = deadlines(friday_evening, "premium", "high", "incident")
    assert premium.reaction_due == friday_evening + timedelta(minutes=15)
    consultation = deadlines(friday_evening, "premium", "high", "consultation")
    # Consultations run on the working calendar: 30 minutes left on Friday, the rest on Monday.
    assert consultation.reaction_due == datetime(2026, 11, 27, 18, 45, tzinfo=MSK)
    assert consultation.resolution_due == datetime(2026, 11, 30, 15, 30, tzinfo=MSK)


def test_customers_match_address_then_domain(tmp_path: Path) -> None:
    """An exact address wins over a domain; subdomains match their parent domain."""
    path = tmp_path / "customers.toml"
    path.write_text('[[customer]]\nid = "acme"\ntier = "8/5"\ndomains = ["acme.example"]\n\n'
                    '[[customer]]\nid = "vip"\ntier = "Premium"\nemails = ["Boss@Acme.example"]\n',
                    encoding="utf-8")
    directory = load_customers(path)
    assert directory.match_email("boss@acme.example").id == "vip"  # type: ignore[union-attr]
    assert directory.match_email("dev@mail.acme.example").id == "acme"  # type: ignore[union-attr]
    assert directory.match_email("dev@acme.example.org") is None
    assert directory.get("vip").tier == "premium"  # type: ignore[union-attr]


def test_bad_customers_file_names_line_and_key(tmp_path: Path) -> None:
    """A wrong tier or a duplicate id is reported with file, line and key."""
    path = tmp_path / "customers.toml"
    path.write_text('[[customer]]\nid = "a"\n\n[[customer]]\nid = "b"\ntier = "gold"\n',
                    encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_customers(path)
    assert str(error.value) == (
        f"{path}:6: customer[1].tier: unknown tier 'gold'; expected one of 8/5, 24/7, premium")
    path.write_text('[[customer]]\nid = "a"\n\n[[customer]]\nid = "a"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_customers(path)
    assert str(error.value) == f"{path}:5: customer[1].id: duplicate id 'a'"
