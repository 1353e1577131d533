"""`ingest`: .eml files, mbox files and maildirs through the same door as SMTP and IMAP."""

from __future__ import annotations

import email.utils
import mailbox
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tqdm import tqdm

from gateway.clock import SystemClock
from gateway.config.settings import LoadedSettings
from gateway.intake.door import IncomingInput, store_inputs
from gateway.store.db import open_migrated

BATCH = 200
# An imported message's Date header is its arrival when it lies within a year before the
# import (a later one is capped at the import); outside that, the import time counts.
DATE_MAX_AGE = timedelta(days=366)
_DATE = re.compile(rb"^date:[ \t]*((?:.|\r?\n[ \t])*)", re.IGNORECASE | re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def date_header(raw: bytes) -> datetime | None:
    """The Date header of RAW as an aware instant (naive ones as UTC), or None."""
    head = _HEADER_END.split(raw[:65536], maxsplit=1)[0]
    match = _DATE.search(head)
    if match is None:
        return None
    text = re.sub(r"\s+", " ", match.group(1).decode("ascii", "replace")).strip()
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class IngestSummary:
    stored: int = 0
    duplicates: int = 0
    sent: int = 0
    unreadable: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"stored {self.stored} new input(s), {self.duplicates} already known, "
                 f"{self.sent} message(s) sent"]
        lines += [f"unreadable: {problem}" for problem in self.unreadable]
        return "\n".join(lines)


def _is_mbox(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(5) == b"From "


def messages_in(path: Path, problems: list[str]) -> Iterator[tuple[bytes, str]]:
    """(raw bytes, where it came from) for every message under PATH."""
    if path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
        box = mailbox.Maildir(path, factory=None, create=False)
        for key in box.iterkeys():
            try:
                yield box.get_bytes(key), f"{path}:{key}"
            except (OSError, KeyError) as error:
                problems.append(f"{path}:{key}: {error}")
    elif path.is_dir():
        for child in sorted(path.rglob("*.eml")):
            yield from messages_in(child, problems)
    elif path.is_file() and _is_mbox(path):
        mbox = mailbox.mbox(path, create=False)
        try:
            for index, key in enumerate(mbox.iterkeys()):
                yield mbox.get_bytes(key), f"{path}#{index}"
        finally:
            mbox.close()
    elif path.is_file():
        try:
            yield path.read_bytes(), str(path)
        except OSError as error:
            problems.append(f"{path}: {error.strerror}")
    else:
        problems.append(f"{path}: no such file or directory")


def ingest_paths(loaded: LoadedSettings, paths: list[Path],
                 acknowledge: bool = False) -> IngestSummary:
    """Store every message, then process and deliver as the daemon would.

    Each message arrived at its Date header when that is sane (DATE_MAX_AGE), else now; none
    is acknowledged unless ACKNOWLEDGE (a bulk import is history, not fresh requests)."""
    from gateway.daemon.one_pass import deliver_now

    engine = open_migrated(loaded.settings.database_url())
    summary = IngestSummary()
    clock = SystemClock()
    batch: list[IncomingInput] = []

    def flush() -> None:
        for accepted in store_inputs(engine, batch, clock):
            if accepted.duplicate:
                summary.duplicates += 1
            else:
                summary.stored += 1
        batch.clear()

    with tqdm(desc="storing", unit="msg", disable=None) as progress:
        for path in paths:
            for raw, origin in messages_in(path, summary.unreadable):
                batch.append(IncomingInput(
                    "email", raw, {"via": "ingest", "file": origin, "acknowledge": acknowledge},
                    arrived_at=date_header(raw), arrival_max_age=DATE_MAX_AGE))
                progress.update()
                if len(batch) >= BATCH:
                    flush()
        if batch:
            flush()
    engine.dispose()
    summary.sent = deliver_now(loaded)
    return summary
