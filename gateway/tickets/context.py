"""What every step of processing reads: configuration and clock, replaced whole on reload."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.clock import Clock
from gateway.config.customers import Directory
from gateway.config.settings import Settings
from gateway.sla.policy import Policy, seed_policy
from rules.engine import RuleSet
from rules.loader import builtin_rules


@dataclass(frozen=True)
class Context:
    """What processing reads; replaced as a whole when configuration is reloaded."""

    settings: Settings
    directory: Directory
    clock: Clock
    own_addresses: frozenset[str] = field(default_factory=frozenset)
    policy: Policy = field(default_factory=seed_policy)
    ruleset: RuleSet = field(default_factory=builtin_rules)
