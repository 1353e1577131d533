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


@lru_cache(maxsize=131072)
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
    """Every phrase of a lexicon, indexed by the first letters of its first word."""

    def __init__(self, phrases: Iterable[Phrase]) -> None:
        self.phrases = tuple(phrases)
        self._by_head: dict[str, list[Phrase]] = defaultdict(list)
        for phrase in self.phrases:
            self._by_head[phrase.terms[0].text[:2]].append(phrase)

    def find(self, words: list[str]) -> Iterator[Match]:
        """Every occurrence of every phrase in WORDS (normalised tokens)."""
        word_keys = [keys(w) for w in words]
        for start, first in enumerate(word_keys):
            candidates: dict[int, Phrase] = {}
            for head in {k[:2] for k in first}:
                for phrase in self._by_head.get(head, ()):
                    candidates[id(phrase)] = phrase
            for phrase in candidates.values():
                end = start + len(phrase.terms)
                if end <= len(words) and all(term.matches(word_keys[start + i], words[start + i])
                                             for i, term in enumerate(phrase.terms)):
                    yield Match(phrase.label, phrase.source, start, end)
