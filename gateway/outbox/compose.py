"""Acknowledgements and notices from templates, with headers no customer text can forge."""

from __future__ import annotations

import base64
import functools
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from zoneinfo import ZoneInfo

import jinja2

from parsers.headers import strip_invisible
from parsers.idn import ascii_address

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("gateway.outbox", "templates"),
    autoescape=False,  # plain-text mail; nothing here is HTML
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    # The templates are package files, read once: otherwise every render stats its file.
    auto_reload=False,
)
_ADDR_SPEC = re.compile(r"[^\s@<>,;\"()\\]+@[^\s@<>,;\"()\\]+")
_SERVICE_ZONE = ZoneInfo("Europe/Moscow")
PRIORITY_NAMES = {
    "en": {"critical": "1 (critical)", "high": "2 (high)", "medium": "3 (medium)",
           "low": "4 (low)"},
    "ru": {"critical": "1 (критический)", "high": "2 (высокий)", "medium": "3 (средний)",
           "low": "4 (низкий)"},
}


def header_safe(value: str | None, limit: int = 200) -> str:
    """VALUE on one line: control characters (CR, LF, NUL ...) become spaces; long text is cut."""
    text = _CONTROL.sub(" ", strip_invisible(value or "")).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def safe_address(address: str | None) -> str | None:
    """ADDRESS if it is one plain addr-spec we can write in a header, else None."""
    return _safe_address(address) if address else None


# Cached: the same few senders recur, and the email package's address parser is slow.
@functools.lru_cache(maxsize=4096)
def _safe_address(address: str) -> str | None:
    parsed = parseaddr(address)[1]
    if parsed != address.strip() or not _ADDR_SPEC.fullmatch(parsed):
        return None
    return parsed


@functools.lru_cache(maxsize=16)
def sender_parts(sender: str) -> tuple[str, str]:
    """The configured From (`Name <address>`) as (name, address), parsed once."""
    return parseaddr(sender)


@dataclass(frozen=True)
class Acknowledgement:
    message_id: str  # without angle brackets
    recipient: str
    data: bytes


@dataclass(frozen=True)
class TicketFacts:
    """What the acknowledgement says about the ticket."""

    number: str
    subject: str
    priority: str
    reaction_due: datetime
    resolution_due: datetime
    language: str
    requester_name: str | None
    requester_email: str
    in_reply_to: str | None  # the customer's Message-ID, without brackets
    references: list[str]
    # The customer declared another priority: (declared, why ours differs), per the seed.
    priority_change: tuple[str, str] | None = None


def _when(instant: datetime, language: str) -> str:
    local = instant.astimezone(_SERVICE_ZONE)
    return local.strftime("%d.%m.%Y %H:%M МСК" if language == "ru" else "%Y-%m-%d %H:%M MSK")


def render_acknowledgement(facts: TicketFacts, sender: str, now: datetime,
                           ticket_link: str | None = None) -> Acknowledgement:
    """A complete RFC 5322 message acknowledging the ticket, addressed to the requester
    (with TICKET_LINK, the signed link to its page in the portal, when there is one)."""
    return render_mail("acknowledgement", facts, sender, now, ticket_link=ticket_link)


def render_mail(template: str, facts: TicketFacts, sender: str, now: datetime,
                auto_submitted: str = "auto-replied", subject_note: str = "",
                **extra: object) -> Acknowledgement:
    """A complete RFC 5322 message about the ticket from TEMPLATE.<language>.txt.j2.

    Instants among EXTRA are written in Moscow time; priorities by their names.
    """
    language = facts.language if facts.language in PRIORITY_NAMES else "en"
    sender_name, sender_address = sender_parts(sender)
    domain = sender_address.rpartition("@")[2] or "localhost"
    subject = header_safe(facts.subject) or ("(без темы)" if language == "ru" else "(no subject)")
    values = {key: _when(v, language) if isinstance(v, datetime)
              else PRIORITY_NAMES[language].get(v, v) if key.endswith("priority")
              and isinstance(v, str) else v for key, v in extra.items()}
    body = _TEMPLATES.get_template(f"{template}.{language}.txt.j2").render(
        name=header_safe(facts.requester_name, 100),
        number=facts.number,
        subject=subject,
        priority=PRIORITY_NAMES[language][facts.priority],
        reaction_due=_when(facts.reaction_due, language),
        resolution_due=_when(facts.resolution_due, language),
        signature=header_safe(sender_name) or "Support",
        declared=(PRIORITY_NAMES[language].get(facts.priority_change[0])
                  if facts.priority_change else None),
        change_reason=facts.priority_change[1] if facts.priority_change else None,
        **values,
    )
    message_id = make_msgid(idstring=facts.number, domain=domain)
    # An IDNA domain is sent in A-labels; a non-ASCII local part stays (RFC 6531: it needs
    # SMTPUTF8 from the relay, and the header is UTF-8 as RFC 6532 allows).
    recipient = ascii_address(facts.requester_email) or facts.requester_email
    headers = [
        ("Message-ID", message_id),
        ("Date", format_datetime(now)),
        ("From", formataddr((header_safe(sender_name), sender_address), charset="utf-8")),
        ("To", _to_header(header_safe(facts.requester_name, 100), recipient)),
        ("Subject", _encoded("Subject", f"[{facts.number}] {subject_note}{subject}")),
        ("Auto-Submitted", auto_submitted),
        # Ask Exchange and friends not to answer our answer.
        ("X-Auto-Response-Suppress", "All"),
        ("X-Intake-Ticket", facts.number),
    ]
    if facts.in_reply_to and _plain_id(facts.in_reply_to):
        headers.append(("In-Reply-To", f"<{facts.in_reply_to}>"))
    thread_ids = [i for i in (*facts.references, facts.in_reply_to) if i and _plain_id(i)]
    if thread_ids:
        headers.append(("References", "\r\n ".join(
            f"<{i}>" for i in dict.fromkeys(thread_ids[-20:]))))
    # Cyrillic text is a third of the size in base64 that it would be in quoted-printable.
    octets = body.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
    encoding = "7bit" if octets.isascii() else "base64"
    headers += [("MIME-Version", "1.0"),
                ("Content-Type", 'text/plain; charset="utf-8"'),
                ("Content-Transfer-Encoding", encoding)]
    # Assembled by hand: every value above is either ours, checked, or RFC 2047-encoded, and
    # this is ten times cheaper than the email package's header policy machinery.
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    text = octets if encoding == "7bit" else base64.encodebytes(octets).replace(b"\n", b"\r\n")
    data = f"{head}\r\n".encode() + text
    return Acknowledgement(message_id.strip("<>"), recipient, data)


def _to_header(name: str, address: str) -> str:
    if address.isascii():
        return formataddr((name, address), charset="utf-8")
    # formataddr refuses a non-ASCII address; the name in UTF-8 is as legal as the address.
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{address}>' if name else f"<{address}>"


def _encoded(name: str, value: str) -> str:
    """VALUE as is when it is plain ASCII, else RFC 2047 base64 encoded words, folded so that
    every line, the first with "NAME: " too, stays within 76 characters (by hand:
    email.header.Header took a tenth of a registration)."""
    if value.isascii():
        return value
    # UTF-8 octets per word: "=?utf-8?b?" and "?=" around their base64 fill the rest.
    room = (76 - len(name) - 2 - 12) // 4 * 3
    words: list[bytes] = []
    octets = b""
    for char in value:
        encoded = char.encode("utf-8")
        if len(octets) + len(encoded) > room:
            words.append(octets)
            octets = b""
        octets += encoded
    words.append(octets)
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?=" for w in words)


def _plain_id(message_id: str) -> bool:
    """A Message-ID we can echo back safely: printable, no spaces or brackets."""
    return bool(re.fullmatch(r"[\x21-\x3b\x3d\x3f-\x7e]{1,500}", message_id))
