"""What the daemon and its worker processes import: only what each of them uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.daemon.logs import configure_process_logging
from gateway.daemon.worker_pool import WorkerPool

ROOT = Path(__file__).resolve().parents[2]

# Each check runs in a fresh interpreter, set up as the process is: logging first, JSON.
PRELUDE = """
import sys
from gateway.daemon.logs import configure_process_logging
configure_process_logging("info", "json")
"""
# The modules loaded (a None entry in sys.modules is an import refused).
SHOW_EXPR = "sorted(n for n, m in __import__('sys').modules.items() if m is not None)"
SHOW = f"\nprint(' '.join({SHOW_EXPR}))\n"
# What a worker process does before its first batch, in one of the daemon's pools (below).
WARM_UP = """
import gateway.tickets.processing
from datetime import date
from gateway.sla.working_calendar import russian_calendar
russian_calendar().is_working_day(date(2025, 1, 9))
"""
DAEMON = PRELUDE + """
import gateway.daemon.service
""" + SHOW
# `intake-gateway run` as gateway.cli.main runs it: the parser is built before logging is set up.
DAEMON_FROM_COMMAND_LINE = """
import sys
import gateway.cli.main
gateway.cli.main.build_parser()
from gateway.daemon.logs import configure_process_logging
configure_process_logging("info", "json")
import gateway.daemon.service
""" + SHOW

# Console extras of structlog (JSON logs never use them) and every country's holidays.
NEVER = {"rich", "pygments", "holidays.countries"}


def loaded_by(script: str) -> set[str]:
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    return set(run.stdout.split())


def worker_modules() -> set[str]:
    """The modules of a real worker (a WorkerPool child, set up as the daemon sets it up)."""
    pool = WorkerPool(1, configure_process_logging, ("info", "json"))
    try:
        pool.submit(exec, WARM_UP, {}).result(timeout=120)
        names: list[str] = pool.submit(eval, SHOW_EXPR).result(timeout=60)
    finally:
        pool.shutdown()
    return set(names)



def test_worker_process_imports_no_http_stack_migrations_or_mailbox_clients() -> None:
    """A worker process loads neither the HTTP stack, alembic, nor the channel libraries."""
    loaded = worker_modules()
    assert "gateway.tickets.processing" in loaded
    unused = {"fastapi", "starlette", "uvicorn", "alembic", "mako", "prometheus_client",
              "imapclient", "aiosmtpd", "gateway.daemon.service", "gateway.http.app", "gateway.cli",
              "multiprocessing"} | NEVER
    assert loaded & unused == set()


def test_daemon_imports_no_migrations_or_mail_parser() -> None:
    """The daemon migrates in a short-lived process and its workers parse: it loads neither."""
    loaded = loaded_by(DAEMON)
    assert "gateway.daemon.service" in loaded
    assert loaded & ({"alembic", "mako", "flanker", "parsers.email"} | NEVER) == set()


def test_daemon_started_from_the_command_line_imports_no_console_extras() -> None:
    """The daemon as `intake-gateway run` starts it loads no rich or pygments either."""
    assert loaded_by(DAEMON_FROM_COMMAND_LINE) & NEVER == set()


POOL_CHILDREN = """
from pathlib import Path
from gateway.daemon.worker_pool import WorkerPool
pool = WorkerPool(2)
assert [pool.submit(abs, -1).result(timeout=60) for _ in range(4)] == [1] * 4
print(len(Path("/proc/self/task/%d/children" % __import__("os").getpid()).read_text().split()))
pool.shutdown()
"""


def test_a_worker_pool_starts_its_workers_and_no_other_process() -> None:
    """No resource tracker beside the workers: multiprocessing's spawn would start one."""
    run = subprocess.run([sys.executable, "-c", POOL_CHILDREN], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    assert run.stdout.split() == ["2"]
