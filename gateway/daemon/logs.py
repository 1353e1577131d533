"""Structured logs with structlog: JSON when the output is not a terminal, console otherwise."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

# A key names a secret when its last "_"-separated word is one of these, in any case
# (password, smtp_password, admin_token, Authorization); "tokens" and "token_count" do not.
_SECRET_WORDS = frozenset({"password", "secret", "token", "authorization"})


def _names_secret(key: str) -> bool:
    return key.rpartition("_")[2].lower() in _SECRET_WORDS


def _drop_secrets(_logger: Any, _method: str,
                  event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A last guard: a key that names a secret never reaches the output."""
    for key in [key for key in event if _names_secret(key)]:
        event[key] = "[redacted]"
    return event


def configure_process_logging(level: str = "info", output_format: str = "auto") -> None:
    """configure_logging for a process of our own (the daemon, a worker), called before
    anything imports structlog: with JSON output the console extras are never loaded."""
    if _uses_json(output_format, sys.stdout) and "structlog" not in sys.modules:
        # structlog imports rich and pygments when they are installed (7 MB per process), for
        # console tracebacks only. None in sys.modules makes that import fail as if absent.
        sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
    configure_logging(level, output_format)


def _uses_json(output_format: str, stream: TextIO) -> bool:
    return output_format == "json" or (output_format == "auto" and not stream.isatty())


def configure_logging(level: str = "info", output_format: str = "auto",
                      stream: TextIO | None = None) -> None:
    """Events at LEVEL and above to STREAM (default stdout, where journald reads a daemon's)."""
    # Imported here, so a process can decide what structlog may import (see above).
    import structlog

    output = stream or sys.stdout
    use_json = _uses_json(output_format, output)
    renderer: Any = (structlog.processors.JSONRenderer(ensure_ascii=False) if use_json
                     else structlog.dev.ConsoleRenderer())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(output),
        cache_logger_on_first_use=True,
    )
    # Libraries that log through stdlib logging (aiosmtpd, alembic) stay quiet below warnings.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
