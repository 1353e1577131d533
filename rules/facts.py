"""What the conditions look at: a request prepared once, plus who sent it and when."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from parsers.model import Request
from rules.literals import Scanner
from rules.text import Features, Lexicon, Text, normalise
from rules.triage.facts import TriageFacts


@dataclass(frozen=True)
class Sender:
    """Who the request is from, as the customers file knows them (all None when unknown)."""

    customer: str | None = None
    tier: str | None = None


@dataclass
class Facts:
    """A request prepared for rules, and the decision so far (later rules may look at it)."""

    request: Request
    subject: Text
    body: Text
    sender: Sender
    # Inside the support's working hours when it arrived; None when nobody told us.
    in_working_hours: bool | None
    address: str
    domain: str
    priority: str | None = None
    request_type: str | None = None
    tags: list[str] = field(default_factory=list)
    # The seed's facts read from the customer's words, set by the engine before any rule.
    triage: TriageFacts | None = None
    # The rule set's literals (see rules.literals), set by the engine; found per field.
    scanner: Scanner | None = field(default=None, repr=False)
    _found: dict[str, frozenset[str]] = field(default_factory=dict, init=False, repr=False)
    # The rule set's `word*` prefixes (see rules.text.Lexicon), set by the engine.
    lexicon: Lexicon | None = field(default=None, repr=False)
    _features: dict[str, Features] = field(default_factory=dict, init=False, repr=False)

    @cached_property
    def headers(self) -> dict[str, list[str]]:
        """Header values by lower-case name, normalised only when a `header` condition asks
        (a mail has dozens of headers; the built-in rules read none)."""
        return {name.lower(): [normalise(v) for v in values]
                for name, values in self.request.headers.items()}

    @cached_property
    def text(self) -> Text:
        """Subject and body together, built only when a `text_*` condition asks."""
        return Text.joined(self.subject, self.body)

    def part(self, name: str) -> Text:
        return self.subject if name == "subject" else self.body if name == "body" else self.text

    def use(self, scanner: Scanner | None, lexicon: Lexicon | None = None) -> None:
        """Look for SCANNER's literals and LEXICON's prefixes from now on (the rule set being
        evaluated)."""
        if scanner is not self.scanner:
            self.scanner = scanner
            self._found.clear()
        if lexicon is not self.lexicon:
            self.lexicon = lexicon
            self._features.clear()

    def features_in(self, name: str) -> Features | None:
        """Field NAME's stems and the lexicon's prefixes it has; None without a lexicon."""
        if self.lexicon is None:
            return None
        found = self._features.get(name)
        if found is None:
            found = self._features[name] = self.part(name).features(self.lexicon)
        return found

    def literals_in(self, name: str) -> frozenset[str] | None:
        """Which of the scanner's literals field NAME contains; None without a scanner."""
        return None if self.scanner is None else self._scanned(self.scanner, name)

    def _scanned(self, scanner: Scanner, name: str) -> frozenset[str]:
        found = self._found.get(name)
        if found is None:
            if name == "text":  # subject + body: reuse their scans rather than scan it again
                found = scanner.joined(self._scanned(scanner, "subject"),
                                       self._scanned(scanner, "body"), self.text.normalised)
            else:
                found = scanner.scan(self.part(name).normalised)
            self._found[name] = found
        return found

    @classmethod
    def of(cls, request: Request, sender: Sender | None = None,
           in_working_hours: bool | None = None) -> Facts:
        subject = request.subject or ""
        # The body is what the customer wrote now: quoted history and signature removed.
        body = request.reply_text or request.text
        address = (request.sender.address if request.sender else "").strip().lower()
        return cls(request, Text.of(subject), Text.of(body),
                   sender or Sender(), in_working_hours, address,
                   address.rpartition("@")[2])
