"""Opening a database that must exist already: the commands that only read or act on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class NoDatabase(Exception):
    """The command would create a new, empty database (a wrong directory or config, most
    likely): said, and nothing created."""


def open_existing(url: str) -> Any:
    """An engine on URL with its schema brought up to date, or NoDatabase when URL holds no
    gateway database yet (an SQLite file that does not exist, a PostgreSQL database or schema
    without our tables)."""
    # Imported here: the exception above is caught by the command line, which should not pay
    # for SQLAlchemy on every command.
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url

    from gateway.store.db import make_engine, migrate

    parsed = make_url(url)
    where = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(str(parsed.database))
        if not path.exists():
            raise NoDatabase(f"no database at {path.absolute()}: this command would create a "
                             "new, empty one. The daemon (`run`) or `ingest` creates it; is "
                             "this the daemon's --config (or INTAKE_GATEWAY_CONFIG)?")
    engine = make_engine(url)
    try:
        known = inspect(engine).has_table("alembic_version")
    except Exception:
        engine.dispose()
        raise
    if not known:
        engine.dispose()
        raise NoDatabase(f"{where} holds no gateway tables: this command would create them "
                         "in an empty database. The daemon (`run`) or `ingest` creates them; "
                         "is this the daemon's --config (or INTAKE_GATEWAY_CONFIG)?")
    migrate(engine)
    return engine
