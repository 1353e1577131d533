"""The intake door's commits on SQLite: the WAL checkpoint is left to the other writers."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy import text

from gateway.clock import SystemClock
from gateway.intake.door import IncomingInput, store_inputs
from gateway.store.db import make_engine, migrate, transaction


def test_door_commits_leave_the_checkpoint_to_the_next_ordinary_commit(tmp_path: Path) -> None:
    database = tmp_path / "intake.db"
    engine = make_engine(f"sqlite:///{database}")
    try:
        migrate(engine)
        with sqlite3.connect(database) as connection:  # what the migration left, into the file
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = database.stat().st_size
        # About 6 MB through the door: past SQLite's usual 1,000-page (4 MB) checkpoint point.
        for batch in range(12):
            store_inputs(engine, [IncomingInput("web", os.urandom(50_000), key=f"{batch}-{i}")
                                  for i in range(10)], SystemClock())
        # Still all in the WAL: no door commit copied it into the database file.
        assert database.stat().st_size == before
        assert Path(f"{database}-wal").stat().st_size > 6_000_000
        with transaction(engine, flush_to_disk=False) as session:
            session.execute(text("UPDATE inputs SET attempts = attempts + 1 WHERE id = 1"))
        # The ordinary commit that followed did.
        assert database.stat().st_size > before + 6_000_000
    finally:
        engine.dispose()
