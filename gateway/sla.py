"""Reaction and resolution deadlines for a tier, priority and request type (the seed's table)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.workcal import WorkingCalendar, add_working, russian_calendar


@dataclass(frozen=True)
class Target:
    """A duration counted either on the clock or in working time."""

    duration: timedelta
    working: bool


def _h(hours: float, working: bool) -> Target:
    return Target(timedelta(hours=hours), working)


# The seed's comparison table. A tier that works only in working hours (8/5) counts every
# target in working time; 24/7 and Premium count on the clock, except low priority.
REACTION = {"8/5": _h(1, True), "24/7": _h(1, False), "premium": _h(0.25, False)}
RESOLUTION = {
    "8/5": {"critical": _h(5, True), "high": _h(8, True), "medium": _h(16, True),
            "low": _h(40, True)},
    "24/7": {"critical": _h(5, False), "high": _h(8, False), "medium": _h(16, False),
             "low": _h(40, True)},
    "premium": {"critical": _h(4, False), "high": _h(6, False), "medium": _h(16, False),
                "low": _h(40, True)},
}
# Consultations run on the working calendar for every tier.
WORKING_ONLY_TYPES = {"consultation"}


@dataclass(frozen=True)
class Deadlines:
    reaction_due: datetime
    resolution_due: datetime


def due(start: datetime, target: Target, calendar: WorkingCalendar) -> datetime:
    if target.working:
        return add_working(start, target.duration, calendar)
    return start + target.duration


def deadlines(registered_at: datetime, tier: str, priority: str, request_type: str,
              calendar: WorkingCalendar | None = None) -> Deadlines:
    """When the first reaction and the resolution are due for a ticket registered at that time."""
    calendar = calendar or DEFAULT_CALENDAR
    reaction = REACTION[tier]
    resolution = RESOLUTION[tier][priority]
    if request_type in WORKING_ONLY_TYPES:
        reaction = Target(reaction.duration, True)
        resolution = Target(resolution.duration, True)
    return Deadlines(due(registered_at, reaction, calendar),
                     due(registered_at, resolution, calendar))


DEFAULT_CALENDAR = russian_calendar()
