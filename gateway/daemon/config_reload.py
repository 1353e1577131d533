"""SIGHUP and the config file itself: what takes effect at once, and what waits for a restart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from gateway.config.settings import LoadedSettings, Settings, load_settings

# Read afresh by every step that processes an input or sends a notice (through the
# context), so a new value is safe at once. Everything else is held by a listener, a
# connection, a pool or a task built at start, and waits for a restart.
RELOADABLE_SECTIONS = frozenset({"files", "loops", "trust"})
RELOADABLE_INTAKE = frozenset({"hold_unknown_senders", "detailed_description_words",
                               "unknown_customer_tier", "reply_to_closed", "thread_links",
                               "missed_calls_from_unknown"})


@dataclass(frozen=True)
class Reread:
    """The settings to run with now, and the keys that changed, by what became of them."""

    loaded: LoadedSettings
    applied: list[str]
    need_restart: list[str]


def reread(running: LoadedSettings) -> Reread:
    """RUNNING with the config file's new values of the keys that can change safely;
    ConfigError when the file is bad now (the caller keeps RUNNING)."""
    if running.path is None:
        return Reread(running, [], [])
    new = load_settings(running.path).settings
    applied: list[str] = []
    need_restart: list[str] = []
    update: dict[str, Any] = {}
    for section in Settings.model_fields:
        before, after = getattr(running.settings, section), getattr(new, section)
        if before == after:
            continue
        changed = _changed_keys(section, before, after)
        if section in RELOADABLE_SECTIONS:
            update[section] = after
            applied += changed
        elif section == "intake":
            safe = {key: getattr(after, key) for key in RELOADABLE_INTAKE
                    if getattr(before, key) != getattr(after, key)}
            update[section] = before.model_copy(update=safe)
            applied += [f"intake.{key}" for key in sorted(safe)]
            need_restart += [key for key in changed
                             if key.removeprefix("intake.") not in RELOADABLE_INTAKE]
        else:
            need_restart += changed
    settings = running.settings.model_copy(update=update)
    return Reread(LoadedSettings(settings, running.path), applied, need_restart)


def _changed_keys(section: str, before: object, after: object) -> list[str]:
    """`section.key` for each key of a table that differs; the section for anything else
    (lists of mailboxes, hooks, subscriptions; a section added or removed)."""
    if not isinstance(before, BaseModel) or not isinstance(after, BaseModel):
        return [section]
    return [f"{section}.{key}" for key in type(before).model_fields
            if getattr(before, key) != getattr(after, key)]
