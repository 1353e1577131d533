"""The working calendar carries the current decrees, the policy's additions, and says when
the coming year's transfers are unknown."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import httpx
from structlog.testing import capture_logs

from gateway.clock import ManualClock
from gateway.config.settings import LoadedSettings, parse_settings
from gateway.daemon.service import Gateway
from gateway.sla.calendar_check import missing_transfers
from gateway.sla.deadlines import deadlines
from gateway.sla.policy import DEFAULT_POLICY, parse_policy, seed_policy
from gateway.sla.working_calendar import SEED_CALENDAR, WorkingCalendar, add_working
from tests.conftest import LoopThread, RunningGateway, config_text, free_port

MSK = timezone(timedelta(hours=3))
SEED = DEFAULT_POLICY.read_text(encoding="utf-8")


def with_calendar(lines: str) -> str:
    return SEED.replace('hours = ["10:00-19:00"]', f'hours = ["10:00-19:00"]\n{lines}', 1)


def test_8_5_critical_on_30_december_2026_is_due_after_the_new_year_break() -> None:
    """31 December 2026 is a day off by decree; 1-10 January 2027 too."""
    due = deadlines(datetime(2026, 12, 30, 18, 30, tzinfo=MSK), "8/5", "critical", "incident")
    assert due.reaction_due == datetime(2027, 1, 11, 10, 30, tzinfo=MSK)


def test_the_2027_decree_is_known() -> None:
    """2027: 20 February is a working Saturday, 22 February, 5 November, 31 December off."""
    calendar = WorkingCalendar(SEED_CALENDAR)
    assert calendar.is_working_day(date(2027, 2, 20))
    for day in (date(2027, 2, 22), date(2027, 11, 5), date(2027, 12, 31)):
        assert not calendar.is_working_day(day)


def test_pre_holiday_shortening_skips_days_before_transferred_days_off() -> None:
    """3 November 2026 (before Unity Day) ends an hour early; 30 December 2026 (before the
    transferred 31 December) and 21 February 2027 do not."""
    calendar = WorkingCalendar(SEED_CALENDAR.__class__(
        zone="Europe/Moscow", hours=((600, 1140),), country="RU", pre_holiday_shortening_min=60))
    assert calendar.local_windows(date(2026, 11, 3)) == ((600, 1080),)
    assert calendar.local_windows(date(2026, 12, 30)) == ((600, 1140),)
    assert calendar.local_windows(date(2027, 12, 30)) == ((600, 1140),)
    start = datetime(2026, 12, 30, 18, 30, tzinfo=MSK)
    assert add_working(start, timedelta(hours=1), calendar) == datetime(
        2027, 1, 11, 10, 30, tzinfo=MSK)


def test_policy_adds_days_off_and_working_days() -> None:
    """extra_days_off / extra_working_days carry a decree the package does not know yet."""
    policy = parse_policy(with_calendar(
        'extra_days_off = ["2026-11-27"]\nextra_working_days = ["2026-11-28"]'), "p.toml")
    friday = datetime(2026, 11, 26, 18, 30, tzinfo=MSK)  # Thursday 18:30
    due = deadlines(friday, "8/5", "critical", "incident", policy)
    assert due.reaction_due == datetime(2026, 11, 28, 10, 30, tzinfo=MSK)  # the Saturday
    assert deadlines(friday, "8/5", "critical", "incident").reaction_due == datetime(
        2026, 11, 27, 10, 30, tzinfo=MSK)


def test_missing_transfers_for_the_coming_year_warn_from_october() -> None:
    policy = seed_policy()
    assert missing_transfers(policy, date(2026, 11, 25)) == []  # 2027's decree is known
    assert missing_transfers(policy, date(2040, 9, 30)) == []  # too early to expect one
    [problem] = missing_transfers(policy, date(2040, 10, 1))
    assert "2041" in problem and "extra_days_off" in problem
    added = parse_policy(with_calendar('extra_days_off = ["2041-05-02"]'), "p.toml")
    assert missing_transfers(added, date(2040, 10, 1)) == []


def test_readyz_and_start_warn_of_a_calendar_without_next_years_transfers(
        make_gateway) -> None:
    """Still ready (deadlines are computed), but /readyz names the problem."""
    with capture_logs() as logs:
        running: RunningGateway = make_gateway()
    assert not any(e["event"] == "calendar.no_transfers" for e in logs)
    url = f"{running.http_url}/readyz"
    assert httpx.get(url, timeout=30).json() == {"status": "ready"}
    running.clock.set(datetime(2040, 10, 2, 9, 0, tzinfo=UTC))
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200
    [warning] = response.json()["warnings"]
    assert "2041" in warning


def test_start_logs_a_calendar_without_next_years_transfers(database_url: str,
                                                           tmp_path: Path) -> None:
    text = config_text(database_url, tmp_path / "state", free_port())
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    loop = LoopThread()
    try:
        async def construct() -> Gateway:
            return Gateway(LoadedSettings(parse_settings(text, path), path),
                           ManualClock(datetime(2040, 10, 2, 9, 0, tzinfo=UTC)))

        gateway = loop.run(construct())
        with capture_logs() as logs:
            loop.run(gateway.start(workers=False))
        loop.run(gateway.stop(drain_deadline_s=5))
    finally:
        loop.close()
    [event] = [e for e in logs if e["event"] == "calendar.no_transfers"]
    assert "2041" in event["problem"] and event["log_level"] == "warning"
