"""Text as rules see it: case-folded, Unicode-normalised (ё = е), tokenised and stemmed."""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property, lru_cache

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


class Text:
    """One field of a request prepared once for every rule: the normalised text at once, the
    tokens, stems and indexes on first use (only `words` conditions need them)."""

    def __init__(self, normalised: str, parts: tuple[Text, ...] = ()) -> None:
        self.normalised = normalised
        # Texts this one joins: its tokens are theirs, end to end.
        self._parts = parts
        # Prefix -> positions, filled as rules ask: many rules share prefixes like "сообщ*".
        self.prefixes: dict[str, list[int]] = {}

    @classmethod
    def of(cls, raw: str) -> Text:
        return cls(normalise(raw))

    @classmethod
    def joined(cls, first: Text, second: Text) -> Text:
        """`Text.of(f"{a}\\n{b}")` from the two parts: NFKC and case folding do not reach
        across a newline and no token contains one, so nothing is normalised twice."""
        return cls(f"{first.normalised}\n{second.normalised}", (first, second))

    @cached_property
    def tokens(self) -> tuple[str, ...]:
        if self._parts:
            return sum((part.tokens for part in self._parts), ())
        return tuple(_WORD.findall(self.normalised))

    @cached_property
    def by_token(self) -> dict[str, list[int]]:
        """Token -> positions, for `word*` prefixes (distinct tokens are far fewer)."""
        # A defaultdict: setdefault would make an empty list for every token, found or not.
        by_token: defaultdict[str, list[int]] = defaultdict(list)
        for index, token in enumerate(self.tokens):
            by_token[token].append(index)
        return by_token

    @cached_property
    def positions(self) -> dict[str, list[int]]:
        """Stem -> positions in `tokens`, ascending; phrase matching walks these."""
        positions: defaultdict[str, list[int]] = defaultdict(list)
        for token, found in self.by_token.items():
            positions[stem(token)].extend(found)
        for found in positions.values():
            found.sort()
        return positions

    @cached_property
    def stems(self) -> frozenset[str]:
        """Every stem in the text: a phrase missing one of its stems is rejected by a lookup."""
        return frozenset(map(stem, set(self.tokens)))

    @cached_property
    def vocabulary(self) -> list[str]:
        """The distinct tokens, sorted: the tokens with one prefix are a contiguous run."""
        return sorted(set(self.tokens))

    def has_prefix(self, prefix: str) -> bool:
        vocabulary = self.vocabulary
        index = bisect_left(vocabulary, prefix)
        return index < len(vocabulary) and vocabulary[index].startswith(prefix)

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
        vocabulary, by_token = text.vocabulary, text.by_token
        index = bisect_left(vocabulary, term.value)
        found = []
        while index < len(vocabulary) and vocabulary[index].startswith(term.value):
            found += by_token[vocabulary[index]]
            index += 1
        found.sort()
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


@dataclass(frozen=True)
class Phrase:
    """A `words` phrase with what a text must have before its order is worth checking."""

    terms: tuple[Term, ...]
    stems: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def of(cls, terms: tuple[Term, ...]) -> Phrase:
        return cls(terms, frozenset(t.value for t in terms if not t.prefix),
                   tuple(t.value for t in terms if t.prefix))

    def found_in(self, text: Text) -> bool:
        """`has_phrase`, after cheap set and prefix lookups rule most texts out. A phrase of
        one word is found by those lookups alone: the positions (costly to index) are only
        needed to check the order of several."""
        return (self.stems <= text.stems and all(map(text.has_prefix, self.prefixes))
                and (len(self.terms) == 1 or has_phrase(text, self.terms)))
