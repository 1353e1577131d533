"""What a bounce says: which recipients failed, and whether the address itself is bad.

Mailman's flufl.bounce (about 40 detectors for the formats of real mail systems) finds the
recipients; the RFC 3464 fields of a delivery-status part, read here, tell a permanent
failure of the address (5.1.x, unknown user or host) from one of this message or this
moment (a full mailbox, a policy or spam refusal, any 4.x.x): only the first should stop
our mail to that address.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_FIELD = re.compile(r"^([A-Za-z-]+)[ \t]*:[ \t]*(.*)$")
_ADDR = re.compile(r"<?([^\s<>;\"']+@[^\s<>;\"']+?)>?[ \t]*$")
# The address (not this message, not this moment) is refused: the only reason to block it.
_BAD_ADDRESS_STATUS = re.compile(r"^5\.(?:1\.[0-6]|1\.10|4\.4)$")  # not 5.1.7/5.1.8: sender
_BAD_ADDRESS_TEXT = re.compile(
    r"user(?:name)? unknown|unknown user|no such (?:user|recipient|mailbox|address)|"
    r"(?:recipient|user|mailbox|account)(?: address)? (?:does not exist|not found|unknown)|"
    r"not a valid (?:mailbox|recipient)|invalid (?:recipient|mailbox)|unrouteable address|"
    r"host (?:or domain name )?not found|domain (?:not found|does not exist)|"
    r"unknown (?:local[- ]part|recipient|mailbox)|bad destination mailbox|"
    r"нет такого (?:пользователя|ящика)|неизвестный (?:адрес|получатель)",
    re.IGNORECASE)
_TEMPORARY_TEXT = re.compile(
    r"mailbox (?:is )?full|over ?quota|quota exceeded|exceeded (?:the )?(?:storage|quota)|"
    r"insufficient (?:disk )?(?:space|storage)|try again later|temporar|delay|will retry|"
    r"still trying|ящик переполнен", re.IGNORECASE)
_SAMPLE = 20000


@dataclass
class BounceFacts:
    """Failed recipients, and whether the failure is permanent for the address."""

    failed: list[str] = field(default_factory=list)
    permanent: bool = False
    # Recipients a delivery report says were delivered (Action: delivered, 2.x.x).
    delivered: list[str] = field(default_factory=list)


def _dsn_blocks(payload: bytes) -> list[dict[str, str]]:
    text = re.sub(r"\n[ \t]+", " ", payload.decode("utf-8", "replace").replace("\r\n", "\n"))
    blocks = []
    for block in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            m = _FIELD.match(line.strip())
            if m:
                fields.setdefault(m.group(1).lower(), m.group(2).strip())
        if fields.get("final-recipient") or fields.get("original-recipient"):
            blocks.append(fields)
    return blocks


def _address(value: str) -> str | None:
    m = _ADDR.search(value.split(";", 1)[-1].strip())
    return m.group(1).strip(".").lower() if m else None


def from_dsn(payload: bytes) -> BounceFacts:
    """The failed recipients of a message/delivery-status body and their permanence."""
    facts = BounceFacts()
    for fields in _dsn_blocks(payload):
        action = fields.get("action", "").lower()
        status = (re.match(r"\d\.\d{1,3}\.\d{1,3}", fields.get("status", "")) or [""])[0]
        address = _address(fields.get("final-recipient") or fields.get("original-recipient", ""))
        if address is None:
            continue
        if action.startswith("delivered") or (not action and status.startswith("2")):
            facts.delivered.append(address)
        if not (action.startswith("failed") or (not action and status.startswith("5"))):
            continue
        facts.failed.append(address)
        diagnostic = fields.get("diagnostic-code", "")
        if status.startswith("5") and (_BAD_ADDRESS_STATUS.match(status) or (
                _BAD_ADDRESS_TEXT.search(diagnostic) and not _TEMPORARY_TEXT.search(diagnostic))):
            facts.permanent = True
    return facts


def from_library(raw: bytes) -> tuple[list[str], list[str]]:
    """(permanent, temporary) failed recipients by flufl.bounce's detectors."""
    if not raw:
        return [], []
    try:
        from flufl.bounce import all_failures

        message = email.message_from_bytes(raw, policy=email.policy.compat32)
        temporary, permanent = all_failures(message)
    except Exception:  # a detector tripping over odd mail must not lose the message
        return [], []

    def addresses(found: Iterable[bytes | str]) -> list[str]:
        out = []
        for item in found:
            text = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
            if "@" in text:
                out.append(text.strip("<>. ").lower())
        return sorted(out)

    return addresses(permanent), addresses(temporary)


def permanent_by_text(text: str) -> bool:
    """A bounce without a delivery-status part: the text says the address is bad."""
    sample = text[:_SAMPLE]
    return bool(_BAD_ADDRESS_TEXT.search(sample)) and not _TEMPORARY_TEXT.search(sample)


def analyse(parts: list[tuple[str, bytes]], x_failed: list[str], text: str,
            raw: bytes) -> BounceFacts:
    """A bounce's failed recipients and permanence, from every source in order of trust:
    the delivery-status fields and X-Failed-Recipients, then flufl.bounce's detectors, then
    the common text formats."""
    from parsers.bounce_text import failed_from_text

    result = BounceFacts()
    dsn_seen = False
    for ctype, payload in parts:
        if ctype == "message/delivery-status":
            found = from_dsn(payload)
            dsn_seen = dsn_seen or bool(found.failed)
            result.failed += found.failed
            result.delivered += found.delivered
            result.permanent = result.permanent or found.permanent
    for value in x_failed:
        result.failed += [a.strip().strip("<>").lower() for a in value.split(",") if "@" in a]
    permanent, temporary = from_library(raw)
    if not result.failed:
        result.failed = permanent + temporary or failed_from_text(text)
    if not dsn_seen:
        # flufl.bounce's "permanent" includes full mailboxes: the text must not say so.
        result.permanent = permanent_by_text(text) or (
            bool(permanent) and not temporary and not _TEMPORARY_TEXT.search(text[:_SAMPLE]))
    result.failed = list(dict.fromkeys(result.failed))
    return result
