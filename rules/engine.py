"""Evaluate an ordered rule set on a request: the decision, every rule that fired, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import structlog

from parsers.model import PRIORITIES, Priority, Request
from rules.conditions import Condition, literals, phrases
from rules.facts import Facts, Sender
from rules.literals import Scanner
from rules.text import Lexicon

log = structlog.get_logger("rules.engine")

REQUEST_TYPES = ("incident", "consultation", "administration", "feature_request")
DEFAULT_TYPE, DEFAULT_PRIORITY = "incident", "medium"
# `priority = "declared"` in a rule means: whatever the customer declared.
DECLARED = "declared"
# Yes/no actions that stay on once any fired rule turns them on.
FLAGS = ("assign_engineer", "copy_manager", "suppress_ack", "hold")


def rank(priority: str) -> int:
    """0 for critical ... 3 for low: smaller is more urgent."""
    return PRIORITIES.index(priority)  # type: ignore[arg-type,unused-ignore]


@dataclass(frozen=True)
class Actions:
    """What a rule does when it fires, applied in this order."""

    request_type: str | None = None
    priority: str | None = None
    at_least: str | None = None
    at_most: str | None = None
    tags: tuple[str, ...] = ()
    assign_engineer: bool = False
    copy_manager: bool = False
    suppress_ack: bool = False
    hold: bool = False
    stop: bool = False

    def effects(self) -> list[str]:
        words = []
        if self.request_type:
            words.append(f"type {self.request_type}")
        if self.priority:
            words.append(self.priority if self.priority != DECLARED else "the declared priority")
        if self.at_least:
            words.append(f"at least {self.at_least}")
        if self.at_most:
            words.append(f"at most {self.at_most}")
        words += [f"tag {t}" for t in self.tags]
        words += [w for w, on in (("dedicated engineer", self.assign_engineer),
                                  ("copy manager", self.copy_manager),
                                  ("no acknowledgement", self.suppress_ack),
                                  ("hold for review", self.hold), ("stop", self.stop)) if on]
        return words

    @cached_property
    def flags(self) -> tuple[str, ...]:
        """The decision flags this rule turns on, looked up once rather than on every hit."""
        return tuple(name for name in FLAGS if getattr(self, name))


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    when: Condition
    then: Actions
    reason: str = ""
    line: int = 0

    def sentence(self) -> str:
        """`messaging-down: messages are not delivered -> high`."""
        return self._sentence

    @cached_property
    def _sentence(self) -> str:
        # Built once per rule, not once per request it fires on.
        why = self.reason or self.description or self.when.describe()
        return f"{self.name}: {why} -> {', '.join(self.then.effects())}"


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    source: str = "<built-in>"

    @cached_property
    def scanner(self) -> Scanner:
        """One pass per text field finds every `contains` needle and regex literal."""
        return Scanner(literal for rule in self.rules for literal in literals(rule.when))

    @cached_property
    def lexicon(self) -> Lexicon:
        """Every `word*` prefix of the rules, looked up once per distinct token of a text."""
        return Lexicon.of(terms for rule in self.rules for terms in phrases(rule.when))


class Hit(NamedTuple):
    """One rule's outcome on one request, for explanations and corpus statistics."""

    rule: str
    fired: bool
    error: str | None = None


@dataclass(frozen=True)
class Decision:
    request_type: str
    priority: Priority
    reasons: list[str] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    assign_engineer: bool = False
    copy_manager: bool = False
    suppress_ack: bool = False
    hold: bool = False
    # honoured | raised | corrected, when the customer declared a priority.
    declared_outcome: str | None = None
    # The sentence to tell the customer when their declared priority was changed.
    customer_notice: str | None = None
    # Why the priority differs from the declared one, without the rule's name.
    change_reason: str | None = None
    trace: list[Hit] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "request_type": self.request_type, "priority": self.priority,
            "reasons": list(self.reasons), "fired": list(self.fired), "tags": list(self.tags),
            "assign_engineer": self.assign_engineer, "copy_manager": self.copy_manager,
            "suppress_ack": self.suppress_ack, "hold": self.hold,
            "declared_outcome": self.declared_outcome, "customer_notice": self.customer_notice,
            "trace": [{"rule": h.rule, "fired": h.fired, "error": h.error} for h in self.trace],
        }


def _apply(actions: Actions, facts: Facts) -> None:
    if actions.request_type:
        facts.request_type = actions.request_type
    if actions.priority == DECLARED:
        if facts.request.declared_priority:
            facts.priority = facts.request.declared_priority
    elif actions.priority:
        facts.priority = actions.priority
    if actions.at_least and (facts.priority is None
                             or rank(facts.priority) > rank(actions.at_least)):
        facts.priority = actions.at_least
    if actions.at_most and facts.priority is not None and (
            rank(facts.priority) < rank(actions.at_most)):
        facts.priority = actions.at_most
    for tag in actions.tags:
        if tag not in facts.tags:
            facts.tags.append(tag)


def evaluate(request: Request, ruleset: RuleSet, sender: Sender | None = None,
             in_working_hours: bool | None = None) -> Decision:
    """Run RULESET's rules in order on REQUEST; a rule that errors is a logged miss."""
    return evaluate_facts(Facts.of(request, sender, in_working_hours), ruleset)


def evaluate_facts(facts: Facts, ruleset: RuleSet) -> Decision:
    facts.use(ruleset.scanner, ruleset.lexicon)
    reasons: list[str] = []
    fired: list[str] = []
    trace: list[Hit] = []
    flags = dict.fromkeys(FLAGS, False)
    stopped = False
    for rule in ruleset.rules:
        if stopped:
            trace.append(Hit(rule.name, False, None))
            continue
        try:
            matched = rule.when.check(facts)
        except Exception as error:  # an admin's rule must never stop the intake
            message = f"{type(error).__name__}: {error}"
            log.warning("rule.error", rule=rule.name, error=message, source=ruleset.source)
            trace.append(Hit(rule.name, False, message))
            continue
        trace.append(Hit(rule.name, matched))
        if not matched:
            continue
        _apply(rule.then, facts)
        fired.append(rule.name)
        reasons.append(rule.sentence())
        for name in rule.then.flags:
            flags[name] = True
        stopped = rule.then.stop
    request_type = facts.request_type or DEFAULT_TYPE
    if facts.request_type is None:
        reasons.append(f"default-type: no rule set a type -> {DEFAULT_TYPE}")
    priority = facts.priority or DEFAULT_PRIORITY
    if facts.priority is None:
        reasons.append(f"default-priority: no rule set a priority -> {DEFAULT_PRIORITY}")
    outcome, notice, why = _declared(facts.request.declared_priority, priority, reasons)
    if outcome:
        reasons.append(f"declared-priority: the customer declared "
                       f"{facts.request.declared_priority} -> {outcome}")
    return Decision(request_type, priority, reasons, fired, list(facts.tags),  # type: ignore[arg-type]
                    declared_outcome=outcome, customer_notice=notice, change_reason=why,
                    trace=trace, **flags)


def _declared(declared: str | None, priority: str,
              reasons: list[str]) -> tuple[str | None, str | None, str | None]:
    """Honoured, raised or corrected; the customer is told why when it changed (seed rule 3)."""
    if declared is None:
        return None, None, None
    if declared == priority:
        return "honoured", None, None
    # The last content reason is what decided; the customer reads it without the rule name.
    why = next((r.split(": ", 1)[1].rsplit(" -> ", 1)[0] for r in reversed(reasons)
                if not r.startswith("default-")), "the description of the problem")
    if rank(priority) < rank(declared):
        return "raised", f"The priority was raised from {declared} to {priority}: {why}.", why
    return "corrected", (f"The priority was set to {priority} instead of the declared "
                         f"{declared}: {why}."), why
