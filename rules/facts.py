"""What the conditions look at: a request prepared once, plus who sent it and when."""

from __future__ import annotations

from dataclasses import dataclass, field

from parsers.model import Request
from rules.text import Text, normalise


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
    text: Text
    sender: Sender
    # Inside the support's working hours when it arrived; None when nobody told us.
    in_working_hours: bool | None
    address: str
    domain: str
    headers: dict[str, list[str]]
    priority: str | None = None
    request_type: str | None = None
    tags: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, request: Request, sender: Sender | None = None,
           in_working_hours: bool | None = None) -> Facts:
        subject = request.subject or ""
        # The body is what the customer wrote now: quoted history and signature removed.
        body = request.reply_text or request.text
        address = (request.sender.address if request.sender else "").strip().lower()
        headers = {name.lower(): [normalise(v) for v in values]
                   for name, values in request.headers.items()}
        return cls(request, Text.of(subject), Text.of(body), Text.of(f"{subject}\n{body}"),
                   sender or Sender(), in_working_hours, address,
                   address.rpartition("@")[2], headers)
