"""The triage lexicon: labelled phrases from TOML (the shipped file plus an admin's additions)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib.resources import files
from typing import Any

from rules.triage.words import Match, Phrase, PhraseBook, tokens

SHIPPED = "lexicon.toml"
# The order a segment's functions are chosen in when it names several: the more specific
# first ("call statistics" is metrics, "push notifications for messages" is notifications).
FUNCTION_ORDER = ("documentation", "dlps", "metrics", "admin_console", "routing", "other",
                  "smartapp", "chatbot", "notifications", "file_transfer", "calls", "messaging",
                  "client")
# What the seed says of each function it names (TRIAGE.md): its failure is high or medium.
HIGH_FUNCTIONS = frozenset({"messaging", "calls", "smartapp", "chatbot", "dlps", "notifications",
                            "file_transfer"})
MEDIUM_FUNCTIONS = frozenset({"metrics", "admin_console", "routing"})
# Categories whose overlapping matches keep only the longest (so "обходного варианта нет" is
# not also "обходной вариант").
CATEGORIES = ("scope", "function", "system", "polarity", "severity", "workaround", "detail",
              "time", "type", "declared")


@dataclass(frozen=True)
class Lexicon:
    """Labelled phrases ("scope.all", "function.calls", ...) in one phrase book."""

    book: PhraseBook
    # Clauses already read with this lexicon (rules.triage.reading._read).
    clauses: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        # A rule set travels to the worker processes pickled: the clauses remembered here are
        # rebuilt there, not shipped (they grow to tens of megabytes in a running daemon).
        return {**self.__dict__, "clauses": {}}

    def find(self, words: list[str]) -> dict[str, list[Match]]:
        """Matches by label; within a category, a match inside a longer one is dropped."""
        found: dict[str, list[Match]] = {}
        by_category: dict[str, list[Match]] = {}
        for match in self.book.find(words):
            by_category.setdefault(match.label.partition(".")[0], []).append(match)
        for category, unsorted in by_category.items():
            matches = sorted(unsorted, key=lambda m: (m.start - m.end, m.start))
            taken: list[Match] = []
            for match in matches:
                # A negation may also be a failure ("notifications stopped" / "stopped
                # working"): both stand; otherwise the longer polarity word wins.
                if category == "polarity" and any(
                        t.start <= match.start and match.end <= t.end and t.label != match.label
                        and "polarity.negators" not in (t.label, match.label) for t in taken):
                    continue
                if category not in ("polarity", "function") and any(
                        t.start <= match.start and match.end <= t.end
                        and (t.start, t.end) != (match.start, match.end) for t in taken):
                    continue
                taken.append(match)
            for match in taken:
                found.setdefault(match.label, []).append(match)
        return found

    @cached_property
    def declarations(self) -> Lexicon:
        """The declared-priority phrases alone: the head lines of a text are read whole for
        them ("Приоритет: средний"), and a book of a few dozen phrases reads a line in a
        fraction of the whole book's time, with the same matches (categories never mix)."""
        return Lexicon(PhraseBook(p for p in self.book.phrases if p.label.startswith("declared.")))

    def labels(self, category: str) -> list[str]:
        return sorted({p.label for p in self.book.phrases if p.label.startswith(category + ".")})

    @cached_property
    def function_order(self) -> tuple[str, ...]:
        """The functions' names in the order a segment picks them (see FUNCTION_ORDER)."""
        return function_order(label.split(".", 1)[1] for label in self.labels("function"))


def parse_lexicon(data: Mapping[str, object], extra: Mapping[str, object] | None = None,
                  source: str = SHIPPED) -> Lexicon:
    """DATA's `[category] label = [phrases]`, with EXTRA's phrases added to the same labels."""
    phrases: dict[str, list[Phrase]] = {}
    for table in (data, extra or {}):
        for category, labels in table.items():
            if not isinstance(labels, Mapping):
                raise ValueError(f"{source}: [{category}] must be a table of phrase lists")
            for label, words in labels.items():
                if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                    raise ValueError(f"{source}: {category}.{label} must be a list of strings")
                phrases.setdefault(category, []).extend(
                    Phrase.of(f"{category}.{label}", w) for w in words if tokens(w.rstrip("*")))
    return Lexicon(PhraseBook(p for found in phrases.values() for p in found))


@cache
def shipped_data() -> dict[str, object]:
    return tomllib.loads(files("rules.triage").joinpath(SHIPPED).read_text(encoding="utf-8"))


@cache
def shipped_lexicon() -> Lexicon:
    """The lexicon the package ships, read once."""
    return parse_lexicon(shipped_data())


def with_additions(additions: Mapping[str, object] | None) -> Lexicon:
    """The shipped lexicon, plus an admin's `[lexicon]` phrases (new functions among them)."""
    return shipped_lexicon() if not additions else parse_lexicon(shipped_data(), additions)


def function_order(names: Iterable[str]) -> tuple[str, ...]:
    """FUNCTION_ORDER, then any functions an admin configured, in name order."""
    extra = sorted(set(names) - set(FUNCTION_ORDER))
    return tuple(extra) + FUNCTION_ORDER
