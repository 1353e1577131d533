"""Text as rules see it: case-folded, Unicode-normalised (ё = е), tokenised and stemmed."""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache, partial
from itertools import compress
from operator import itemgetter

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


# ASCII bytes that are not `\w` become spaces; bytes of multi-byte UTF-8 sequences stay.
_SPACED = bytes(b if b >= 0x80 or _WORD.fullmatch(chr(b)) else 0x20 for b in range(256))
# Distinct tokens a text can name with one character each (see `Text._codes`).
_MAX_CODES = 0x110000


def tokenise(text: str) -> list[str]:
    """`_WORD.findall(text)` at half the cost: `\\w+` runs never contain whitespace or
    ASCII punctuation, so after the latter become spaces (one byte table, in C) `str.split`
    finds them, and a piece that is all `isalnum` (a subset of `\\w`) is one run as it is.
    The regex only runs on the rare pieces holding other characters (`_`, «, —)."""
    pieces = text.encode("utf-8", "surrogatepass").translate(_SPACED).decode(
        "utf-8", "surrogatepass").split()
    if all(map(str.isalnum, pieces)):
        return pieces
    tokens: list[str] = []
    for piece in pieces:
        if piece.isalnum():
            tokens.append(piece)
        else:
            tokens += _WORD.findall(piece)
    return tokens


class Text:
    """One field of a request prepared once for every rule: the normalised text at once, the
    tokens, stems and indexes on first use (only `words` conditions need them)."""

    def __init__(self, normalised: str, parts: tuple[Text, ...] = ()) -> None:
        self.normalised = normalised
        # Texts this one joins: its tokens are theirs, end to end.
        self._parts = parts
        # Prefix -> positions, filled as rules ask: many rules share prefixes like "сообщ*".
        self.prefixes: dict[str, list[int]] = {}
        # Stem -> positions, filled as phrases ask.
        self._stem_positions: dict[str, list[int]] = {}

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
        return tuple(tokenise(self.normalised))

    @cached_property
    def by_stem(self) -> dict[str, list[str]]:
        """Stem -> the distinct tokens with that stem."""
        by_stem: defaultdict[str, list[str]] = defaultdict(list)
        distinct = self._code
        for token, token_stem in zip(distinct, map(stem, distinct), strict=True):
            by_stem[token_stem].append(token)
        return by_stem

    @cached_property
    def stems(self) -> frozenset[str]:
        """Every stem in the text: a phrase missing one of its stems is rejected by a lookup."""
        return frozenset(self.by_stem)

    @cached_property
    def vocabulary(self) -> list[str]:
        """The distinct tokens, sorted: the tokens with one prefix are a contiguous run."""
        return sorted(self._code)

    @cached_property
    def _code(self) -> dict[str, str]:
        """Distinct token -> the character standing for it in `_codes`, in the order of first
        occurrence (empty beyond `_MAX_CODES` distinct tokens). Numbering the distinct tokens
        costs less than naming each by its last position: characters past 255 are new objects."""
        distinct = dict.fromkeys(self.tokens, "")
        if len(distinct) <= _MAX_CODES:
            distinct = dict(zip(distinct, map(chr, range(len(distinct))), strict=True))
        return distinct

    @cached_property
    def _codes(self) -> str:
        """The tokens as one character each: a token's positions are where `str.find` finds
        its character, in C, rather than an index of every token built in Python (costly, and
        phrases look up a few dozen tokens of the hundreds)."""
        tokens, code = self.tokens, self._code
        if len(tokens) < 2:  # itemgetter of one key returns the value, not a tuple
            return "".join(map(code.__getitem__, tokens))
        return "".join(itemgetter(*tokens)(code))

    def occurrences(self, tokens: list[str]) -> list[int]:
        """The positions of TOKENS (distinct tokens of the text), ascending."""
        codes, code = self._codes, self._code
        found: list[int] = []
        for token in tokens:
            character = code[token]
            if not character:  # too many distinct tokens for one character each
                found += [i for i, t in enumerate(self.tokens) if t == token]
                continue
            index = codes.find(character)
            while index >= 0:
                found.append(index)
                index = codes.find(character, index + 1)
        if len(tokens) > 1:
            found.sort()
        return found

    def stem_positions(self, value: str) -> list[int]:
        """Positions of the tokens with stem VALUE, ascending."""
        found = self._stem_positions.get(value)
        if found is None:
            found = self._stem_positions[value] = self.occurrences(self.by_stem.get(value, []))
        return found

    def prefix_positions(self, prefix: str) -> list[int]:
        """Positions of the tokens starting with PREFIX, ascending."""
        found = self.prefixes.get(prefix)
        if found is None:
            vocabulary = self.vocabulary
            index = end = bisect_left(vocabulary, prefix)
            while end < len(vocabulary) and vocabulary[end].startswith(prefix):
                end += 1
            found = self.prefixes[prefix] = self.occurrences(vocabulary[index:end])
        return found

    def has_prefix(self, prefix: str) -> bool:
        vocabulary = self.vocabulary
        index = bisect_left(vocabulary, prefix)
        return index < len(vocabulary) and vocabulary[index].startswith(prefix)

    def features(self, lexicon: Lexicon) -> Features:
        """The text's stems and LEXICON's prefixes its tokens start with."""
        distinct = list(self._code)
        return Features(self, lexicon, distinct, list(map(lexicon.entry, distinct)))

    def word_count(self) -> int:
        return len(self.tokens)


# Marks a prefix among the stems of a text's features. No stem holds it: Snowball only cuts
# endings off `\w` tokens and puts letters back.
PREFIX_MARK = "*"


def feature(term: Term) -> str:
    """How TERM shows in a text's features: its stem, or its prefix marked."""
    return term.value + PREFIX_MARK if term.prefix else term.value


class Lexicon:
    """A rule set's `word*` prefixes, and which of them each token starts with, remembered
    per token across requests (tokens recur from mail to mail): a text's prefixes are then
    one cached look-up per distinct token, not a bisection per prefix per condition."""

    def __init__(self, prefixes: Iterable[str], ordered: Iterable[str] = ()) -> None:
        self.prefixes = frozenset(prefixes)
        # The features of phrases of several words: only theirs are asked where they occur.
        self.ordered = frozenset(ordered)
        self._lengths = sorted({len(prefix) for prefix in self.prefixes})
        # A token's entry never changes for one rule set. Bounded: a full cache holds some
        # 6 MB; a miss costs a stem look-up and a few slices.
        self.entry: Callable[[str], tuple[frozenset[str], tuple[str, ...]]] = lru_cache(
            maxsize=16384)(self._entry)

    def __getstate__(self) -> dict[str, object]:
        # The per-token cache wraps a bound method, which does not pickle; a rule set used
        # here once (an explanation) is pickled for the worker processes, which build their
        # own cache.
        state = dict(self.__dict__)
        del state["entry"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.entry = lru_cache(maxsize=16384)(self._entry)

    @classmethod
    def of(cls, phrases: Iterable[tuple[Term, ...]]) -> Lexicon:
        """The lexicon of a rule set's `words` phrases."""
        phrases = list(phrases)
        return cls((t.value for terms in phrases for t in terms if t.prefix),
                   (feature(t) for terms in phrases if len(terms) > 1 for t in terms))

    def _entry(self, token: str) -> tuple[frozenset[str], tuple[str, ...]]:
        """TOKEN's features (its stem and, marked, the prefixes of the lexicon it starts
        with), and those of them that are ordered."""
        found = [stem(token)]
        for length in self._lengths:
            if length > len(token):
                break
            if token[:length] in self.prefixes:
                found.append(token[:length] + PREFIX_MARK)
        features = frozenset(found)
        return features, tuple(features & self.ordered)


class Features:
    """One text's features for one lexicon: every stem and, marked, every prefix its tokens
    start with (the union of its distinct tokens' features), and where each occurs."""

    def __init__(self, text: Text, lexicon: Lexicon, tokens: list[str],
                 entries: list[tuple[frozenset[str], tuple[str, ...]]]) -> None:
        self.found: frozenset[str] = frozenset().union(*map(itemgetter(0), entries))
        self._text = text
        self._lexicon = lexicon
        # The distinct tokens, and each one's lexicon entry.
        self._tokens = tokens
        self._entries = entries
        self._positions: dict[str, list[int]] = {}

    def positions(self, term: Term) -> list[int]:
        """Where TERM occurs, ascending."""
        key = feature(term)
        found = self._positions.get(key)
        if found is None:
            if key in self._lexicon.ordered:
                tokens = self._by_feature.get(key, [])
            else:  # a term of no phrase of the lexicon's: find its tokens one by one
                tokens = [t for t, (features, _) in zip(self._tokens, self._entries,
                                                        strict=True) if key in features]
            found = self._positions[key] = self._text.occurrences(tokens)
        return found

    @cached_property
    def _by_feature(self) -> dict[str, list[str]]:
        """Ordered feature -> the distinct tokens with it, in one pass over the few tokens
        that have one (most tokens' features are in no phrase of several words)."""
        by_feature: defaultdict[str, list[str]] = defaultdict(list)
        with_ordered = compress(zip(self._tokens, self._entries, strict=True),
                                map(itemgetter(1), self._entries))
        for token, (_, ordered) in with_ordered:
            for key in ordered:
                by_feature[key].append(token)
        return by_feature


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
    return text.prefix_positions(term.value) if term.prefix else text.stem_positions(term.value)


def has_phrase(positions: Callable[[Term], list[int]], terms: tuple[Term, ...]) -> bool:
    """Whether the terms occur in order, each within PHRASE_GAP words of the previous one;
    POSITIONS gives where a term occurs, ascending."""
    if not terms:
        return False
    starts = positions(terms[0])
    if len(terms) == 1 or not starts:
        return bool(starts)
    rest = [positions(term) for term in terms[1:]]
    if not all(rest):
        return False
    for start in starts:
        previous = start
        for found in rest:
            # The first position after the previous word; it must be close enough.
            index = bisect_right(found, previous)
            if index == len(found) or found[index] > previous + PHRASE_GAP:
                break
            previous = found[index]
        else:
            return True
    return False


@dataclass(frozen=True)
class Phrase:
    """A `words` phrase with what a text must have before its order is worth checking."""

    terms: tuple[Term, ...]
    stems: frozenset[str]
    prefixes: tuple[str, ...]
    # The stems and the marked prefixes, to compare with a text's features at once.
    needs: frozenset[str]

    @classmethod
    def of(cls, terms: tuple[Term, ...]) -> Phrase:
        stems = frozenset(t.value for t in terms if not t.prefix)
        prefixes = tuple(t.value for t in terms if t.prefix)
        return cls(terms, stems, prefixes, stems | {p + PREFIX_MARK for p in prefixes})

    def found_in(self, text: Text) -> bool:
        """`has_phrase`, after cheap set and prefix lookups rule most texts out. A phrase of
        one word is found by those lookups alone: the positions (costly to index) are only
        needed to check the order of several."""
        return (self.stems <= text.stems and all(map(text.has_prefix, self.prefixes))
                and (len(self.terms) == 1
                     or has_phrase(partial(_term_positions, text), self.terms)))

    def found_with(self, features: Features) -> bool:
        """`found_in` for the text of FEATURES, whose lexicon has this phrase's prefixes: one
        subset test instead of the lookups."""
        return self.needs <= features.found and (
            len(self.terms) == 1 or has_phrase(features.positions, self.terms))
