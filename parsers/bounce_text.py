"""Read bounces that are not RFC 3464 reports: qmail, old Sendmail, Exchange, Exim text."""

from __future__ import annotations

import re

_PHRASES = re.compile(
    r"this is the qmail-send program|could not be delivered to one or more|"
    r"permanent error|delivery to the following recipients? failed|"
    r"the following addresses had permanent fatal errors|"
    r"message could not be delivered|undeliverable|user unknown|mailbox unavailable|"
    r"no such user|address rejected|recipient address rejected|delivery has failed|"
    r"unable to deliver|couldn't be delivered|was not delivered|delivery failed|"
    r"i'm sorry to have to inform you|mail delivery failed|cannot be delivered|"
    r"could not be delivered|"
    r"недоставлен|не может быть доставлено|не удалось доставить",
    re.IGNORECASE)
_ADDR = r"[A-Za-z0-9._%+'=/-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
# Lines that name the failed recipient in the common text formats.
_FAILED_LINE = (
    re.compile(rf"^<({_ADDR})>:", re.MULTILINE),  # qmail, Postfix
    re.compile(rf"^[ \t]+({_ADDR})[ \t]*$", re.MULTILINE),  # Exim: address alone, indented
    re.compile(rf"^[ \t]*<?({_ADDR})>?[ \t]*\.\.\.[ \t]", re.MULTILINE),  # Sendmail "x... User"
    re.compile(rf"^[ \t]*Recipient address:[ \t]*<?({_ADDR})", re.MULTILINE | re.IGNORECASE),
    re.compile(rf"^[ \t]*Final-Recipient:[ \t]*rfc822;[ \t]*<?({_ADDR})", re.MULTILINE | re.I),
    # Prose of no-reply senders: "Your message to x@y could not be delivered", "the mailbox
    # of x@y is full".
    re.compile(rf"\b(?:message|mail|e-mail|email|mailbox) (?:to|for|of) <?({_ADDR})>?",
               re.IGNORECASE),
)


def looks_like_bounce_text(text: str) -> bool:
    """Whether the body reads like a delivery failure notice."""
    return bool(_PHRASES.search(text[:20000]))


def failed_from_text(text: str) -> list[str]:
    """Recipients a plain-text bounce names as failed (best effort)."""
    head = text[:20000]
    for regex in _FAILED_LINE:
        found = [m.group(1).rstrip(".").lower() for m in regex.finditer(head)]
        if found:
            return list(dict.fromkeys(found))
    return []
