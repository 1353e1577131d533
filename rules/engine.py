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
from rules.triage.facts import TriageFacts, read_facts
from rules.triage.lexicon import Lexicon as TriageLexicon
from rules.triage.lexicon import shipped_lexicon
from rules.triage.table import Row, Verdict, decide

log = structlog.get_logger("rules.engine")

REQUEST_TYPES = ("incident", "consultation", "administration", "feature_request")
DEFAULT_TYPE, DEFAULT_PRIORITY = "incident", "medium"
# `priority = "declared"` in a rule means: whatever the customer declared.
DECLARED = "declared"
# Yes/no actions that stay on once any fired rule turns them on.
FLAGS = ("assign_engineer", "copy_manager", "suppress_ack", "hold", "wait_for_customer")


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
    # Registered as waiting for the customer (we need their answer first): the resolution
    # clock stands still until they reply.
    wait_for_customer: bool = False

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
                                  ("hold for review", self.hold), ("stop", self.stop),
                                  ("wait for the customer", self.wait_for_customer)) if on]
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
    def names_critical(self) -> bool:
        """Its conditions name the critical priority (`priority = "critical"`): only such a
        rule may lower a critical assessment (a generic rule never does)."""
        from rules.conditions import names_priority

        return names_priority(self.when, "critical")

    @cached_property
    def _sentence(self) -> str:
        # Built once per rule, not once per request it fires on.
        why = self.reason or self.description or self.when.describe()
        return f"{self.name}: {why} -> {', '.join(self.then.effects())}"


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    source: str = "<built-in>"
    # The seed's priority table; empty: the shipped one (rules.loader.builtin_rules).
    table: tuple[Row, ...] = ()
    # Phrases facts are read with; None: the shipped lexicon.
    triage_lexicon: TriageLexicon | None = None

    @cached_property
    def priority_table(self) -> tuple[Row, ...]:
        if self.table:
            return self.table
        from rules.loader import builtin_rules

        return builtin_rules().table

    @cached_property
    def words(self) -> TriageLexicon:
        return self.triage_lexicon or shipped_lexicon()

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
    wait_for_customer: bool = False
    # honoured | raised | corrected, when the customer declared a priority.
    declared_outcome: str | None = None
    # The sentence to tell the customer when their declared priority was changed.
    customer_notice: str | None = None
    # Why the priority differs from the declared one, without the rule's name.
    change_reason: str | None = None
    trace: list[Hit] = field(default_factory=list)
    # The facts read from the customer's words, and the table row that assessed them.
    facts: TriageFacts | None = None
    row: str | None = None
    # change_reason in Russian, for a Russian letter.
    change_reason_ru: str | None = None
    # What the customer declared: headers and subject markers, else a statement in the text
    # ("Приоритет: средний", "Declared priority: high").
    declared: Priority | None = None
    # The deciding table row's reason, in English and Russian.
    row_reason: str | None = None
    row_reason_ru: str | None = None

    def why_in(self, language: str) -> str:
        """Why the request has its priority, in the customer's LANGUAGE: the table row's own
        words (a rule's trace is for admins and never reaches a customer)."""
        if self.facts is None or self.row_reason is None:
            return "подробности в вашем сообщении" if language == "ru" else "the details you sent"
        return self.row_reason_ru if language == "ru" and self.row_reason_ru else self.row_reason

    def change_reason_in(self, language: str) -> str | None:
        """Why the declared priority was changed, in LANGUAGE (ru or en)."""
        return self.change_reason_ru if language == "ru" and self.change_reason_ru else (
            self.change_reason)

    def as_json(self) -> dict[str, Any]:
        return {
            "request_type": self.request_type, "priority": self.priority,
            "reasons": list(self.reasons), "fired": list(self.fired), "tags": list(self.tags),
            "assign_engineer": self.assign_engineer, "copy_manager": self.copy_manager,
            "suppress_ack": self.suppress_ack, "hold": self.hold,
            "wait_for_customer": self.wait_for_customer,
            "declared_outcome": self.declared_outcome, "customer_notice": self.customer_notice,
            "facts": self.facts.as_json() if self.facts else None, "table_row": self.row,
            "trace": [{"rule": h.rule, "fired": h.fired, "error": h.error} for h in self.trace],
        }


def _apply(rule: Rule, facts: Facts) -> str | None:
    """Apply RULE's actions; a note when it tried to lower a critical assessment and may not."""
    before = facts.priority
    _set(rule.then, facts)
    if (before == "critical" and facts.priority != "critical" and not rule.names_critical):
        facts.priority = before
        return (f"{rule.name}: would lower the critical assessment; kept critical "
                "(a rule lowers critical only when its conditions name priority = \"critical\")")
    if before is not None and facts.priority != before:
        return f"{rule.name}: changed the assessed priority {before} -> {facts.priority}"
    return None


def _set(actions: Actions, facts: Facts) -> None:
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


def assess(facts: Facts, ruleset: RuleSet) -> tuple[Verdict | None, list[str]]:
    """The seed's table on the facts of the customer's own words: the assessed priority and
    type, set on FACTS before any admin rule runs, and the reasons that explain them."""
    request = facts.request
    triage = read_facts(request.subject, request.reply_text or request.text, ruleset.words)
    facts.triage = triage
    facts.request_type = triage.request_type.value
    verdict = decide(ruleset.priority_table, triage)
    reasons = [describe_facts(triage)]
    if verdict is not None:
        facts.priority = verdict.row.priority
        reasons.append(f"{verdict.row.name}: {verdict.row.reason} -> {verdict.row.priority}")
    return verdict, reasons


def describe_facts(triage: TriageFacts) -> str:
    """`facts: scope all ("ни один пользователь"), affected system ("войти"), ...`."""
    parts = []
    for name in ("scope", "affected", "severity", "workaround", "detail", "declared"):
        fact = getattr(triage, name)
        words = ", ".join(f'"{w}"' for w in fact.words[:3])
        parts.append(f"{name} {fact.value}" + (f" ({words})" if words else ""))
    return "facts: " + "; ".join(parts) + f"; type {triage.request_type.value}"


def evaluate_facts(facts: Facts, ruleset: RuleSet) -> Decision:
    facts.use(ruleset.scanner, ruleset.lexicon)
    verdict, reasons = assess(facts, ruleset)
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
        note = _apply(rule, facts)
        fired.append(rule.name)
        reasons.append(rule.sentence())
        if note:
            reasons.append(note)
        for name in rule.then.flags:
            flags[name] = True
        stopped = rule.then.stop
    request_type = facts.request_type or DEFAULT_TYPE
    if facts.request_type is None:
        reasons.append(f"default-type: no rule set a type -> {DEFAULT_TYPE}")
    priority = facts.priority or DEFAULT_PRIORITY
    if facts.priority is None:
        reasons.append(f"default-priority: no rule set a priority -> {DEFAULT_PRIORITY}")
    declared = facts.request.declared_priority or _stated(facts.triage)
    outcome, notice, why = _declared(declared, priority, reasons)
    why_ru = None
    if outcome and verdict is not None and priority == verdict.row.priority:
        # The table's own words, in the customer's language (a rule trace never reaches them).
        why, why_ru = verdict.row.reason, verdict.row.reason_ru or None
        notice = _notice(declared, priority, why)
    if outcome:
        reasons.append(f"declared-priority: the customer declared {declared} -> {outcome} "
                       "(the assessment wins, seed rule 3)")
    return Decision(request_type, priority, reasons, fired, list(facts.tags),  # type: ignore[arg-type]
                    declared_outcome=outcome, customer_notice=notice, change_reason=why,
                    trace=trace, facts=facts.triage,
                    row=verdict.row.name if verdict else None, change_reason_ru=why_ru,
                    row_reason=verdict.row.reason if verdict else None,
                    declared=declared,  # type: ignore[arg-type]
                    row_reason_ru=verdict.row.reason_ru if verdict else None, **flags)


def _stated(triage: TriageFacts | None) -> str | None:
    """A priority the customer wrote in the text ("Приоритет: средний", "P1!!!")."""
    return triage.declared.value if triage and triage.declared.value in PRIORITIES else None


def _notice(declared: str | None, priority: str, why: str) -> str | None:
    if declared is None or declared == priority:
        return None
    if rank(priority) < rank(declared):
        return f"The priority was raised from {declared} to {priority}: {why}."
    return f"The priority was set to {priority} instead of the declared {declared}: {why}."


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
