"""Whether the working calendars know the coming year's decreed transfers of days off."""

from __future__ import annotations

from datetime import date

from gateway.sla.country_holidays import (
    practises_transfers,
    transferred_days_off,
    weekend_working_days,
)
from gateway.sla.policy import Policy
from gateway.sla.working_calendar import WorkingCalendar

# From this month on, next year's decree is due (Russia's usually appears in the autumn).
WARN_FROM_MONTH = 10


def calendars_of(policy: Policy) -> list[WorkingCalendar]:
    """Every distinct working calendar the policy counts time on."""
    found: dict[object, WorkingCalendar] = {}
    for tier in policy.tiers.values():
        for calendar in (tier.calendar, tier.intake):
            if calendar is not None:
                found.setdefault(calendar.spec, calendar)
    for targets in policy.targets.values():
        for calendar in (targets.reaction.calendar, targets.resolution.calendar,
                         targets.service):
            if calendar is not None:
                found.setdefault(calendar.spec, calendar)
    return list(found.values())


def missing_transfers(policy: Policy, today: date) -> list[str]:
    """From October on: the calendars whose country moves days off by decree but that know
    no transfer for next year, neither from the holidays package nor from the policy file."""
    if today.month < WARN_FROM_MONTH:
        return []
    year = today.year + 1
    problems = []
    for calendar in calendars_of(policy):
        spec = calendar.spec
        country = calendar.country_calendar
        if country is None or not practises_transfers(country):
            continue
        extras = spec.extra_days_off | spec.extra_working_days
        if (transferred_days_off(country, year) or weekend_working_days(country, year)
                or any(day.year == year for day in extras)):
            continue
        problems.append(
            f"calendar of {spec.country} ({spec.zone}) knows no transfers of days off for "
            f"{year}: update the holidays package, or add the decree's days to the policy "
            "file's extra_days_off / extra_working_days")
    return problems
