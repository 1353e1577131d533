"""What the daemon and its worker processes import: only what each of them uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Each check runs in a fresh interpreter, set up as the process is: logging first, JSON.
PRELUDE = """
import sys
from gateway.logs import configure_process_logging
configure_process_logging("info", "json")
"""
# The modules loaded (a None entry in sys.modules is an import refused).
SHOW = """
print(" ".join(sorted(name for name, module in sys.modules.items() if module is not None)))
"""
# A spawned worker imports the command line (the parent's main module), then processing, and
# builds the seed calendar (Russian holidays) on its first registration.
WORKER = PRELUDE + """
import gateway.cli
import gateway.processing
from datetime import date
from gateway.workcal import russian_calendar
russian_calendar().is_working_day(date(2025, 1, 9))
""" + SHOW
DAEMON = PRELUDE + """
import gateway.app
""" + SHOW

# Console extras of structlog (JSON logs never use them) and every country's holidays.
NEVER = {"rich", "pygments", "holidays.countries"}


def loaded_by(script: str) -> set[str]:
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    return set(run.stdout.split())


def test_worker_process_imports_no_http_stack_migrations_or_mailbox_clients() -> None:
    """A worker process loads neither the HTTP stack, alembic, nor the channel libraries."""
    loaded = loaded_by(WORKER)
    assert "gateway.processing" in loaded
    unused = {"fastapi", "starlette", "uvicorn", "alembic", "mako", "prometheus_client",
              "imapclient", "aiosmtpd", "gateway.app", "gateway.http.app"} | NEVER
    assert loaded & unused == set()


def test_daemon_imports_no_migrations_or_mail_parser() -> None:
    """The daemon migrates in a short-lived process and its workers parse: it loads neither."""
    loaded = loaded_by(DAEMON)
    assert "gateway.app" in loaded
    assert loaded & ({"alembic", "mako", "flanker", "parsers.email"} | NEVER) == set()
