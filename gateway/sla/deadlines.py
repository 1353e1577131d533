"""Registration time, reaction and resolution deadlines, and escalation instants (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.sla.policy import Policy, Target, seed_policy
from gateway.sla.working_calendar import add, in_working_time, next_open, russian_calendar

# The seed's working calendar (10:00-19:00 Moscow time, Russian production calendar), for
# callers that need "working hours" without a ticket's tier.
DEFAULT_CALENDAR = russian_calendar()


@dataclass(frozen=True)
class Deadlines:
    reaction_due: datetime
    resolution_due: datetime


@dataclass(frozen=True)
class Plan:
    """When a request received at some instant is registered and due."""

    received_at: datetime
    registered_at: datetime
    reaction_due: datetime
    resolution_due: datetime

    @property
    def pending(self) -> bool:
        """Whether it waits for the intake window (registered later than received)."""
        return self.registered_at != self.received_at


def due(start: datetime, target: Target) -> datetime:
    """START plus the target's duration, on the clock or in its working time."""
    return add(start, target.duration, target.calendar)


def deadlines(registered_at: datetime, tier: str, priority: str, request_type: str,
              policy: Policy | None = None) -> Deadlines:
    """When the first reaction and the resolution are due for a ticket registered then."""
    targets = (policy or seed_policy()).targets_for(tier, request_type, priority)
    return Deadlines(due(registered_at, targets.reaction), due(registered_at, targets.resolution))


def intake_open(at: datetime, tier: str, policy: Policy | None = None) -> bool:
    """Whether the tier registers requests at AT (its intake window is open)."""
    intake = (policy or seed_policy()).tier(tier).intake
    return intake is None or in_working_time(at, intake)


def registration_time(received_at: datetime, tier: str, policy: Policy | None = None
                      ) -> datetime:
    """RECEIVED_AT when the tier's intake is open then, else when it next opens."""
    intake = (policy or seed_policy()).tier(tier).intake
    return received_at if intake is None else next_open(received_at, intake)


def plan(received_at: datetime, tier: str, priority: str, request_type: str,
         policy: Policy | None = None) -> Plan:
    """Registration time and deadlines of a request received at RECEIVED_AT."""
    registered_at = registration_time(received_at, tier, policy)
    due_at = deadlines(registered_at, tier, priority, request_type, policy)
    return Plan(received_at, registered_at, due_at.reaction_due, due_at.resolution_due)


def share_instant(registered_at: datetime, target: Target, pct: float) -> datetime:
    """When PCT percent of TARGET has passed since REGISTERED_AT, in the target's unit."""
    return add(registered_at, target.duration * (pct / 100), target.calendar)


def service_working(at: datetime, tier: str, priority: str, request_type: str,
                    policy: Policy | None = None) -> bool:
    """Whether the service works for such a ticket at AT (always, or in working time)."""
    service = (policy or seed_policy()).targets_for(tier, request_type, priority).service
    return service is None or in_working_time(at, service)


@dataclass(frozen=True)
class Schedule:
    """Everything the SLA clock stores on a ticket registered at some instant."""

    reaction_due: datetime
    resolution_due: datetime
    ack_at_risk: datetime
    escalation_due: datetime | None

    def columns(self) -> dict[str, datetime | None]:
        return {"reaction_due": self.reaction_due, "resolution_due": self.resolution_due,
                "ack_at_risk": self.ack_at_risk, "escalation_due": self.escalation_due}


def escalation_instant(registered_at: datetime, tier: str, priority: str, request_type: str,
                       level: int, policy: Policy | None = None) -> datetime | None:
    """When escalation threshold number LEVEL (0-based) is reached; None past the last one."""
    policy = policy or seed_policy()
    thresholds = policy.escalation.thresholds_pct
    if level >= len(thresholds):
        return None
    targets = policy.targets_for(tier, request_type, priority)
    return share_instant(registered_at, targets.resolution, thresholds[level])


def schedule(registered_at: datetime, tier: str, priority: str, request_type: str,
             policy: Policy | None = None) -> Schedule:
    """Deadlines, the acknowledgement's at-risk instant and the first escalation instant."""
    policy = policy or seed_policy()
    targets = policy.targets_for(tier, request_type, priority)
    return Schedule(
        due(registered_at, targets.reaction), due(registered_at, targets.resolution),
        share_instant(registered_at, targets.reaction, policy.ack_at_risk_pct),
        escalation_instant(registered_at, tier, priority, request_type, 0, policy))
