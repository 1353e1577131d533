"""The `[trust]` policy: whose From line is believed, what is held, which replies count."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import structlog

from gateway.config.customers import CustomerEntry, Directory
from gateway.config.trust_settings import TrustSettings

if TYPE_CHECKING:
    from gateway.tickets.context import Context

log = structlog.get_logger("gateway.trust")


def authenticate_input(raw: bytes, source_json: str, context: Context) -> str | None:
    """The authentication of one e-mail input as stored JSON; None with `mode = "off"`.

    Never raises: a check that cannot be made is recorded as such, and the mail goes on."""
    trust = context.settings.trust
    if trust.mode == "off":
        return None
    from gateway.intake.sender_auth import authenticate

    try:
        source = json.loads(source_json or "{}")
        found = authenticate(raw, source if isinstance(source, dict) else {}, trust)
    except Exception as error:  # a library's bug must not cost us the message
        log.warning("trust.check_failed", error=f"{type(error).__name__}: {error}")
        found = {"source": None, "verdict": "temperror",
                 "reason": f"the check failed: {type(error).__name__}"}
    return json.dumps(found, ensure_ascii=False)


def mode_for(trust: TrustSettings, customer: CustomerEntry | None) -> str:
    """enforce for a customer's address (unless the customers file says otherwise for that
    customer), report for everyone else."""
    if trust.mode == "off":
        return "off"
    if customer is None:
        return "report"
    return customer.trust or trust.mode


def loaded(authentication: str | None) -> dict[str, Any] | None:
    if not authentication:
        return None
    value = json.loads(authentication)
    return value if isinstance(value, dict) else None


def hold_reason(authentication: dict[str, Any] | None, customer: CustomerEntry | None,
                trust: TrustSettings) -> str | None:
    """Why a message claiming CUSTOMER's address waits for a human, or None."""
    if (customer is None or authentication is None
            or mode_for(trust, customer) != "enforce"
            or authentication.get("verdict") != "fail"):
        return None
    return (f"held: sender authentication failed for customer {customer.id}: "
            f"{authentication.get('reason')}")


def reply_refusal(authentication: dict[str, Any] | None, sender: str | None,
                  ticket_customer: str | None, directory: Directory,
                  trust: TrustSettings) -> str | None:
    """Why a reply may not change its ticket (raise, agree to a lowering, reopen), or None.

    On a customer's ticket under enforce it counts only from that customer's address with a
    verdict of pass."""
    customer = directory.get(ticket_customer)
    if customer is None or mode_for(trust, customer) != "enforce":
        return None
    matched = directory.match_email(sender)
    if matched is None or matched.id != customer.id:
        return f"sender {sender or '(none)'} is not an address of customer {customer.id}"
    verdict = (authentication or {}).get("verdict", "none")
    if verdict != "pass":
        why = (authentication or {}).get("reason") or "not checked"
        return f"sender not authenticated ({verdict}: {why})"
    return None
