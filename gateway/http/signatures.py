"""Who may call a hook: each provider's own signature scheme, path tokens, address lists."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from datetime import UTC, datetime

from gateway.http.errors import Refused


def _same(expected: str, given: str) -> bool:
    """A constant-time comparison of two texts; compare_digest refuses str with non-ASCII
    characters (TypeError: a 500 for any sender with such a signature header)."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape"))


def check_generic(secret: str, headers: Mapping[str, str], body: bytes, now: datetime,
                  window_s: int) -> None:
    """X-Timestamp and X-Signature: sha256=hex(HMAC-SHA256(secret, timestamp + "." + body))."""
    timestamp = headers.get("x-timestamp", "")
    signature = headers.get("x-signature", "")
    if not timestamp or not signature:
        raise Refused(401, "missing X-Timestamp or X-Signature")
    # isdigit() alone takes "²" and other digits int() refuses (that was a 500).
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise Refused(401, "X-Timestamp is not unix seconds")
    # Outside the window a captured request cannot be replayed, even with a valid signature.
    if abs(now.timestamp() - int(timestamp)) > window_s:
        raise Refused(401, f"timestamp outside the ±{window_s} s window")
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    if not _same(f"sha256={expected}", signature.strip().lower()):
        raise Refused(401, "bad signature")


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """base64(HMAC-SHA1(auth token, URL + each POST parameter's name and value, sorted))."""
    data = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def check_twilio(auth_token: str, headers: Mapping[str, str], url: str,
                 params: Mapping[str, str]) -> None:
    signature = headers.get("x-twilio-signature", "")
    if not signature:
        raise Refused(401, "missing X-Twilio-Signature")
    if not _same(twilio_signature(auth_token, url, params), signature):
        raise Refused(401, "bad signature")


# Which fields Zadarma signs, per event (its API library's getSignatureString()).
_ZADARMA_SIGNED = {
    "NOTIFY_START": ("caller_id", "called_did", "call_start"),
    "NOTIFY_INTERNAL": ("caller_id", "called_did", "call_start"),
    "NOTIFY_END": ("caller_id", "called_did", "call_start"),
    "NOTIFY_RECORD": ("pbx_call_id", "call_id_with_rec"),
}


def zadarma_signature(secret: str, params: Mapping[str, str]) -> str:
    """As Zadarma computes it: base64 of the *hex* HMAC-SHA1 of the signed fields, joined."""
    fields = _ZADARMA_SIGNED.get(params.get("event", ""), ())
    data = "".join(str(params.get(name, "")) for name in fields)
    hex_digest = hmac.new(secret.encode(), data.encode("utf-8"), hashlib.sha1).hexdigest()
    return base64.b64encode(hex_digest.encode("ascii")).decode("ascii")


def check_zadarma(secret: str, headers: Mapping[str, str], params: Mapping[str, str],
                  now: datetime, max_age_s: int) -> None:
    """Zadarma's signature, and a signed call_start within MAX_AGE_S of NOW (its signature
    leaves the call id out, so a captured notification could otherwise be replayed)."""
    signature = headers.get("signature", "")
    if not signature:
        raise Refused(401, "missing Signature")
    if params.get("event", "") not in _ZADARMA_SIGNED:
        raise Refused(401, "event Zadarma does not sign")
    if not _same(zadarma_signature(secret, params), signature):
        raise Refused(401, "bad signature")
    if "call_start" in _ZADARMA_SIGNED[params["event"]]:
        try:
            started = datetime.fromisoformat(params.get("call_start", ""))
        except ValueError:
            raise Refused(401, "call_start is not a date-time") from None
        # Written in the account's zone without an offset: read as UTC, hence the wide window.
        if started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
        if abs((now - started).total_seconds()) > max_age_s:
            raise Refused(401, f"call_start outside the ±{max_age_s} s freshness window")


def check_path_token(secret: str, token: str | None) -> None:
    """Senders that cannot sign (Zammad-style CTI, templated notifications) put it in the URL."""
    if not token:
        raise Refused(401, "missing path token")
    if not hmac.compare_digest(secret.encode(), token.encode()):
        raise Refused(401, "bad path token")


def check_source(allow_from: list[str], peer: str | None) -> None:
    """PEER must be in one of the ALLOW_FROM networks, when there are any."""
    if not allow_from:
        return
    try:
        address = ipaddress.ip_address(peer or "")
    except ValueError:
        raise Refused(401, "source address not allowed") from None
    if not any(address in ipaddress.ip_network(net, strict=False) for net in allow_from):
        raise Refused(401, "source address not allowed")

