"""Words as triage reads them: tokens with their Russian lemmas or English stems, and phrases."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache

import Stemmer

from rules.text import normalise

# Words, numbers and the apostrophe-less pieces of "don't" ("don", "t"), as rules.text reads them.
_TOKEN = re.compile(r"[^\W_]+|%")
_CYRILLIC = re.compile(r"[а-я]")
_ENGLISH = Stemmer.Stemmer("english")
# A pattern term that matches any one token: "create * account".
ANY = "*"


@cache
def _morph() -> object:
    """pymorphy3's analyser with its Russian dictionary (shipped in the package, ~16 MB)."""
    import pymorphy3

    return pymorphy3.MorphAnalyzer(lang="ru")


@lru_cache(maxsize=32768)  # ~15 MB at most: unique tokens (numbers, hosts) churn
def keys(token: str) -> frozenset[str]:
    """The forms a token may be matched by: itself, and its lemmas (Russian: every dictionary
    reading pymorphy3 gives, so "пришли" is both "прийти" and "прислать") or English stem."""
    if _CYRILLIC.search(token):
        parses = _morph().parse(token)  # type: ignore[attr-defined]
        return frozenset([token, *(p.normal_form.replace("ё", "е") for p in parses[:4])])
    return frozenset((token, str(_ENGLISH.stemWord(token))))


def tokens(text: str) -> list[str]:
    """The normalised tokens of TEXT (case-folded, ё = е)."""
    return _TOKEN.findall(normalise(text))


@dataclass(frozen=True)
class Term:
    """One word of a phrase: exact (matched by lemma or stem), a prefix (`word*`), the very
    form written (`=word`: "=fixed" is not the imperative "fix") or any word (`*`)."""

    text: str
    prefix: bool
    surface: bool = False

    @classmethod
    def of(cls, word: str) -> Term:
        if word == ANY:
            return cls("", True)
        if word.startswith("="):
            return cls(word[1:], False, True)
        if word.endswith("*"):
            return cls(word[:-1], True)
        return cls(word, False)

    @property
    def forms(self) -> frozenset[str]:
        return keys(self.text)

    def matches(self, token_keys: frozenset[str], token: str) -> bool:
        if self.surface:
            return token == self.text
        if self.prefix:
            return any(k.startswith(self.text) for k in token_keys)
        return not self.forms.isdisjoint(token_keys)


@dataclass(frozen=True)
class Phrase:
    """A sequence of terms over consecutive tokens, labelled with what it means."""

    label: str
    source: str
    terms: tuple[Term, ...]

    @classmethod
    def of(cls, label: str, source: str) -> Phrase:
        terms: list[Term] = []
        for word in source.split():
            if word == ANY:
                terms.append(Term.of(ANY))
                continue
            mark = "=" if word.startswith("=") else ""
            pieces = tokens(word.lstrip("=").rstrip("*"))
            for i, piece in enumerate(pieces):
                last = i == len(pieces) - 1
                terms.append(Term.of(mark + piece + ("*" if last and word.endswith("*") else "")))
        if not terms or terms[0].text == "":
            raise ValueError(f"phrase {source!r}: needs a word first")
        return cls(label, source, tuple(terms))


@dataclass(frozen=True)
class Match:
    """Where a phrase was found: token positions [start, end)."""

    label: str
    source: str
    start: int
    end: int


class PhraseBook:
    """Every phrase of a lexicon, indexed so that a text is read in one pass.

    Each distinct term gets a number; a token's matching term numbers are found with a few
    dictionary look-ups (its forms, and each form's prefixes for `word*` terms) and remembered,
    so a word seen before costs one look-up. A phrase is tried only where its first term
    matched, and its other terms are set membership tests.
    """

    def __init__(self, phrases: Iterable[Phrase]) -> None:
        self.phrases = tuple(phrases)
        self._term_ids: dict[Term, int] = {}
        for phrase in self.phrases:
            for term in phrase.terms:
                self._term_ids.setdefault(term, len(self._term_ids))
        self._any = {i for t, i in self._term_ids.items() if t.prefix and not t.text}
        self._exact: dict[str, set[int]] = defaultdict(set)
        self._prefix: dict[str, set[int]] = defaultdict(set)
        self._surface: dict[str, set[int]] = defaultdict(set)
        for term, number in self._term_ids.items():
            if term.surface:
                self._surface[term.text].add(number)
            elif term.prefix and term.text:
                self._prefix[term.text].add(number)
            elif not term.prefix:
                for form in term.forms:
                    self._exact[form].add(number)
        self._longest_prefix = max((len(p) for p in self._prefix), default=0)
        self._starting: dict[int, list[tuple[Phrase, tuple[int, ...]]]] = defaultdict(list)
        for phrase in self.phrases:
            numbers = tuple(self._term_ids[t] for t in phrase.terms)
            self._starting[numbers[0]].append((phrase, numbers))
        self._token_terms: dict[str, frozenset[int]] = {}

    def __getstate__(self) -> dict[str, object]:
        # Pickled for the worker processes without the tokens remembered (rebuilt there).
        return {**self.__dict__, "_token_terms": {}}

    def terms_of(self, token: str) -> frozenset[int]:
        """The numbers of the terms TOKEN matches (remembered per token)."""
        found = self._token_terms.get(token)
        if found is None:
            numbers = set(self._any) | self._surface.get(token, set())
            for form in keys(token):
                numbers |= self._exact.get(form, set())
                for end in range(1, min(len(form), self._longest_prefix) + 1):
                    numbers |= self._prefix.get(form[:end], set())
            found = frozenset(numbers)
            if len(self._token_terms) > 50_000:  # a bound on memory (~10 MB) for odd inputs
                self._token_terms.clear()
            self._token_terms[token] = found
        return found

    def find(self, words: list[str]) -> Iterator[Match]:
        """Every occurrence of every phrase in WORDS (normalised tokens)."""
        matched = [self.terms_of(w) for w in words]
        count = len(words)
        for start, first in enumerate(matched):
            for number in first:
                for phrase, numbers in self._starting.get(number, ()):
                    end = start + len(numbers)
                    if end <= count and all(
                            n in matched[start + i] for i, n in enumerate(numbers[1:], 1)):
                        yield Match(phrase.label, phrase.source, start, end)
