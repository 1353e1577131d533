"""Which lifecycle event a tracker's status brings to our ticket, and what RT's statuses mean."""

from __future__ import annotations

import pytest

from gateway.trackers.request_tracker import meaning_of
from gateway.trackers.status_sync import event_for


@pytest.mark.parametrize(("meaning", "ours", "expected"), [
    ("resolved", "registered", "resolved"),
    ("resolved", "resolved", None),            # already so
    ("resolved", "closed", None),              # closed stays closed
    ("rejected", "registered", "closed"),
    ("rejected", "resolved", "closed"),
    ("active", "resolved", "reopened"),
    ("active", "closed", "reopened"),
    ("active", "registered", None),
    ("resolved", "pending_registration", None),  # waits for the intake window (see apply_change)
])
def test_event_for(meaning: str, ours: str, expected: str | None) -> None:
    """A table of (the tracker's meaning, our status) -> our lifecycle event."""
    assert event_for(meaning, ours) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("status", "meaning"), [
    ("new", "active"), ("open", "active"), ("stalled", "active"), ("resolved", "resolved"),
    ("rejected", "rejected"), ("deleted", "rejected"), ("Resolved", "resolved"),
])
def test_rt_status_meanings(status: str, meaning: str) -> None:
    """RT's default lifecycle: resolved, rejected (and deleted) end a ticket; the rest not."""
    assert meaning_of(status) == meaning
