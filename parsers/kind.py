"""Tell ordinary mail from auto-replies, bounces (DSNs), feedback reports and list traffic."""

from __future__ import annotations

from dataclasses import dataclass

from parsers.model import Kind


@dataclass
class MailFacts:
    """What the classifier looks at, already decoded."""

    headers: dict[str, list[str]]
    content_type: str
    params: dict[str, str]
    sender: str | None
    subject: str
    text: str
    parts: list[tuple[str, bytes]]


def classify_kind(facts: MailFacts) -> tuple[Kind, list[str]]:
    """The kind of the message and, for bounces, the recipients that failed."""
    return "normal", []
