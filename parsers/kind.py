"""Tell ordinary mail from auto-replies, bounces (DSNs), feedback reports and list traffic.

Order matters: a bounce usually also carries Auto-Submitted, and a vacation reply may come from
a list server, so structural evidence (multipart/report) wins, then bounce evidence, then
auto-reply markers, then list headers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parsers.bounce_text import failed_from_text, looks_like_bounce_text
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


# A list manager's administrative address: moderation, subscription and rejection notices.
_LIST_MANAGER = re.compile(
    r"^(?:[^@]+-(?:owner|request|admin|bounces?|confirm|join|leave|subscribe|unsubscribe)|"
    r"owner-[^@]+|majordomo|listserv|mailman|sympa|listproc|ecartis|lyris|mlmmj|"
    r"[^@]+-(?:approval|moderator)s?)(?:\+[^@]*)?@", re.IGNORECASE)
_BOUNCE_SENDER = re.compile(
    r"^(?:mailer-daemon|post_?master|mail-daemon|maildaemon|mailerdaemon|mdaemon|"
    r"mail\.?delivery\.?(?:system|subsystem)|bounces?|double-bounce|"
    r"microsoftexchange[0-9a-f]*|nobody-bounce|mailer)@", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered mail|delivery status notification|delivery (?:status )?failure|"
    r"delivery has failed|delivery notification|mail delivery fail|failure notice|"
    r"returned mail|returned to sender|mail system error|could not be delivered|"
    r"non[- ]?delivery|nondeliverable|delivery problem|warning: could not send|"
    r"message not delivered|mail could not be delivered|rejected:|delayed mail|"
    r"not yet been delivered|delivery delay|message .{0,40}delayed|mail failed|"
    r"returning to sender|automatically rejected mail|\bmail error\b|failed mail|"
    r"delivery warning|"
    r"недоставленное сообщение|не удалось доставить|сообщение не доставлено|"
    r"unzustellbar|nicht zustellbar|non remis|non recapitabile|no se puede entregar",
    re.IGNORECASE)
_AUTO_SUBJECT = re.compile(
    r"out of (?:the )?office|auto(?:matic)?[- ]?(?:reply|response|responder|antwort)|"
    r"autoreply|vacation|on leave|away from (?:my|the) (?:desk|office)|abwesenheit|"
    r"absence|absent|автоответ|автоматический ответ|нет на месте|в отпуске|отпуск",
    re.IGNORECASE)
_FEEDBACK_SUBJECT = re.compile(r"^\s*complaint about message from\b", re.IGNORECASE)
_FEEDBACK_FIELD = re.compile(rb"^Feedback-Type:[ \t]*\w", re.IGNORECASE | re.MULTILINE)
# Amazon SES delivers bounce and complaint notifications as JSON through SNS.
_SES_TYPE = re.compile(r'\\?"notificationType\\?"\s*:\s*\\?"(Bounce|Complaint|Delivery)\\?"')
# Neither regex above starts with a literal, so re tries it at every position of the text;
# a substring test for the literal every match contains rules out nearly all mail far faster.
_SES_LITERAL = "notificationType"
_FEEDBACK_LITERAL = b"feedback-type:"
_DSN_FIELD = re.compile(r"^([A-Za-z-]+)[ \t]*:[ \t]*(.*)$")
_ADDR_IN = re.compile(r"<?([^\s<>;\"']+@[^\s<>;\"']+?)>?[ \t]*$")


def _has_feedback_field(payload: bytes) -> bool:
    head = payload[:4096]
    # bytes.lower() folds ASCII only, as IGNORECASE does for a bytes pattern.
    return _FEEDBACK_LITERAL in head.lower() and bool(_FEEDBACK_FIELD.search(head))


def _ses_type(text: str) -> str | None:
    head = text[:20000]
    if _SES_LITERAL not in head:
        return None
    match = _SES_TYPE.search(head)
    return match.group(1) if match else None


def _first(headers: dict[str, list[str]], name: str) -> str:
    values = headers.get(name)
    return values[0].strip() if values else ""


def _dsn_failed(payload: bytes) -> list[str]:
    """Recipients with Action: failed (or a 5.x.x status) in a message/delivery-status body."""
    text = payload.decode("utf-8", "replace").replace("\r\n", "\n")
    text = re.sub(r"\n[ \t]+", " ", text)
    failed: list[str] = []
    for block in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            m = _DSN_FIELD.match(line.strip())
            if m:
                fields.setdefault(m.group(1).lower(), m.group(2).strip())
        recipient = fields.get("final-recipient") or fields.get("original-recipient")
        if not recipient:
            continue
        action = fields.get("action", "").lower()
        status = fields.get("status", "")
        if action.startswith("failed") or (not action and status.startswith("5")):
            value = recipient.split(";", 1)[-1].strip()
            m = _ADDR_IN.search(value)
            if m:
                failed.append(m.group(1).strip(".").lower())
    return failed


def _dedupe(items: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item.lower(), None)
    return list(seen)


def _bounce_result(facts: MailFacts) -> tuple[Kind, list[str]]:
    failed: list[str] = []
    for ctype, payload in facts.parts:
        if ctype == "message/delivery-status":
            failed.extend(_dsn_failed(payload))
    for value in facts.headers.get("x-failed-recipients", []):
        failed.extend(a.strip().lower() for a in value.split(",") if "@" in a)
    if not failed:
        failed = failed_from_text(facts.text)
    return "bounce", _dedupe(failed)


def _is_daemon_sender(facts: MailFacts) -> bool:
    """MAILER-DAEMON sends nothing but delivery reports (postmaster is a person too)."""
    return bool(re.search(r"\bmailer-daemon\b", _first(facts.headers, "from"), re.IGNORECASE))


def _is_bounce_sender(facts: MailFacts) -> bool:
    return_path = _first(facts.headers, "return-path").strip("<> ")
    return bool(_BOUNCE_SENDER.match(facts.sender or "")) or bool(
        re.match(r"(?:mailer-daemon|postmaster)(?:@|$)", return_path, re.IGNORECASE))


def classify_kind(facts: MailFacts) -> tuple[Kind, list[str]]:
    """The kind of the message and, for bounces, the recipients that failed."""
    headers = facts.headers
    ctypes = {ctype for ctype, _ in facts.parts}
    report_type = facts.params.get("report-type", "").lower()
    if facts.content_type == "multipart/report" or report_type:
        if report_type == "feedback-report" or "message/feedback-report" in ctypes:
            return "feedback_report", []
        if report_type == "disposition-notification" and not _is_bounce_sender(facts):
            return "auto_reply", []
        if report_type == "delivery-status" or "message/delivery-status" in ctypes:
            return _bounce_result(facts)
    if "message/feedback-report" in ctypes or _FEEDBACK_SUBJECT.match(facts.subject) or any(
        _has_feedback_field(payload) for ctype, payload in facts.parts
        if ctype.startswith(("text/", "message/"))
    ):
        return "feedback_report", []
    ses = _ses_type(facts.text)
    if ses:
        return ("feedback_report", []) if ses == "Complaint" else ("bounce", [])
    if "message/delivery-status" in ctypes:
        return _bounce_result(facts)
    if "message/disposition-notification" in ctypes and not _is_bounce_sender(facts):
        return "auto_reply", []
    if headers.get("x-failed-recipients"):
        return _bounce_result(facts)

    return_path = _first(headers, "return-path")
    null_path = ("return-path" in headers and return_path.replace(" ", "") in ("<>", "")) or (
        "from" in headers and not facts.sender)
    # Mail addressed to a VERP/bounce-processing mailbox is a reply from a mail system.
    to_bounce_box = bool(re.search(r"[-+.]bounces?[-+@]|^bounces?[-+@]", _first(headers, "to"),
                                   re.IGNORECASE))
    bounce_subject = bool(_BOUNCE_SUBJECT.search(facts.subject))
    auto_submitted = _first(headers, "auto-submitted").lower()
    bounce_sender = _is_bounce_sender(facts)
    # The body scan is the costly test, so it comes last and only when the sender or the
    # subject already points to a bounce (it decides nothing on its own).
    if _is_daemon_sender(facts) or (
        bounce_sender and (bounce_subject or null_path or auto_submitted)
    ) or (bounce_subject and (null_path or to_bounce_box)) or (
        (bounce_sender or bounce_subject) and looks_like_bounce_text(facts.text)
    ):
        return _bounce_result(facts)

    precedence = _first(headers, "precedence").lower()
    if (
        (auto_submitted and not auto_submitted.startswith("no"))
        or headers.get("x-autoreply")
        or headers.get("x-autorespond")
        or headers.get("x-autoresponse")
        or precedence == "auto_reply"
        or (_first(headers, "x-auto-response-suppress") and _AUTO_SUBJECT.search(facts.subject))
        or (_AUTO_SUBJECT.search(facts.subject) and null_path)
    ):
        return "auto_reply", []
    if _AUTO_SUBJECT.match(facts.subject):
        return "auto_reply", []
    # "Precedence: bulk" alone is not enough: plenty of personal mail relayed by old list
    # servers and newsletters-turned-conversations carry it.
    if (headers.get("list-id") or headers.get("list-unsubscribe") or precedence == "list"
            or _LIST_MANAGER.match(facts.sender or "")):
        return "list", []
    return "normal", []
