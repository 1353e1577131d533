"""Authentication results someone else found: Authentication-Results and ARC of whom we trust."""

from __future__ import annotations

import re
from typing import Any

from gateway.config.trust_settings import TrustSettings
from gateway.intake.sender_dns import Dns, resolver_for
from gateway.intake.sender_verdict import Result, conclude

_INSTANCE = re.compile(r"^\s*i\s*=\s*(\d+)\s*;", re.IGNORECASE)
_TAG_D = re.compile(r"(?:^|;)\s*d\s*=\s*([^;\s]+)", re.IGNORECASE)


def _parse(value: str) -> Any | None:
    """authres's reading of one header value; None when it is not well-formed."""
    import authres

    try:
        return authres.AuthenticationResultsHeader.parse_value(" ".join(value.split()))
    except Exception:  # authres raises several syntax errors of its own
        return None


def _property(result: Any, ptype: str, name: str) -> str | None:
    for prop in result.properties or []:
        if prop.type == ptype and prop.name == name and prop.value:
            return str(prop.value)
    return None


def _results(header: Any, from_domain: str | None) -> tuple[tuple[str, str | None],
                                                           tuple[str, str | None], str | None]:
    """SPF, the best DKIM and DMARC out of one parsed Authentication-Results."""
    spf: tuple[str, str | None] = ("none", None)
    dkim: tuple[str, str | None] = ("none", None)
    dmarc = None
    for result in header.results:
        method, outcome = result.method.lower(), (result.result or "none").lower()
        if method == "spf":
            address = _property(result, "smtp", "mailfrom") or _property(result, "smtp", "helo")
            spf = (outcome, address.rpartition("@")[2].lower() if address else None)
        elif method == "dkim":
            domain = _property(result, "header", "d") or (
                (_property(result, "header", "i") or "").rpartition("@")[2] or None)
            better = outcome == "pass" and (dkim[0] != "pass" or (
                from_domain is not None and domain is not None
                and domain.lower().endswith(from_domain)))
            if better or dkim[0] == "none":
                dkim = (outcome, domain.lower() if domain else None)
        elif method == "dmarc":
            dmarc = outcome
    return spf, dkim, dmarc


def from_trusted_headers(raw: bytes, headers: Any, from_domain: str | None,
                         trust: TrustSettings) -> Result:
    """The topmost Authentication-Results of a trusted authserv-id (any other is what a sender
    may have written themselves and is ignored), else a trusted sealer's ARC results."""
    trusted = set(trust.trusted_authserv_ids)
    for value in headers.get_all("Authentication-Results") or []:
        parsed = _parse(str(value))
        if parsed is not None and str(parsed.authserv_id).lower() in trusted:
            spf, dkim, dmarc = _results(parsed, from_domain)
            return conclude(f"authserv-id {parsed.authserv_id}", from_domain, spf, dkim,
                            None, dmarc if dmarc in ("pass", "fail", "temperror") else None)
    if trust.arc_sealers and headers.get_all("ARC-Seal"):
        found = from_arc(raw, headers, from_domain, trust)
        if found is not None:
            return found
    if trusted or trust.arc_sealers:
        why = "no Authentication-Results from a trusted authserv-id"
        verdict = "fail"
    else:
        why = "no trusted authserv-id configured ([trust] trusted_authserv_ids)"
        verdict = "none"
    return {"source": None, "from_domain": from_domain, "spf": None, "dkim": None,
            "dmarc": None, "verdict": verdict, "reason": why}


def from_arc(raw: bytes, headers: Any, from_domain: str | None,
              trust: TrustSettings) -> Result | None:
    """The results a configured sealer recorded, when the ARC chain verifies."""
    import dkim

    seals = [str(v) for v in headers.get_all("ARC-Seal") or []]
    instances = [(int(m.group(1)), s) for s in seals if (m := _INSTANCE.match(s))]
    if not instances:
        return None
    latest, seal = max(instances)
    sealer = _TAG_D.search(seal.replace("\r\n", " ").replace("\n", " "))
    if sealer is None or sealer.group(1).lower() not in trust.arc_sealers:
        return None
    lookup = Dns(resolver_for(trust))
    try:
        chain, _, _ = dkim.arc_verify(raw, dnsfunc=lookup.dkim_txt,
                                      timeout=int(max(1, trust.dns_timeout_s)))
    except Exception:  # a broken chain is simply not trusted
        return None
    if chain != dkim.CV_Pass:
        return None
    for value in headers.get_all("ARC-Authentication-Results") or []:
        match = _INSTANCE.match(str(value))
        if match and int(match.group(1)) == latest:
            parsed = _parse(str(value)[match.end():])
            if parsed is None:
                return None
            spf, dkim_result, dmarc = _results(parsed, from_domain)
            return conclude(f"arc {sealer.group(1).lower()}", from_domain, spf, dkim_result,
                            None, dmarc if dmarc in ("pass", "fail", "temperror") else None)
    return None
