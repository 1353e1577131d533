"""A local file of what the relay took, written the moment it answers: no resends after a kill."""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

# Every process's journal is "outbox-sent.<pid>-<random>.journal" in the state directory
# ("outbox-sent.journal" was the one file all processes shared, before).
_PATTERN = "outbox-sent*.journal"


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
        # Held for the process's life: a journal whose lock is free belongs to nobody alive.
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    @classmethod
    def of_process(cls, directory: Path) -> SentJournal:
        """A journal of this process's own in DIRECTORY. One file per process: the daemon and
        an `ingest` beside it each clear their own, where clearing a shared file lost the
        other's lines (and its sends went out twice)."""
        return cls(directory / f"outbox-sent.{os.getpid()}-{secrets.token_hex(4)}.journal")

    def orphans(self) -> Iterator[Orphan]:
        """The journals beside this one that no live process holds (killed, or stopped with
        lines left); each locked for the caller until it is forgotten or let go."""
        for path in sorted(self.path.parent.glob(_PATTERN)):
            if path == self.path:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue  # forgotten meanwhile by another process
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live process's own
                continue
            yield Orphan(path, fd, _read_entries(path))

    def append(self, taken: Taken) -> None:
        ticket = "-" if taken.ticket_id is None else str(taken.ticket_id)
        line = f"{taken.outbox_id} {taken.kind} {ticket} {taken.at.isoformat()}\n"
        os.write(self._fd, line.encode("ascii"))

    def has_entries(self) -> bool:
        return os.fstat(self._fd).st_size > 0

    def entries(self) -> list[Taken]:
        """Every complete line (a kill may have cut the last one short: it was not taken)."""
        return _read_entries(self.path)

    def clear(self) -> None:
        os.ftruncate(self._fd, 0)

    def close(self) -> None:
        # Once only: a second close could close whatever reused the number (an event loop's
        # epoll, as a gateway stopped twice in a test showed).
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def remove_if_empty(self) -> None:
        """At a clean stop: an empty journal is of no use to anyone after us."""
        if self._fd >= 0 and not self.has_entries():
            self.path.unlink(missing_ok=True)


@dataclass
class Orphan:
    """A dead process's journal, locked by us: record ENTRIES, then forget it."""

    path: Path
    fd: int
    entries: list[Taken]

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self.fd)

    def let_go(self) -> None:
        os.close(self.fd)


def _read_entries(path: Path) -> list[Taken]:
    with open(path, "rb") as journal:
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
