"""What a ticket tracker must do for the gateway: find, create, add messages, update, report.

Request Tracker is one module implementing `Tracker`; another tracker (Jira Service
Management, Redmine, a Russian service desk) is another module with the same methods,
chosen by `[[trackers]] kind`. Every method is idempotent from the caller's side: the
connector asks `find` before `create` and `has_message` before `add_message` when an earlier
attempt may have done the work already.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

# Our side of a tracker status, as the connector turns it into lifecycle events.
StatusMeaning = Literal["active", "resolved", "rejected"]


class TrackerUnavailable(Exception):
    """The tracker did not answer, or answered that it cannot now (retried with backoff)."""


class TrackerRefused(Exception):
    """The tracker refused the request: credentials, permissions or the data (retried too,
    since an operator may fix it; shown on /readyz and /metrics meanwhile)."""


@dataclass(frozen=True)
class FileOut:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class TicketOut:
    """Our ticket as a tracker receives it."""

    number: str
    subject: str
    requester_email: str | None
    requester_name: str | None
    requester_phone: str | None
    text: str
    priority: str
    reaction_due: datetime | None
    resolution_due: datetime | None
    attachments: list[FileOut] = field(default_factory=list)


@dataclass(frozen=True)
class MessageOut:
    """One later message of ours; MARKER is unique to it and findable in the tracker."""

    marker: str
    subject: str
    text: str
    # "correspond": to the requester's thread; "comment": internal.
    visibility: Literal["correspond", "comment"]
    attachments: list[FileOut] = field(default_factory=list)


@dataclass(frozen=True)
class RemoteChange:
    """A tracker ticket seen changed: its id, status, what the status means, and when."""

    remote_id: str
    status: str
    meaning: StatusMeaning
    changed_at: str


class Tracker(Protocol):
    name: str

    def meaning(self, status: str) -> StatusMeaning:
        """What one of the tracker's statuses means for our ticket."""

    async def find(self, number: str) -> tuple[str, str] | None:
        """The id and status of the tracker ticket carrying our NUMBER, if one exists."""

    async def create(self, ticket: TicketOut) -> tuple[str, str]:
        """Create the tracker ticket; its id and status."""

    async def status(self, remote_id: str) -> str:
        """The tracker ticket's status now."""

    async def has_message(self, remote_id: str, marker: str) -> bool:
        """Whether a message carrying MARKER is on the tracker ticket already."""

    async def add_message(self, remote_id: str, message: MessageOut) -> None:
        """Add one message to the tracker ticket."""

    async def update(self, remote_id: str, *, priority: str | None = None,
                     status: StatusMeaning | None = None) -> str | None:
        """Set the mapped priority and/or a status of that meaning; the new status, if set."""

    async def changes(self, since: datetime) -> list[RemoteChange]:
        """Tickets changed since the real-time instant SINCE (more is harmless: the
        connector compares each with what it last saw)."""

    async def close(self) -> None:
        """Release connections."""
