"""A local file of what the relay took, written the moment it answers: no resends after a kill."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class Taken:
    """One message the relay accepted, as the outbox records it."""

    outbox_id: int
    kind: str
    ticket_id: int | None
    at: datetime


class SentJournal:
    """Outbox ids appended as the relay accepts each message, cleared once they are recorded.

    Recording a send in the database takes a transaction, and sends finish faster than those
    commit under load; a process killed in between would send those messages again once their
    lease expired. A line appended to a file is one write(2) and survives the process (the
    kernel holds it), so after a kill only a message taken in the instant before its line was
    written goes out twice. At start the lines left are recorded first (`replay`).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)

    def append(self, taken: Taken) -> None:
        ticket = "-" if taken.ticket_id is None else str(taken.ticket_id)
        line = f"{taken.outbox_id} {taken.kind} {ticket} {taken.at.isoformat()}\n"
        os.write(self._fd, line.encode("ascii"))

    def has_entries(self) -> bool:
        return os.fstat(self._fd).st_size > 0

    def entries(self) -> list[Taken]:
        """Every complete line (a kill may have cut the last one short: it was not taken)."""
        with open(self.path, "rb") as journal:
            data = journal.read()
        taken = []
        for line in data.split(b"\n")[:-1]:
            try:
                outbox_id, kind, ticket, at = line.decode("ascii").split(" ")
                taken.append(Taken(int(outbox_id), kind, None if ticket == "-" else int(ticket),
                                   datetime.fromisoformat(at)))
            except ValueError:
                continue  # not ours; never worth stopping the outbox for
        return taken

    def clear(self) -> None:
        os.ftruncate(self._fd, 0)

    def close(self) -> None:
        # Once only: a second close could close whatever reused the number (an event loop's
        # epoll, as a gateway stopped twice in a test showed).
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
