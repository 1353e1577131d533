"""A request's own text as segments: what each says fails or works, for whom, how badly."""

from __future__ import annotations

import itertools
import re

from rules.triage.lexicon import Lexicon
from rules.triage.words import Match, tokens

# Log lines, stack frames, shell prompts and JSON say nothing about scope or workarounds, and
# their words ("error", "failed", "unavailable") would read as the customer's statements.
_MACHINE_LINE = re.compile(
    r"^\s*(?:\d{4}-\d\d-\d\d|\d\d:\d\d:\d\d|\d\d:\d\d\s+\[|\[\w+\]|\$ |# |\*\*|at |\(|\{|\}|<|"
    r"(?:ERROR|WARN|WARNING|INFO|DEBUG|TRACE|FATAL|PANIC)\b|[A-Z]+\s{2,}|Traceback|File \"|"
    r"root@|NAME\s|[\w.-]+\s+\d+/\d+\s|[\w.]+Error\b|\w+\.\w+:\d+|-{3,}|={3,}|\w+:\s*\*\*)")
_LOG_WORDS = re.compile(r"\[(?:error|warn|warning|info|debug)\]|\b(?:ERROR|WARN|FATAL|PANIC)\b")
# Within a line: a semicolon, or the blanks after a sentence's closing mark. Each pattern
# begins with a character class, so the regex engine skips to candidates in C (the readable
# forms, "(?<=[.!?…])\s+|;" and "\s*[,:]\s*|\s+[-—–]\s+|—", tried every position and cost
# twice as much on every mail).
_SENTENCE_END = re.compile(r"[;\s](?:(?<=;)|(?<=[.!?…]\s)\s*)")
# Where one statement gives way to another inside a sentence: a comma, a colon, an em dash,
# or a dash or en dash with blanks on both sides (the blanks stay with the pieces; words
# are what is read from them).
_SEGMENT_BREAK = re.compile(r"[,:—–-](?:(?<=[,:—])|(?<=\s.)(?=\s))")
_CONTRAST = frozenset({"но", "однако", "зато", "хотя", "а", "but", "however", "although", "though",
                       "whereas", "while", "yet"})
NEGATION_WINDOW = 7
# The budget for one request: what a person writes fits; 1 MB of pasted logs is cut here, so
# no text can stall processing (the rest is machine output or repetition).
MAX_TEXT_CHARS = 20_000
# Of the customer's own words (machine lines left out), this much is read: enough for any
# description a person writes; the rest of a long mail repeats or adds detail, not facts.
MAX_CUSTOMER_CHARS = 6_000
# A line this long that ends without a stop was wrapped by the mail client, not ended.
WRAPPED_LINE = 60
MAX_SENTENCES = 300
# Clauses remembered per lexicon (see _clauses): a bound on memory (a clause read takes about
# 2.6 KB: 4,000 are ~10 MB; 50,000 grew a worker by 130 MB on a backlog of unique mail).
# When full, the least recently read quarter goes; what recurs (greetings, sign-offs, stock
# phrases) stays.
CLAUSE_CACHE = 4_000
# A negation does not reach past these into a clause of its own ("can't review who downloaded").
_BARRIERS = frozenset({"who", "what", "which", "that", "кто", "что", "который", "которые",
                       "которая", "чтобы", "and", "и"})


def customer_lines(text: str) -> list[str]:
    """TEXT's lines without machine output (logs, traces, shell sessions, JSON)."""
    kept = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            kept.append("")
            continue
        if _MACHINE_LINE.match(line) or (line.count(":") >= 2 and _LOG_WORDS.search(line)):
            continue
        if line.startswith(("    ", "\t")) and sum(c.isalpha() for c in line) < len(line) * 0.6:
            continue
        kept.append(line)
    return kept


def unwrapped(lines: list[str]) -> list[str]:
    """LINES with the mail client's line wrapping undone: a long line that ends without a stop
    goes on in the next one ("Прошу\nподключить" is one sentence)."""
    joined: list[str] = []
    for line in lines:
        previous = joined[-1] if joined else ""
        if (line.strip() and len(previous) >= WRAPPED_LINE
                and not previous.rstrip().endswith((".", "!", "?", ":", ";"))):
            joined[-1] = f"{previous.rstrip()} {line.strip()}"
        else:
            joined.append(line)
    return joined


class Clause:
    """What one clause says, read once per lexicon and shared by every mail that has it:
    its words, labelled matches, polarity, the scope it states and the words of each label."""

    def __init__(self, words: list[str], lexicon: Lexicon) -> None:
        self.words = words
        self.found = lexicon.find(words)
        self.polarity, fails, works = _polarity(self.found, words)
        self.evidence = tuple(fails or works)
        self.phrases = {label: tuple(" ".join(words[m.start:m.end]) for m in matches)
                        for label, matches in self.found.items()}
        self.scope = next((name for name in ("individual", "all", "many", "some")
                           if self._states(name)), None)
        self.restored = any(not negated(m, self.found, words)
                            for m in self.found.get("time.restored", ()))
        # It says something fails, or works only slowly or now and then ("доходят с
        # задержкой"), or shows a cosmetic fault.
        degraded = "severity.slight" in self.found or "severity.impaired" in self.found
        self.failing = (self.polarity == "fails"
                        or ("severity.cosmetic" in self.found and self.polarity is None)
                        or (degraded and (self.polarity == "works" or any(
                            label.startswith("function.") for label in self.found))))
        # The functions it names, per function order (filled by the facts as asked).
        self.memo: dict[tuple[str, ...], list[str]] = {}
        # The words that say it fails, per function named (filled by the facts as asked).
        self.said: dict[tuple[str, str | None], tuple[str, ...]] = {}

    def _states(self, name: str) -> bool:
        # "one user" inside "not one user" or "ни у одного" is not individual.
        matches = self.found.get(f"scope.{name}", ())
        if name != "individual":
            return bool(matches)
        wider = [m for label in ("scope.all", "scope.many") for m in self.found.get(label, ())]
        return any(not any(w.start <= m.start < w.end or m.start <= w.start < m.end
                           for w in wider)
                   and not (m.start > 0 and self.words[m.start - 1] in ("ни", "not", "не"))
                   for m in matches)


class Segment:
    """One statement of a request: a clause, where it stands, and whether its sentence asks.

    A plain class with slots: a request has a hundred of them, made anew for every request
    (the clauses are shared), and a frozen dataclass's construction cost a third of reading."""

    __slots__ = ("clause", "question", "sentence")

    def __init__(self, sentence: int, clause: Clause, question: bool = False) -> None:
        self.sentence = sentence
        self.clause = clause
        # The sentence asks ("...?"): what it names is asked about, not asked for.
        self.question = question

    def __repr__(self) -> str:
        return f"Segment({self.sentence}, {' '.join(self.clause.words)!r}, {self.question})"

    @property
    def words(self) -> list[str]:
        return self.clause.words

    @property
    def found(self) -> dict[str, list[Match]]:
        return self.clause.found

    @property
    def polarity(self) -> str | None:
        """"fails", "works" or None."""
        return self.clause.polarity

    @property
    def evidence(self) -> tuple[str, ...]:
        return self.clause.evidence

    @property
    def scope(self) -> str | None:
        return self.clause.scope

    @property
    def restored(self) -> bool:
        """It says something works again ("fixed", "восстановился"), not negated."""
        return self.clause.restored

    @property
    def phrases(self) -> dict[str, tuple[str, ...]]:
        return self.clause.phrases

    @property
    def memo(self) -> dict[tuple[str, ...], list[str]]:
        return self.clause.memo

    def has(self, label: str) -> bool:
        return label in self.clause.found

    def labels(self, prefix: str) -> list[str]:
        return [label for label in self.clause.found if label.startswith(prefix)]

    def words_of(self, label: str) -> tuple[str, ...]:
        return self.clause.phrases.get(label, ())


def negated(match: Match, found: dict[str, list[Match]], words: list[str],
            concord: bool = True) -> bool:
    """Whether a negation stands shortly before MATCH (a Russian ни-word only when CONCORD)."""
    return negation(match, found, words, concord) is not None


def negation(match: Match, found: dict[str, list[Match]], words: list[str],
             concord: bool = True) -> int | None:
    """Where the negation of MATCH starts, or None (a Russian ни-word counts when CONCORD)."""
    labels = ("polarity.negators", "polarity.concord") if concord else ("polarity.negators",)
    starts = [n.start for label in labels for n in found.get(label, ())
              if n.end <= match.start and match.start - n.end < NEGATION_WINDOW
              and not _BARRIERS.intersection(words[n.end:match.start])]
    return min(starts) if starts else None


def _polarity(found: dict[str, list[Match]],
              words: list[str]) -> tuple[str | None, list[str], list[str]]:
    """'fails' when something fails (a failure, or something working negated), else 'works'."""
    fails: list[str] = []
    works: list[str] = []
    for label in ("polarity.works", "polarity.fails"):
        for match in found.get(label, ()):
            start = negation(match, found, words, concord=label == "polarity.works")
            says_fails = (label == "polarity.fails") != (start is not None)
            # The customer's own words, the negation with them: "не может", "nobody can".
            said = " ".join(words[match.start if start is None else start:match.end])
            said_list = fails if says_fails else works
            if said not in said_list:
                said_list.append(said)
    fails, works = _longest(fails), _longest(works)
    if fails:
        return "fails", fails, works
    if works:
        return "works", fails, works
    return None, fails, works


def _longest(spans: list[str]) -> list[str]:
    """SPANS without those inside a longer one ("не может" inside "не может войти")."""
    return [s for s in spans if not any(s != t and s in t for t in spans)]


def segments(subject: str | None, body: str, lexicon: Lexicon) -> list[Segment]:
    """The statements of SUBJECT (a sentence of its own) and BODY, in order."""
    sentences = [subject[:1000]] if subject else []
    read = 0
    for line in unwrapped(customer_lines(body[:MAX_TEXT_CHARS])):
        sentences += [s[:2000] for s in _SENTENCE_END.split(line) if s.strip()]
        read += len(line)
        if len(sentences) >= MAX_SENTENCES or read >= MAX_CUSTOMER_CHARS:
            break
    result: list[Segment] = []
    for number, sentence in enumerate(sentences):
        question = sentence.rstrip().endswith("?")
        for piece in _SEGMENT_BREAK.split(sentence):
            result += [Segment(number, clause, question) for clause in _clauses(piece, lexicon)]
    return result


def _clauses(piece: str, lexicon: Lexicon) -> tuple[Clause, ...]:
    """PIECE's clauses, remembered per piece of text: greetings, sign-offs, disclaimers and
    stock phrases recur from mail to mail, and each is read once."""
    remembered = lexicon.clauses
    known: tuple[Clause, ...] | None = remembered.pop(piece, None)
    if known is None:
        known = tuple(Clause(part, lexicon) for part in _split_contrast(tokens(piece)) if part)
        if len(remembered) >= CLAUSE_CACHE:
            for oldest in list(itertools.islice(remembered, CLAUSE_CACHE // 4)):
                del remembered[oldest]
    # Put back last: the dict's order is then least recently read first.
    remembered[piece] = known
    return known


def _split_contrast(words: list[str]) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    for word in words:
        if word in _CONTRAST and parts[-1]:
            parts.append([])
        else:
            parts[-1].append(word)
    return parts
