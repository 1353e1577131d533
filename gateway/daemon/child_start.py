"""What a worker process does first: leave Ctrl-C to the daemon, then log as the daemon does."""

from __future__ import annotations

import signal

from gateway.daemon.logs import configure_process_logging


def start_child(level: str, log_format: str) -> None:
    """Ignore SIGINT, then configure logging (a worker pool's initializer).

    A terminal's Ctrl-C reaches every process of its foreground group. The daemon drains on
    it and then closes its workers' pipes, which ends them; a worker that took SIGINT itself
    died mid-batch with a KeyboardInterrupt traceback, and its inputs were quarantined as if
    they had killed it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_process_logging(level, log_format)
