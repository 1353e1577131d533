"""Structured logs with structlog: JSON when stdout is not a terminal, console otherwise."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

_SECRET_KEYS = {"password", "secret", "token", "admin_token", "authorization"}


def _drop_secrets(_logger: Any, _method: str,
                  event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A last guard: a key that names a secret never reaches the output."""
    for key in event.keys() & _SECRET_KEYS:
        event[key] = "[redacted]"
    return event


def configure_process_logging(level: str = "info", output_format: str = "auto") -> None:
    """configure_logging for a process of our own (the daemon, a worker), called before
    anything imports structlog: with JSON output the console extras are never loaded."""
    if _uses_json(output_format) and "structlog" not in sys.modules:
        # structlog imports rich and pygments when they are installed (7 MB per process), for
        # console tracebacks only. None in sys.modules makes that import fail as if absent.
        sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
    configure_logging(level, output_format)


def _uses_json(output_format: str) -> bool:
    return output_format == "json" or (output_format == "auto" and not sys.stdout.isatty())


def configure_logging(level: str = "info", output_format: str = "auto") -> None:
    # Imported here, so a process can decide what structlog may import (see above).
    import structlog

    use_json = _uses_json(output_format)
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
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    # Libraries that log through stdlib logging (aiosmtpd, alembic) stay quiet below warnings.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
