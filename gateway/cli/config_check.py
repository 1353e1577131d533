"""`check-config`: the config file and every file it names, each problem told in one run."""

from __future__ import annotations

from pathlib import Path

from gateway.config.settings import LoadedSettings, load_settings
from rules.config_errors import ConfigError, ConfigProblem, problem_of, split_key


def config_problems(config: str | None) -> tuple[LoadedSettings | None, list[ConfigProblem]]:
    """The settings (None when the config file itself is bad) and every problem found in the
    config, policy, customers and rules files.

    Each file is checked even when an earlier one is bad: an admin who fixes the first error
    should not meet the next one only on the next run. Customers are checked against the
    built-in tiers when the policy cannot be read."""
    from gateway.config.customers import TIERS, load_customers
    from gateway.config.rules_file import load_rules_file
    from gateway.sla.policy import load_policy_for

    try:
        loaded = load_settings(config)
    except ConfigError as error:
        return None, list(error.problems)
    problems: list[ConfigProblem] = []
    tiers: tuple[str, ...] = TIERS
    try:
        tiers = tuple(load_policy_for(loaded.settings).tiers)
    except ConfigError as error:
        problems += [_named(p, loaded.path) for p in error.problems]
    for check in (lambda: load_customers(loaded.settings.files.customers, tiers),
                  lambda: load_rules_file(loaded.settings.files.rules)):
        try:
            check()
        except ConfigError as error:
            problems += error.problems
    return loaded, problems


def _named(problem: ConfigProblem, path: Path | None) -> ConfigProblem:
    """A problem the policy found in the config file's settings, under the file's name."""
    if problem.file != "<config>" or path is None:
        return problem
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ConfigProblem(str(path), problem.line, problem.key, problem.message)
    return problem_of(str(path), text, tuple(split_key(problem.key)), problem.message)
