"""Loop protection: when must we never answer a message automatically, and why."""

from __future__ import annotations

import re

from parsers.model import Request

_NO_REPLY = re.compile(
    r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|mailer[-_.]daemon|postmaster|bounces?)([-+_.@]|$)",
    re.IGNORECASE)
_BULK_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_SUPPRESS_VALUES = {"all", "autoreply", "oof"}


def acknowledgement_suppressed(request: Request, envelope_sender: str | None,
                               own_addresses: frozenset[str] | set[str]) -> str | None:
    """A human reason not to acknowledge REQUEST, or None when an acknowledgement is fine.

    `envelope_sender` is the SMTP MAIL FROM ("" for a null return path, None when unknown).
    """
    if request.kind != "normal":
        return f"message is {request.kind.replace('_', ' ')}"
    auto_submitted = (request.header("auto-submitted") or "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return f"Auto-Submitted: {auto_submitted}"
    precedence = (request.header("precedence") or "").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return f"Precedence: {precedence}"
    suppress = (request.header("x-auto-response-suppress") or "").lower()
    if _SUPPRESS_VALUES & {part.strip() for part in suppress.split(",")}:
        return f"X-Auto-Response-Suppress: {suppress}"
    if request.header("list-id") or request.header("list-unsubscribe"):
        return "mailing-list message"
    if envelope_sender == "":
        return "null return path"
    address = request.sender.address.lower() if request.sender else ""
    if not address or "@" not in address:
        return "no sender address"
    if _NO_REPLY.match(address.partition("@")[0]):
        return f"no-reply sender {address}"
    if address in own_addresses:
        return f"sender {address} is our own address"
    return None
