"""Text as rules see it: case-folded, Unicode-normalised (ё = е), tokenised and stemmed."""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import lru_cache

import Stemmer

_WORD = re.compile(r"\w+")
_CYRILLIC = re.compile(r"[а-я]")
_RUSSIAN = Stemmer.Stemmer("russian")
_ENGLISH = Stemmer.Stemmer("english")


def normalise(text: str) -> str:
    """NFKC, case-folded, ё as е: the form every text condition compares in."""
    return unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")


@lru_cache(maxsize=65536)
def stem(token: str) -> str:
    """The Snowball stem of one normalised token: Russian for Cyrillic words, else English."""
    stemmer = _RUSSIAN if _CYRILLIC.search(token) else _ENGLISH
    return str(stemmer.stemWord(token))


@dataclass(frozen=True)
class Text:
    """One field of a request prepared once for every rule: normalised, tokens, stems."""

    normalised: str
    tokens: tuple[str, ...]
    # Stem -> positions in `tokens`, ascending; phrase matching walks these.
    positions: dict[str, list[int]] = field(compare=False)
    # Token -> positions, for `word*` prefixes (distinct tokens are far fewer than tokens).
    by_token: dict[str, list[int]] = field(compare=False)
    # Prefix -> positions, filled as rules ask: many rules share prefixes like "сообщ*".
    prefixes: dict[str, list[int]] = field(compare=False, default_factory=dict)

    @classmethod
    def of(cls, raw: str) -> Text:
        normalised = normalise(raw)
        tokens = tuple(_WORD.findall(normalised))
        by_token: dict[str, list[int]] = {}
        for index, token in enumerate(tokens):
            by_token.setdefault(token, []).append(index)
        positions: dict[str, list[int]] = {}
        for token, found in by_token.items():
            positions.setdefault(stem(token), []).extend(found)
        for found in positions.values():
            found.sort()
        return cls(normalised, tokens, positions, by_token)

    def word_count(self) -> int:
        return len(self.tokens)


# A phrase's next word may follow the previous one with fewer than this many words between
# ("сообщения у части пользователей не доходят" still matches "сообщения не доходят").
PHRASE_GAP = 4


@dataclass(frozen=True)
class Term:
    """One word of a `words` phrase: a stem, or a prefix when the admin wrote `word*`."""

    value: str
    prefix: bool


def phrase_terms(phrase: str) -> tuple[Term, ...]:
    """`"перестал* работать"` -> (prefix "перестал", stem "работа")."""
    terms = []
    for raw in normalise(phrase).split():
        if raw.endswith("*") and raw.rstrip("*"):
            terms.append(Term(raw.rstrip("*"), True))
        else:
            for token in _WORD.findall(raw):
                terms.append(Term(stem(token), False))
    return tuple(terms)


def _term_positions(text: Text, term: Term) -> list[int]:
    if not term.prefix:
        return text.positions.get(term.value, [])
    found = text.prefixes.get(term.value)
    if found is None:
        found = sorted(p for token, positions in text.by_token.items()
                       if token.startswith(term.value) for p in positions)
        text.prefixes[term.value] = found
    return found


def has_phrase(text: Text, terms: tuple[Term, ...]) -> bool:
    """Whether the terms occur in order, each within PHRASE_GAP words of the previous one."""
    if not terms:
        return False
    starts = _term_positions(text, terms[0])
    if len(terms) == 1 or not starts:
        return bool(starts)
    rest = [_term_positions(text, term) for term in terms[1:]]
    if not all(rest):
        return False
    for start in starts:
        previous = start
        for positions in rest:
            # The first position after the previous word; it must be close enough.
            index = bisect_right(positions, previous)
            if index == len(positions) or positions[index] > previous + PHRASE_GAP:
                break
            previous = positions[index]
        else:
            return True
    return False
