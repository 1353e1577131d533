"""Conditions of the rule language: each one `check(facts) -> bool` and a short description."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from fnmatch import fnmatchcase
from typing import Literal, Protocol

from rules.facts import Facts
from rules.literals import required_literals
from rules.text import PREFIX_MARK, Phrase, Term, Text

Field = Literal["subject", "body", "text"]


class Condition(Protocol):
    def check(self, facts: Facts) -> bool:
        """Whether the condition holds for FACTS."""
        ...

    def describe(self) -> str:
        """What it tests, in words, for explanations."""
        ...


def _text(facts: Facts, field: Field) -> Text:
    return facts.part(field)


def literals(condition: Condition) -> Iterator[str]:
    """Every literal string CONDITION's `contains` and `regex` tests look for, for one scan."""
    if isinstance(condition, Contains):
        yield from condition.needles
    elif isinstance(condition, Regex):
        for needed in condition.required:
            yield from needed or ()
    elif isinstance(condition, All | AnyOf):
        for part in condition.parts:
            yield from literals(part)
    elif isinstance(condition, Not):
        yield from literals(condition.part)


def phrases(condition: Condition) -> Iterator[tuple[Term, ...]]:
    """Every phrase of CONDITION's `words` tests, for one lexicon."""
    if isinstance(condition, Words):
        yield from condition.phrases
    elif isinstance(condition, All | AnyOf):
        for part in condition.parts:
            yield from phrases(part)
    elif isinstance(condition, Not):
        yield from phrases(condition.part)


def names_priority(condition: Condition, priority: str) -> bool:
    """CONDITION tests `priority` for PRIORITY somewhere (not under a `not`)."""
    if isinstance(condition, OneOf):
        return condition.what == "priority" and priority in condition.values
    if isinstance(condition, All | AnyOf):
        return any(names_priority(part, priority) for part in condition.parts)
    return False


def _any_glob(value: str | None, globs: tuple[str, ...]) -> bool:
    return value is not None and any(fnmatchcase(value, g) for g in globs)


@dataclass(frozen=True)
class OneOf:
    """A request attribute is one of the listed values (globs for customer and sender)."""

    what: Literal["channel", "customer", "tier", "sender", "sender_domain", "declared_priority",
                  "priority", "type"]
    values: tuple[str, ...]

    def check(self, facts: Facts) -> bool:
        value = {
            "channel": facts.request.channel,
            "customer": facts.sender.customer,
            "tier": facts.sender.tier,
            "sender": facts.address,
            "sender_domain": facts.domain,
            "declared_priority": facts.request.declared_priority or "none",
            "priority": facts.priority or "none",
            "type": facts.request_type or "none",
        }[self.what]
        return _any_glob(value.lower() if value else value, self.values)

    def describe(self) -> str:
        return f"{self.what} is {' or '.join(self.values)}"


@dataclass(frozen=True)
class Contains:
    field: Field
    needles: tuple[str, ...]

    def check(self, facts: Facts) -> bool:
        found = facts.literals_in(self.field)
        if found is not None:  # the rule set's scanner looked for every needle at once
            return not found.isdisjoint(self.needles)
        haystack = _text(facts, self.field).normalised
        return any(needle in haystack for needle in self.needles)

    def describe(self) -> str:
        return f"{self.field} contains {' or '.join(repr(n) for n in self.needles)}"


@dataclass(frozen=True)
class Words:
    """Stemmed phrases: "не работает" also finds "не работают"."""

    field: Field
    phrases: tuple[tuple[Term, ...], ...]
    written: tuple[str, ...]
    compiled: tuple[Phrase, ...] = dataclass_field(init=False, repr=False,
                                                    compare=False)
    # Phrases of one `word*` (most of the default set's): a prefix look-up each, without
    # the phrase machinery; the rest go through `Phrase.found_in`.
    lone_prefixes: tuple[str, ...] = dataclass_field(init=False, repr=False, compare=False)
    # The same, marked as in a text's features: one set test for all of them.
    lone_marked: frozenset[str] = dataclass_field(init=False, repr=False, compare=False)
    # The other phrases by one stem each must have (a phrase is only worth checking in a
    # text with that stem: one set intersection rules most of them out), and those of
    # prefixes alone.
    by_stem: dict[str, tuple[Phrase, ...]] = dataclass_field(init=False, repr=False,
                                                             compare=False)
    anchors: frozenset[str] = dataclass_field(init=False, repr=False, compare=False)
    unanchored: tuple[Phrase, ...] = dataclass_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = tuple(p for p in map(Phrase.of, self.phrases)
                         if not (len(p.terms) == 1 and p.terms[0].prefix))
        lone = tuple(dict.fromkeys(
            t[0].value for t in self.phrases if len(t) == 1 and t[0].prefix))
        by_stem: dict[str, list[Phrase]] = {}
        for phrase in compiled:
            if phrase.stems:
                # The longest stem: short ones ("не", "в") are in most texts.
                anchor = max(phrase.stems, key=lambda stem: (len(stem), stem))
                by_stem.setdefault(anchor, []).append(phrase)
        object.__setattr__(self, "lone_prefixes", lone)
        object.__setattr__(self, "lone_marked", frozenset(p + PREFIX_MARK for p in lone))
        object.__setattr__(self, "compiled", compiled)
        object.__setattr__(self, "by_stem", {k: tuple(v) for k, v in by_stem.items()})
        object.__setattr__(self, "anchors", frozenset(by_stem))
        object.__setattr__(self, "unanchored", tuple(p for p in compiled if not p.stems))

    def check(self, facts: Facts) -> bool:
        text = _text(facts, self.field)
        features = facts.features_in(self.field)
        if features is None:  # no rule set's lexicon: look each stem and prefix up
            return self._check_each(text)
        found = features.found
        if not self.lone_marked.isdisjoint(found):
            return True
        for anchor in self.anchors & found:
            if any(phrase.found_with(features) for phrase in self.by_stem[anchor]):
                return True
        return any(phrase.found_with(features) for phrase in self.unanchored)

    def _check_each(self, text: Text) -> bool:
        if any(map(text.has_prefix, self.lone_prefixes)):
            return True
        for anchor in self.anchors & text.stems:
            if any(phrase.found_in(text) for phrase in self.by_stem[anchor]):
                return True
        return any(phrase.found_in(text) for phrase in self.unanchored)

    def describe(self) -> str:
        return f"{self.field} has the words {' or '.join(repr(w) for w in self.written)}"


@dataclass(frozen=True)
class Regex:
    field: Field
    patterns: tuple[re.Pattern[str], ...]
    # Per pattern: strings one of which every match contains (None: not known).
    required: tuple[frozenset[str] | None, ...] = dataclass_field(init=False, repr=False,
                                                                  compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "required", tuple(map(required_literals, self.patterns)))

    def check(self, facts: Facts) -> bool:
        found = facts.literals_in(self.field)
        text = _text(facts, self.field).normalised
        for pattern, needed in zip(self.patterns, self.required, strict=True):
            # Without any of the strings it needs the pattern cannot match: skip the search.
            if found is not None and needed is not None and found.isdisjoint(needed):
                continue
            if pattern.search(text):
                return True
        return False

    def describe(self) -> str:
        return f"{self.field} matches {' or '.join(repr(p.pattern) for p in self.patterns)}"


@dataclass(frozen=True)
class Header:
    """A header's value (normalised) contains a string, matches a glob or a regex."""

    name: str
    contains: str | None = None
    glob: str | None = None
    regex: re.Pattern[str] | None = None

    def check(self, facts: Facts) -> bool:
        for value in facts.headers.get(self.name, []):
            if self.contains is not None and self.contains in value:
                return True
            if self.glob is not None and fnmatchcase(value, self.glob):
                return True
            if self.regex is not None and self.regex.search(value):
                return True
        return False

    def describe(self) -> str:
        test = (f"contains {self.contains!r}" if self.contains is not None else
                f"matches {self.glob!r}" if self.glob is not None else
                f"matches /{self.regex.pattern if self.regex else ''}/")
        return f"header {self.name} {test}"


@dataclass(frozen=True)
class Attachment:
    """Some attachment's content type or file name matches a glob."""

    what: Literal["type", "name"]
    globs: tuple[str, ...]

    def check(self, facts: Facts) -> bool:
        for attachment in facts.request.attachments:
            value = attachment.content_type if self.what == "type" else attachment.filename
            if _any_glob(value.lower() if value else None, self.globs):
                return True
        return False

    def describe(self) -> str:
        return f"an attachment {self.what} matches {' or '.join(self.globs)}"


@dataclass(frozen=True)
class Flag:
    """A yes/no fact: has attachments, known customer, inside working hours."""

    what: Literal["has_attachments", "known_customer", "working_hours"]
    expected: bool

    def check(self, facts: Facts) -> bool:
        actual = {
            "has_attachments": bool(facts.request.attachments),
            "known_customer": facts.sender.customer is not None,
            "working_hours": facts.in_working_hours,
        }[self.what]
        # Unknown (no clock given) matches neither true nor false.
        return actual is not None and actual == self.expected

    def describe(self) -> str:
        return f"{self.what} is {'true' if self.expected else 'false'}"


# The seed's facts a condition may name (see rules.triage.facts): `scope = "all"`.
TRIAGE_FACTS = ("scope", "function", "affected", "severity", "workaround", "detail", "impact")


@dataclass(frozen=True)
class FactIs:
    """One of the triage facts has one of the listed values: `function = ["calls"]`."""

    what: str
    values: tuple[str, ...]

    def check(self, facts: Facts) -> bool:
        triage = facts.triage
        if triage is None:
            return False
        value = triage.function if self.what == "function" else {
            "scope": triage.scope, "affected": triage.affected, "severity": triage.severity,
            "workaround": triage.workaround, "detail": triage.detail, "impact": triage.impact,
        }[self.what].value
        return value in self.values

    def describe(self) -> str:
        return f"{self.what} is {' or '.join(self.values)}"


@dataclass(frozen=True)
class WordCount:
    """The body's word count, after quoted history and signature are stripped."""

    below: int | None = None
    at_least: int | None = None

    def check(self, facts: Facts) -> bool:
        count = facts.body.word_count()
        if self.below is not None and count >= self.below:
            return False
        return self.at_least is None or count >= self.at_least

    def describe(self) -> str:
        if self.below is not None:
            return f"the body has fewer than {self.below} words"
        return f"the body has at least {self.at_least} words"


@dataclass(frozen=True)
class All:
    parts: tuple[Condition, ...]

    def check(self, facts: Facts) -> bool:
        return all(part.check(facts) for part in self.parts)

    def describe(self) -> str:
        return " and ".join(part.describe() for part in self.parts) or "always"


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Condition, ...]

    def check(self, facts: Facts) -> bool:
        return any(part.check(facts) for part in self.parts)

    def describe(self) -> str:
        return "(" + " or ".join(part.describe() for part in self.parts) + ")"


@dataclass(frozen=True)
class Not:
    part: Condition

    def check(self, facts: Facts) -> bool:
        return not self.part.check(facts)

    def describe(self) -> str:
        return f"not ({self.part.describe()})"
