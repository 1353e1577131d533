"""The fast matching structures give the same answers as the straightforward checks."""

from __future__ import annotations

import re
import sys
from bisect import bisect_right
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rules.text
from rules.conditions import Regex, Words
from rules.corpus import read_request
from rules.engine import Decision, RuleSet, evaluate
from rules.facts import Facts
from rules.literals import Scanner, required_literals
from rules.loader import builtin_rules, parse_rules
from rules.text import (
    PHRASE_GAP,
    PREFIX_MARK,
    Lexicon,
    Phrase,
    Term,
    Text,
    normalise,
    phrase_terms,
    stem,
    tokenise,
)

ROOT = Path(__file__).resolve().parent.parent.parent
CORPUS = ROOT / "tests" / "data" / "requests"
sys.path.insert(0, str(ROOT / "bench"))
from rules_eval import make_message, make_rules  # noqa: E402

# Words and forms that stem together or share prefixes, so random texts hit phrases often.
VOCABULARY = ["не", "работает", "работают", "работать", "перестали", "перестал", "сообщения",
              "сообщение", "доходят", "доход", "звонки", "обрываются", "calls", "call", "drop",
              "dropped", "drops", "error", "errors", "code", "ещё", "ЕЩЕ", "Ёлка", "у", "всех",
              "the", "timeout", "таймаут", "#5", "5", "модуль5", "one-way", "audio"]
SEPARATORS = [" ", "  ", ", ", ".\n", "\n", " - ", "ǅ", "\u0301", "ﬁ"]
texts = st.lists(st.tuples(st.sampled_from(VOCABULARY), st.sampled_from(SEPARATORS)),
                 max_size=40).map(lambda parts: "".join(w + s for w, s in parts))


def reference_has_phrase(raw: str, terms: tuple[Term, ...]) -> bool:
    """The phrase test as first written: positions from a plain walk over every token."""
    tokens = re.findall(r"\w+", normalise(raw))

    def positions(term: Term) -> list[int]:
        return [i for i, token in enumerate(tokens)
                if (token.startswith(term.value) if term.prefix else stem(token) == term.value)]

    if not terms:
        return False
    rest = [positions(term) for term in terms[1:]]
    for start in positions(terms[0]):
        previous = start
        for found in rest:
            index = bisect_right(found, previous)
            if index == len(found) or found[index] > previous + PHRASE_GAP:
                break
            previous = found[index]
        else:
            return True
    return False


def corpus_texts() -> list[str]:
    found = []
    for path in sorted(CORPUS.iterdir()):
        if path.suffix in (".eml", ".json"):
            request = read_request(path)[0]
            found.append(f"{request.subject or ''}\n{request.reply_text or request.text}")
    return found


@settings(max_examples=300, deadline=None)
@given(texts, st.lists(st.sampled_from([*VOCABULARY, "перестал*", "сообщ*", "drop*", "раб*"]),
                       min_size=1, max_size=3))
def test_phrase_lookup_equals_the_plain_walk(raw: str, words: list[str]) -> None:
    terms = phrase_terms(" ".join(words))
    assert Phrase.of(terms).found_in(Text.of(raw)) == reference_has_phrase(raw, terms)


def test_phrase_lookup_equals_the_plain_walk_on_the_corpus() -> None:
    """Every phrase of the default rules on every labelled request, subject and body joined."""
    phrases = {terms for rule in builtin_rules().rules for terms in _phrases(rule.when)}
    for raw in corpus_texts():
        text = Text.of(raw)
        for terms in phrases:
            assert Phrase.of(terms).found_in(text) == reference_has_phrase(raw, terms), (
                raw[:60], terms)


def _phrases(condition: object) -> list[tuple[Term, ...]]:
    if isinstance(condition, Words):
        return list(condition.phrases)
    parts = getattr(condition, "parts", None) or [getattr(condition, "part", None)]
    return [p for part in parts if part is not None for p in _phrases(part)]


@settings(max_examples=300, deadline=None)
@given(texts, texts)
def test_joined_text_equals_the_text_of_the_concatenation(first: str, second: str) -> None:
    joined = Text.joined(Text.of(first), Text.of(second))
    plain = Text.of(f"{first}\n{second}")
    assert (joined.normalised, joined.tokens) == (plain.normalised, plain.tokens)
    assert joined.by_stem == plain.by_stem
    for value in plain.stems:
        assert joined.stem_positions(value) == plain.stem_positions(value)


@settings(max_examples=300, deadline=None)
@given(st.one_of(texts, st.text()))
def test_tokenise_equals_the_word_regex(raw: str) -> None:
    text = normalise(raw)
    assert tokenise(text) == re.findall(r"\w+", text)


def test_tokenise_relies_only_on_what_holds_for_every_character() -> None:
    """Whitespace is never `\\w`, an `isalnum` character always is (so a piece of those is one
    token), and the byte table spaces exactly the ASCII characters that are not `\\w`."""
    every = "".join(map(chr, range(0x110000)))
    assert not re.findall(r"\w", "".join(c for c in every if c.isspace()))
    assert re.sub(r"\w", "", "".join(c for c in every if c.isalnum())) == ""
    assert all(rules.text._SPACED[b] == (0x20 if b < 0x80 and not re.fullmatch(r"\w", chr(b))
                                         else b) for b in range(0x100))


@pytest.mark.parametrize("text", ["", "snake_case и_т_д", "«цитата» — тире № 5", "a\ud800b c",
                                  "x²·y³ ½", "٣٤ ७ ǅ ﬁ", "\x00a\x1fb\x85c\u2028d"])
def test_tokenise_equals_the_word_regex_on_odd_characters(text: str) -> None:
    assert tokenise(text) == re.findall(r"\w+", text)


@settings(max_examples=300, deadline=None)
@given(texts, st.sampled_from([*VOCABULARY, "перестал*", "сообщ*", "drop*", "раб*"]))
def test_positions_equal_the_plain_walk(raw: str, word: str) -> None:
    """A term's positions, also when a text has too many distinct tokens for one character
    each."""
    tokens = re.findall(r"\w+", normalise(raw))
    for term in phrase_terms(word):
        expected = [i for i, token in enumerate(tokens)
                    if (token.startswith(term.value) if term.prefix else stem(token) == term.value)]
        for max_codes in (rules.text._MAX_CODES, 2):
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(rules.text, "_MAX_CODES", max_codes)
                text = Text.of(raw)
                found = (text.prefix_positions if term.prefix else text.stem_positions)(term.value)
            assert found == expected


PREFIXES = ["перестал", "сообщ", "drop", "раб", "р", "работают", "e", "one-way", "a*b", "#5"]


@settings(max_examples=300, deadline=None)
@given(texts, st.lists(st.sampled_from(PREFIXES), max_size=5),
       st.lists(st.sampled_from([*VOCABULARY, *(p + "*" for p in PREFIXES)]), min_size=1,
                max_size=3))
def test_features_equal_the_stems_and_prefix_lookups(raw: str, prefixes: list[str],
                                                     words: list[str]) -> None:
    """A lexicon's features of a text are its stems and, marked, the prefixes `has_prefix`
    finds; a phrase found with them is found without, and term positions agree."""
    text = Text.of(raw)
    terms = phrase_terms(" ".join(words))
    # The phrase's own lexicon (its terms ordered when it has several), and one that knows
    # its prefixes but orders nothing.
    for lexicon in (Lexicon.of([terms, *((Term(p, True),) for p in prefixes)]),
                    Lexicon([*prefixes, *(t.value for t in terms if t.prefix)])):
        features = text.features(lexicon)
        assert features.found == text.stems | {p + PREFIX_MARK for p in lexicon.prefixes
                                               if text.has_prefix(p)}
        assert Phrase.of(terms).found_with(features) == Phrase.of(terms).found_in(text)
        for term in terms:
            plain = text.prefix_positions(term.value) if term.prefix else (
                text.stem_positions(term.value))
            assert features.positions(term) == plain


@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(categories=["L", "N", "Pc"]), min_size=1, max_size=12))
def test_no_stem_holds_the_prefix_mark(word: str) -> None:
    """Features keep stems and marked prefixes in one set: a stem must never look marked."""
    for token in tokenise(normalise(word)):
        assert PREFIX_MARK not in stem(token)


@settings(max_examples=300, deadline=None)
@given(texts, st.lists(st.sampled_from([*VOCABULARY, "", "or c", "e\nз"]), max_size=8))
def test_scanner_finds_exactly_the_substrings(raw: str, needles: list[str]) -> None:
    text = normalise(raw)
    needles = [normalise(n) for n in needles]
    scanner = Scanner(needles)
    assert scanner.scan(text) == {n for n in needles if n in text} | {""}
    first, second = normalise(raw[:len(raw) // 2]), normalise(raw[len(raw) // 2:])
    joined = f"{first}\n{second}"
    assert scanner.joined(scanner.scan(first), scanner.scan(second), joined) == (
        scanner.scan(joined))


# Regexes built from literals, classes, groups, alternations, repeats, anchors, lookarounds.
ATOMS = ["a", "b", "ab", "ба", "5", "#", " ", ".", r"\w", r"\d", "[ab]", "[^a]", r"\b", "^", "$",
         "(?=a)", "(?!b)", "(?<=a)"]


@st.composite
def patterns(draw: st.DrawFn, depth: int = 0) -> str:
    pieces = []
    for _ in range(draw(st.integers(1, 4))):
        if depth < 2 and draw(st.booleans()):
            inner = "|".join(draw(st.lists(patterns(depth + 1), min_size=1, max_size=3)))
            atom = draw(st.sampled_from([f"({inner})", f"(?:{inner})", f"(?i:{inner})",
                                         f"(?>{inner})"]))
        else:
            atom = draw(st.sampled_from(ATOMS))
        pieces.append(atom + draw(st.sampled_from(["", "", "?", "*", "+", "{2}", "{1,3}",
                                                   "+?", "{0,2}"])))
    return "".join(pieces)


# Derandomized: a random draw may nest quantifiers into a pattern whose search backtracks
# exponentially, and one such draw hung a whole run; the same 1,000 examples every run.
@settings(max_examples=1000, deadline=None, derandomize=True)
@given(patterns(), st.text(alphabet="abAB5# ба.\n", max_size=30))
def test_a_regex_never_matches_without_one_of_its_required_literals(source: str,
                                                                   text: str) -> None:
    try:
        pattern = re.compile(source)
    except re.error:
        return
    required = required_literals(pattern)
    if required is not None and pattern.search(text):
        assert any(literal in text for literal in required), (source, text, required)


@pytest.mark.parametrize(("source", "expected"), [
    (r"(timeout|таймаут) #5\b", {"timeout #5", "таймаут #5"}),
    (r"one[- ]way (audio|sound)", {"one way audio", "one-way audio", "one way sound",
                                   "one-way sound"}),
    (r"error\s+code", {"error"}),
    (r"(?:не )?работа", {"работа"}),
    (r"\d+ users?", {" user"}),
    (r"(?i)abc", None),
    (r"[a-z]+", None),
])
def test_required_literals_of_typical_patterns(source: str, expected: set[str] | None) -> None:
    assert required_literals(re.compile(source)) == expected


def _without_shortcuts(monkeypatch: pytest.MonkeyPatch) -> None:
    # No scanner: `contains` and `regex` fall back to `in` and `search` on the whole text;
    # no lexicon: `words` look each stem and prefix up.
    monkeypatch.setattr(Facts, "literals_in", lambda self, name: None)
    monkeypatch.setattr(Facts, "features_in", lambda self, name: None)


def _decisions(ruleset: RuleSet, requests: list[object]) -> list[Decision]:
    return [evaluate(r, ruleset) for r in requests]  # type: ignore[arg-type]


@pytest.mark.parametrize("which", ["default", "bench"])
def test_the_engine_decides_the_same_with_and_without_the_scanner(
        which: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decisions on the corpus (and the bench message) with the scanner and lexicon and with
    plain checks."""
    ruleset = builtin_rules() if which == "default" else parse_rules(make_rules(300), "bench")
    extra = ('[[rule]]\nname = "rx"\n[rule.when]\nbody_regex = ["не (работа|доход)\\\\w*", '
             '"(?i)ERROR", "звонк\\\\w* обрыва"]\n[rule.then]\ntags = ["rx"]\n\n'
             '[[rule]]\nname = "cn"\n[rule.when]\ntext_contains = ["не работа", "\\nдобрый"]\n'
             '[rule.then]\ntags = ["cn"]\n')
    ruleset = RuleSet(ruleset.rules + parse_rules(extra, "extra").rules, ruleset.source)
    requests = [read_request(p)[0] for p in sorted(CORPUS.iterdir())
                if p.suffix in (".eml", ".json")] + [make_message(10 * 1024)]
    fast = _decisions(ruleset, requests)
    assert any(r for d in fast for r in d.fired if r in ("rx", "cn"))
    _without_shortcuts(monkeypatch)
    assert fast == _decisions(ruleset, requests)


def test_regex_condition_skips_only_impossible_searches() -> None:
    condition = Regex("body", (re.compile(r"таймаут #5\b"), re.compile(r"\w+ #6")))
    assert condition.required == (frozenset({"таймаут #5"}), frozenset({" #6"}))


def test_a_lexicon_that_was_used_pickles_for_the_workers() -> None:
    """A rule set evaluated in the daemon (an explanation) is pickled with the configuration
    for the worker processes: its lexicon's per-token cache is left behind and rebuilt."""
    import pickle

    lexicon = Lexicon(["принтер", "print"])
    before = lexicon.entry("принтеры")
    copy = pickle.loads(pickle.dumps(lexicon))
    assert copy.entry("принтеры") == before
    assert copy.prefixes == lexicon.prefixes
