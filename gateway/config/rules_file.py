"""The rules file in the daemon: loaded as configuration, and watched for changes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from rules.config_errors import ConfigError, ConfigProblem
from rules.engine import RuleSet
from rules.loader import RulesError, builtin_rules, load_rules

# How often the rules file's modification time is looked at.
WATCH_INTERVAL_S = 2.0


def load_rules_file(path: Path | None) -> RuleSet:
    """The rules at PATH (built-in defaults when None); problems as a ConfigError."""
    if path is None:
        return builtin_rules()
    try:
        return load_rules(path)
    except RulesError as error:
        raise ConfigError([ConfigProblem(p.file, p.line, p.key, p.message)
                           for p in error.problems]) from None


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


class RulesWatcher:
    """Calls RELOAD when the file's modification time or size changes (editors, git pull)."""

    def __init__(self, path: Path, reload: Callable[[], object],
                 interval_s: float = WATCH_INTERVAL_S) -> None:
        self.path = path
        self.reload = reload
        self.interval_s = interval_s
        self._seen = _stamp(path)

    def check(self) -> bool:
        """Reload if the file changed since the last look; whether it did."""
        stamp = _stamp(self.path)
        if stamp == self._seen:
            return False
        self._seen = stamp
        self.reload()
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.check()
