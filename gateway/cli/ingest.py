"""`ingest`: .eml files, mbox files and maildirs through the same door as SMTP and IMAP."""

from __future__ import annotations

import email.utils
import mailbox
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select
from tqdm import tqdm

from gateway.clock import SystemClock
from gateway.config.settings import LoadedSettings
from gateway.intake.door import IncomingInput, store_inputs
from gateway.store.db import open_migrated, read_transaction
from gateway.store.models import Input
from gateway.store.outcomes import outcome_kind

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


# How `ingest`'s summary names each kind of outcome (gateway/store/outcomes.py).
_OUTCOME_WORDS = {"registered": "registered", "added_to_ticket": "added to a ticket",
                  "stored": "stored, not registered (auto-replies, bounces, lists)",
                  "held": "held for a human (intake-gateway quarantine list)",
                  "failed": "quarantined as failed (intake-gateway quarantine list)",
                  "received": "not processed yet (another process has them)",
                  "other": "other"}


@dataclass
class IngestSummary:
    stored: int = 0
    duplicates: int = 0
    sent: int = 0
    unreadable: list[str] = field(default_factory=list)
    # The inputs this run stored, by kind of outcome once processed.
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def quarantined(self) -> int:
        return self.outcomes["failed"]

    def describe(self) -> str:
        lines = [f"stored {self.stored} new input(s), {self.duplicates} already known, "
                 f"{self.sent} message(s) sent"]
        lines += [f"  {self.outcomes[kind]:>6} {words}" for kind, words in _OUTCOME_WORDS.items()
                  if self.outcomes[kind]]
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


def count_messages(paths: list[Path]) -> int:
    """How many messages `messages_in` will find under PATHS (for the progress bar: an mbox
    is read once more for it)."""
    total = 0
    for path in paths:
        if path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
            total += len(mailbox.Maildir(path, factory=None, create=False))
        elif path.is_dir():
            total += sum(1 for _ in path.rglob("*.eml"))
        elif path.is_file() and _is_mbox(path):
            mbox = mailbox.mbox(path, create=False)
            total += len(mbox)
            mbox.close()
        elif path.is_file():
            total += 1
    return total


def outcome_counts(engine: Engine, input_ids: list[int]) -> Counter[str]:
    """The inputs INPUT_IDS by kind of outcome."""
    counts: Counter[str] = Counter()
    table = Input.__table__  # type: ignore[attr-defined]
    with read_transaction(engine) as session:
        for start in range(0, len(input_ids), 500):
            chunk = input_ids[start:start + 500]
            rows = session.connection().execute(
                select(table.c.status, table.c.outcome).where(table.c.id.in_(chunk)))
            counts.update(outcome_kind(status, outcome) for status, outcome in rows)
    return counts


def ingest_paths(loaded: LoadedSettings, paths: list[Path], acknowledge: bool = False,
                 show_progress: bool = False) -> IngestSummary:
    """Store every message, then process and deliver as the daemon would; SHOW_PROGRESS
    draws a bar for each (on stderr).

    Each message arrived at its Date header when that is sane (DATE_MAX_AGE), else now; none
    is acknowledged unless ACKNOWLEDGE (a bulk import is history, not fresh requests)."""
    from gateway.daemon.one_round import deliver_now

    engine = open_migrated(loaded.settings.database_url())
    summary = IngestSummary()
    clock = SystemClock()
    batch: list[IncomingInput] = []
    stored_ids: list[int] = []

    def flush() -> None:
        for accepted in store_inputs(engine, batch, clock):
            if accepted.duplicate:
                summary.duplicates += 1
            else:
                summary.stored += 1
                stored_ids.append(accepted.input_id)
        batch.clear()

    total = count_messages(paths) if show_progress else None
    with tqdm(desc="storing", unit="msg", total=total, disable=not show_progress) as progress:
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
    with tqdm(desc="processing", unit="msg", total=len(stored_ids),
              disable=not show_progress or not stored_ids) as progress:
        summary.sent = deliver_now(loaded, progress=progress.update)
    summary.outcomes = outcome_counts(engine, stored_ids)
    engine.dispose()
    return summary
