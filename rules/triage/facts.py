"""The seed's facts about a request (scope, affected, severity, workaround, detail, declared)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from rules.triage.lexicon import HIGH_FUNCTIONS, MEDIUM_FUNCTIONS, Lexicon
from rules.triage.reading import Segment, negated, segments
from rules.triage.words import tokens

SCOPES = ("all", "many", "some", "individual", "unknown")
SEVERITIES = ("inoperative", "impaired", "slight", "none")
WORKAROUNDS = ("none", "exists", "unknown")
PRIORITY_WORDS = ("critical", "high", "medium", "low")
_REPLY_PREFIX = ("re:", "re ", "ответ:", "отв:", "aw:", "fw:", "fwd:", "пересл")


@dataclass(frozen=True)
class Fact:
    """A fact's value and the words of the request that set it."""

    value: str
    words: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"value": self.value, "words": list(self.words)}


@dataclass(frozen=True)
class Failure:
    """One thing the customer says fails now: the system or a function, how badly, for whom."""

    affected: str  # "system" or a function name
    severity: str
    scope: str
    words: tuple[str, ...]
    # The system only named ("nothing arrives from the messenger"), with no one locked out and
    # nothing down: it counts only when no function is said to fail.
    named_only: bool = False

    @property
    def kind(self) -> str:
        """system | high_function | medium_function | documentation | cosmetic | other_function."""
        if self.affected in ("system", "cosmetic", "documentation"):
            return self.affected
        if self.affected in HIGH_FUNCTIONS:
            return "high_function"
        if self.affected in MEDIUM_FUNCTIONS:
            return "medium_function"
        return "other_function"


@dataclass(frozen=True)
class TriageFacts:
    """Everything the seed's priority table looks at, each fact with its words."""

    scope: Fact
    affected: Fact
    severity: Fact
    workaround: Fact
    detail: Fact
    declared: Fact
    request_type: Fact
    impact: Fact
    failures: tuple[Failure, ...] = field(default=())

    @property
    def function(self) -> str:
        return self.affected.value if self.affected.value not in ("system", "none", "unknown",
                                                                  "cosmetic") else "none"

    def as_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope.as_json(), "affected": self.affected.as_json(),
            "function": self.function, "severity": self.severity.as_json(),
            "workaround": self.workaround.as_json(), "detail": self.detail.as_json(),
            "declared": self.declared.as_json(), "type": self.request_type.as_json(),
            "impact": self.impact.as_json(),
            "failures": [{"affected": f.affected, "severity": f.severity, "scope": f.scope,
                          "words": list(f.words)} for f in self.failures],
        }


class Text(list[Segment]):
    """All of a request's segments, with the words of each label gathered once: the facts ask
    the whole text for a label dozens of times."""

    @cached_property
    def by_label(self) -> dict[str, tuple[str, ...]]:
        gathered: dict[str, list[str]] = {}
        for seg in self:
            for label, words in seg.phrases.items():
                known = gathered.get(label)
                if known is None:
                    gathered[label] = [*words]
                else:
                    known += words
        # In order of appearance, each once.
        return {label: tuple(dict.fromkeys(words)) for label, words in gathered.items()}


def _words(segs: Iterable[Segment], *labels: str) -> tuple[str, ...]:
    if isinstance(segs, Text):
        if len(labels) == 1:
            return segs.by_label.get(labels[0], ())
        return tuple(dict.fromkeys(w for label in labels for w in segs.by_label.get(label, ())))
    seen: dict[str, None] = {}
    for seg in segs:
        for label in labels:
            for w in seg.words_of(label):
                seen.setdefault(w, None)
    return tuple(seen)


def _any(segs: Iterable[Segment], label: str) -> bool:
    if isinstance(segs, Text):
        return label in segs.by_label
    return any(s.has(label) for s in segs)


def read_facts(subject: str | None, body: str, lexicon: Lexicon) -> TriageFacts:
    """The facts of a request: SUBJECT (ignored for replies: it names the old problem) and BODY,
    the customer's new text."""
    is_reply = bool(subject) and subject.strip().lower().startswith(_REPLY_PREFIX)  # type: ignore[union-attr]
    segs = Text(segments(None if is_reply else subject, body, lexicon))
    order = lexicon.function_order
    current = _current(segs)
    failures = _failures(current, segs, order)
    declared = _declared(segs, subject, body, lexicon)
    request_type = _request_type(segs, failures)
    workaround = _workaround(segs)
    impact = _impact(segs)
    scope = _overall_scope(failures, segs)
    top = _top(failures)
    affected = (Fact(top.affected, top.words) if top else
                Fact("cosmetic", _words(segs, "severity.cosmetic"))
                if _any(segs, "severity.cosmetic")
                else Fact("none" if request_type.value != "incident" else "unknown"))
    severity = Fact(top.severity, top.words) if top else Fact("none")
    detail = _detail(failures, segs, request_type)
    return TriageFacts(scope, affected, severity, workaround, detail, declared, request_type,
                       impact, tuple(failures))


def _current(segs: list[Segment]) -> list[Segment]:
    """Segments that speak of now: not of a sentence that is hypothetical ("if it expires,
    nobody can connect") and not of a restored function ("the push outage is fixed")."""
    hypothetical = {s.sentence for s in segs if s.has("time.hypothetical")}
    # "Does the bot API support ... 'Reject'?": a yes/no question names, it does not report.
    asked = {s.sentence for s in segs if s.question and s.words and s.words[0] in QUESTION_OPENERS}
    return [s for s in segs
            if s.sentence not in hypothetical | asked and not s.restored]


# Words that open a yes/no question about what is possible, not a report of what fails.
QUESTION_OPENERS = frozenset({"does", "do", "is", "are", "can", "could", "will", "would", "should",
                              "поддерживает", "можно", "есть", "возможно", "будет"})


def _functions(seg: Segment, order: tuple[str, ...]) -> list[str]:
    known = seg.memo.get(order)
    if known is None:
        named = [label.split(".", 1)[1] for label in seg.labels("function.")]
        known = seg.memo[order] = [name for name in order if name in named]
    return known


def _failing(seg: Segment) -> bool:
    return seg.clause.failing


def _failures(current: list[Segment], segs: list[Segment], order: tuple[str, ...]) -> list[Failure]:
    by_sentence: dict[int, list[Segment]] = {}
    for seg in segs:
        by_sentence.setdefault(seg.sentence, []).append(seg)
    failures = []
    # Calls (or another function) said to work: the messenger is not down, whatever else fails.
    others_work = any(s.polarity == "works" and not s.has("severity.impaired")
                      and any(f in HIGH_FUNCTIONS - {"messaging"} for f in _functions(s, order))
                      for s in current)
    messaging_works = any(s.polarity == "works" and not _failing(s)
                          and _functions(s, order)[:1] == ["messaging"] for s in current)
    # Words of the same sentence that say nothing working (a subject, a scope) belong to
    # each failing statement too: "ни у кого не работает: список чатов не загружается".
    context = {number: [s for s in members if s.polarity is None or _failing(s)]
               for number, members in by_sentence.items()}
    # A sentence repeated word for word says the same again (quoted logs, pasted tables).
    seen: dict[tuple[int, ...], Failure | None] = {}
    for seg in current:
        if not _failing(seg):
            continue
        siblings = [s for s in context[seg.sentence] if s is not seg]
        key = (id(seg.clause), *(id(s.clause) for s in siblings))
        if key in seen:
            continue
        failure = seen[key] = _failure(seg, siblings, order, messaging_works)
        if failure and failure.affected == "system" and others_work and not (
                seg.has("system.access") or seg.has("system.down")):
            failure = Failure("messaging", failure.severity, failure.scope, failure.words)
        if failure:
            failures.append(failure)
    if any(f.affected != "system" for f in failures):
        failures = [f for f in failures if not f.named_only]
    return failures


def _failure(seg: Segment, siblings: list[Segment], order: tuple[str, ...],
             messaging_works: bool = False) -> Failure | None:
    """What SEG says fails: its own function; else one its sentence names ("консоль не
    открывается: после ввода логина белый экран"); else the system when nobody can get in or
    it is down; else the system or the client named."""
    own = [f for f in _functions(seg, order) if f != "client"]
    borrowed = [f for s in siblings for f in _functions(s, order) if f != "client"]
    scope = _scope([seg]) or _scope(siblings) or "unknown"
    severity = _severity(seg, scope, [s for s in siblings if s.polarity is None])
    # Locked out for everyone, or everything stuck: the system, whatever else the sentence names.
    gate = seg.has("system.access") or seg.has("system.down")
    universal = any(w in ("ничего", "все", "всё", "everything", "nothing")
                    for w in seg.words_of("detail.generic"))
    specific = own or ([] if gate and (universal or _scope([seg]) in ("all", "many"))
                       else borrowed)
    words = _failure_words(seg, specific[0] if specific else None)
    if seg.has("severity.cosmetic") and (specific[:1] or ["cosmetic"])[0] != "documentation":
        return Failure("cosmetic", "slight", scope, words)
    if specific:
        affected = specific[0]
        # Messaging down for everyone is the messenger down (the seed's critical), unless
        # messages are said to work and only something about them fails.
        if (affected == "messaging" and scope == "all" and severity == "inoperative"
                and not messaging_works):
            affected = "system"
        return Failure(affected, severity, scope, words)
    if seg.has("system.access") or seg.has("system.down"):
        return Failure("system", severity, scope, words)
    if seg.has("system.noun") or any(s.has("system.noun") for s in siblings):
        return Failure("system", severity, scope, words, named_only=True)
    if any("client" in _functions(s, order) for s in (seg, *siblings)):
        return Failure("client", severity, scope, words)
    return None


def _failure_words(seg: Segment, function: str | None) -> tuple[str, ...]:
    """The words that say SEG fails: its evidence, the FUNCTION named and the system words.
    Remembered on the clause (shared by every mail that has it), as the functions are."""
    key = ("words", function)
    known = seg.clause.said.get(key)
    if known is None:
        known = seg.clause.said[key] = tuple(dict.fromkeys(seg.evidence + _words(
            [seg], *([f"function.{function}"] if function else []), "system.access",
            "system.down", "system.noun", "severity.cosmetic")))
    return known


_SCOPE_ORDER = ("individual", "all", "many", "some")


def _scope(segs: list[Segment]) -> str | None:
    """The scope SEGS state; individual first (it is said against the others' being fine)."""
    stated = [s.scope for s in segs if s.scope]
    return min(stated, key=_SCOPE_ORDER.index) if stated else None


def _severity(seg: Segment, scope: str, neutral: list[Segment]) -> str:
    # Working, only slower ("открываются с задержкой в несколько секунд"), is slight; failing
    # after some seconds ("calls drop after 30 seconds") is not. The words may stand in a
    # clause of their own: "задержки при переключении, у всех, около 5 секунд".
    if (seg.has("severity.slight") or _any(neutral, "severity.slight")) and seg.polarity != "fails":
        return "slight"
    if seg.has("severity.slight") and not seg.has("severity.impaired"):
        return "slight"
    if seg.has("severity.impaired") or scope == "some":
        return "impaired"
    return "inoperative"


def _overall_scope(failures: list[Failure], segs: list[Segment]) -> Fact:
    """The widest scope a failure states; individual when only individuals (or when the others
    are said to be fine and no wider scope is stated)."""
    words = _words(segs, "scope.all", "scope.many", "scope.some", "scope.individual",
                   "scope.others_fine")
    scopes = {f.scope for f in failures}
    others_fine = _any([s for s in segs if s.polarity != "fails"], "scope.others_fine") or (_any(
        segs, "scope.others_fine") and not scopes & {"all", "many"})
    for name in ("all", "many", "some"):
        if name in scopes:
            if name == "all" and others_fine:
                return Fact("many", words)
            return Fact(name, words)
    if "individual" in scopes or (others_fine and failures):
        return Fact("individual", words)
    return Fact("unknown", words)


def _workaround(segs: list[Segment]) -> Fact:
    none = _words(segs, "workaround.none")
    exists = _words(segs, "workaround.exists")
    if none:
        return Fact("none", none)
    if exists:
        return Fact("exists", exists)
    return Fact("unknown")


def _impact(segs: list[Segment]) -> Fact:
    if _any(segs, "severity.no_impact"):
        return Fact("none", _words(segs, "severity.no_impact"))
    if _any(segs, "severity.users_fine"):
        return Fact("users_fine", _words(segs, "severity.users_fine"))
    if _any(segs, "severity.slight"):
        return Fact("slight", _words(segs, "severity.slight"))
    return Fact("unknown")


def _top(failures: list[Failure]) -> Failure | None:
    rank = {"system": 0, "high_function": 1, "medium_function": 2, "other_function": 3,
            "documentation": 4, "cosmetic": 5}
    if not failures:
        return None
    return min(failures, key=lambda f: (SCOPES.index(f.scope) == 3, rank[f.kind],
                                        SEVERITIES.index(f.severity)))


# A text this short says no more than "X is broken" unless it says for whom.
SHORT_WORDS = 8


def _detail(failures: list[Failure], segs: list[Segment], request_type: Fact) -> Fact:
    """Enough to act on: a named function that fails, or the system or client failing with a
    scope or a concrete symptom (nobody can log in). A bare "doesn't work", "broken", "issue",
    "опять ничего не работает", or a few words with no one said to be affected, is not."""
    if request_type.value != "incident":
        return Fact("enough")
    if sum(len(s.words) for s in segs) < SHORT_WORDS and all(f.scope == "unknown"
                                                            for f in failures):
        return Fact("none", tuple(w for s in segs for w in s.words))
    symptoms = set(_words(segs, "system.access", "system.down"))
    for failure in failures:
        if failure.affected not in ("system", "client"):
            return Fact("enough", failure.words)
        if failure.scope != "unknown" or symptoms & set(failure.words):
            return Fact("enough", failure.words)
    return Fact("none", _words(segs, "detail.vague"))


def _declared(segs: list[Segment], subject: str | None, body: str, lexicon: Lexicon) -> Fact:
    """The priority the customer states: in a clause ("P1!!!", "не срочно"), or across a
    colon at the head of the text ("Приоритет: средний", "Declared priority: high")."""
    head = [line[:DECLARATION_CHARS]
            for line in (subject or "", *body.splitlines()[:DECLARATION_LINES])]
    stated: dict[str, tuple[str, ...]] = {}
    for line in head:
        line_words = tokens(line)
        for label, matches in lexicon.declarations.find(line_words).items():
            stated.setdefault(label, tuple(" ".join(line_words[m.start:m.end]) for m in matches))
    for name in ("low", "critical", "high", "medium"):
        said = _words(segs, f"declared.{name}") or stated.get(f"declared.{name}", ())
        if said:
            return Fact(name, said)
    return Fact("none")


# A priority is declared at the head of a text: the subject and its first lines.
DECLARATION_LINES = 8
DECLARATION_CHARS = 200


def _request_type(segs: list[Segment], failures: list[Failure]) -> Fact:
    """Incident when something fails now; else the main thing asked for."""
    scores = _type_scores(segs)
    absent = _any(segs, "type.absent") and scores["feature_request"] > 0
    regression = _any(segs, "type.regression")
    if _any(segs, "type.expected"):
        return Fact("consultation", _words(segs, "type.expected"))
    # The client or the system only named as failing, beside a request: the request decides.
    weak = all(f.named_only or f.affected == "cosmetic"
               or (f.affected == "client" and f.scope == "unknown") for f in failures)
    if weak and max(scores.values()) > 0:
        failures = []
    stated = _any(segs, "type.not_a_failure") and max(scores.values()) > 0
    if failures and not (absent and not regression) and not stated:
        return Fact("incident", failures[0].words)
    vague = tuple(m.source for s in segs if not s.restored
                  for m in s.found.get("detail.vague", ()) if not negated(m, s.found, s.words))
    if not failures and 2 * len(vague) > max(scores.values()):
        return Fact("incident", vague)
    best = max(scores, key=lambda n: (scores[n], TYPES.index(n)))
    if scores[best] == 0:
        # Nothing asked for and nothing said to fail ("help", "ждём"): a request for support.
        return Fact("incident")
    return Fact(best, _words(segs, f"type.{best}"))


TYPES = ("consultation", "administration", "feature_request")


def _type_scores(segs: list[Segment]) -> dict[str, int]:
    """Cues of each request type: a question that asks for nothing to be done is a
    consultation whatever it names; a wish for new functionality weighs double."""
    requests = {s.sentence for s in segs if s.has("type.request")}
    asking = {s.sentence for s in segs if s.question and s.sentence not in requests}
    scores = dict.fromkeys(TYPES, 0)
    scores["consultation"] = len(asking)
    for seg in segs:
        if seg.sentence in asking:
            continue
        scores["consultation"] += len(seg.found.get("type.consultation", ()))
        scores["administration"] += len(seg.found.get("type.administration", ()))
    scores["feature_request"] = 2 * sum(len(s.found.get("type.feature_request", ())) for s in segs)
    return scores
