"""Literal strings found in one pass: a rule set's needles and the strings its regexes need."""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import product
from typing import Any

import ahocorasick

# The regex parser behind `re.compile`; private but stable since 3.11, and only read here.
from re import _parser  # type: ignore[attr-defined]  # isort: skip

# A cross product of alternatives larger than this is not worth tracking exactly.
_MAX_EXACT = 64


class _Info:
    """What one piece of a regex matches: exactly one of EXACT, or something containing one
    of REQUIRED (None: no literal is known to be needed)."""

    __slots__ = ("exact", "required")

    def __init__(self, exact: frozenset[str] | None, required: frozenset[str] | None) -> None:
        self.exact = exact
        self.required = required if exact is None else _as_required(exact)


def _as_required(strings: frozenset[str] | None) -> frozenset[str] | None:
    # "" among the alternatives means the piece may match without any literal.
    return strings if strings and "" not in strings else None


def _better(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    """The more selective of two required sets: longer shortest string, then fewer strings."""
    if a is None or b is None:
        return a or b
    key_a, key_b = (min(map(len, a)), -len(a)), (min(map(len, b)), -len(b))
    return a if key_a >= key_b else b


_UNKNOWN = _Info(None, None)
_EMPTY = _Info(frozenset({""}), None)


def _sequence(items: Any) -> _Info:
    exact: frozenset[str] | None = frozenset({""})
    run: frozenset[str] | None = frozenset({""})  # exact strings of the current literal run
    best: frozenset[str] | None = None
    for op, av in items:
        info = _item(op, av)
        if info.exact is not None and run is not None and len(run) * len(info.exact) <= _MAX_EXACT:
            run = frozenset(a + b for a, b in product(run, info.exact))
        else:
            # The run ends here; whatever it needed, any match needs.
            best = _better(best, _as_required(run))
            best = _better(best, info.required)
            run = info.exact
            exact = None
        if exact is not None:
            exact = run
    best = _better(best, _as_required(run))
    return _Info(exact, None) if exact is not None else _Info(None, best)


def _item(op: Any, av: Any) -> _Info:
    if op is _parser.LITERAL:
        return _Info(frozenset({chr(av)}), None)
    if op in (_parser.AT, _parser.ASSERT, _parser.ASSERT_NOT):
        return _EMPTY  # zero width: adds no characters to the match
    if op is _parser.IN:
        if all(kind is _parser.LITERAL for kind, _ in av) and len(av) <= _MAX_EXACT:
            return _Info(frozenset(chr(c) for _, c in av), None)
        return _UNKNOWN
    if op is _parser.SUBPATTERN:
        _group, add_flags, _del_flags, pattern = av
        if add_flags & re.IGNORECASE:
            return _UNKNOWN
        return _sequence(pattern)
    if op is _parser.ATOMIC_GROUP:
        return _sequence(av)
    if op is _parser.BRANCH:
        branches = [_sequence(branch) for branch in av[1]]
        if all(b.exact is not None for b in branches):
            union = frozenset().union(*(b.exact for b in branches))  # type: ignore[arg-type]
            if len(union) <= _MAX_EXACT:
                return _Info(union, None)
        if all(b.required is not None for b in branches):
            return _Info(None, frozenset().union(*(b.required for b in branches)))  # type: ignore[arg-type]
        return _UNKNOWN
    if op in (_parser.MAX_REPEAT, _parser.MIN_REPEAT, _parser.POSSESSIVE_REPEAT):
        low, high, pattern = av
        inner = _sequence(pattern)
        if low == high == 1:
            return inner
        return _Info(None, inner.required) if low >= 1 else _UNKNOWN
    return _UNKNOWN


def required_literals(pattern: re.Pattern[str]) -> frozenset[str] | None:
    """Strings one of which occurs in every match of PATTERN, or None when none is known.

    A text containing none of them cannot match, so the regex need not run on it."""
    if pattern.flags & re.IGNORECASE:
        return None
    try:
        parsed = _parser.parse(pattern.pattern, pattern.flags & ~re.UNICODE)
    except Exception:  # an internal API changed: just run the regex every time
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    return _sequence(parsed.data).required


class Scanner:
    """Which of a fixed set of literal strings occur in a text, in one Aho-Corasick pass."""

    def __init__(self, literals: Iterable[str]) -> None:
        self.vocabulary = frozenset(literal for literal in literals if literal)
        # Only these can straddle the newline between two joined texts (see `joined`).
        self._multiline = tuple(literal for literal in self.vocabulary if "\n" in literal)
        self._automaton: Any = None
        if self.vocabulary:
            self._automaton = ahocorasick.Automaton()
            for literal in self.vocabulary:
                self._automaton.add_word(literal, literal)
            self._automaton.make_automaton()

    def scan(self, text: str) -> frozenset[str]:
        """The literals of the vocabulary found in TEXT; "" is always found."""
        if self._automaton is None:
            return frozenset({""})
        found = {literal for _end, literal in self._automaton.iter(text)}
        found.add("")
        return frozenset(found)

    def joined(self, first: frozenset[str], second: frozenset[str], text: str) -> frozenset[str]:
        """`scan(text)` where TEXT is two texts joined by a newline and FIRST and SECOND are
        their scans: a literal found across the join contains that newline."""
        return first | second | {literal for literal in self._multiline if literal in text}
