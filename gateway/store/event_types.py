"""The names of the event feed's events (the config validates subscriptions against them)."""

from __future__ import annotations

from typing import Final

EVENT_TYPES: Final = (
    "ticket.registered", "ticket.message_added", "ticket.priority_changed",
    "ticket.status_changed", "sla.acknowledged", "sla.at_risk", "sla.breached",
    "input.quarantined", "call.missed")
