"""SPF, DKIM and DMARC of one e-mail: verified from its envelope, or read from trusted headers."""

from __future__ import annotations

import re
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import Any

from gateway.config.trust_settings import TrustSettings
from gateway.intake.sender_dns import Dns, check_spf, resolver_for
from gateway.intake.sender_headers import from_arc, from_trusted_headers
from gateway.intake.sender_verdict import Result, aligned, conclude

_HEADER_END = re.compile(rb"\r?\n\r?\n")


def from_domain_of(headers: Any) -> str | None:
    """The one From domain DMARC is about; None for no From or several (RFC 7489 6.6.1)."""
    values = headers.get_all("From") or []
    addresses = [a for _, a in getaddresses([str(v) for v in values]) if "@" in a]
    if len(values) != 1 or len(addresses) != 1:
        return None
    return addresses[0].rpartition("@")[2].strip().lower().rstrip(".") or None


def authenticate(raw: bytes, source: dict[str, Any], trust: TrustSettings) -> Result:
    """The authentication of RAW: verified ourselves when it came straight to our SMTP
    listener, else read from Authentication-Results (or ARC) of whom we trust."""
    head = _HEADER_END.split(raw[:262144], maxsplit=1)[0] + b"\r\n\r\n"
    headers = BytesHeaderParser(policy=compat32).parsebytes(head)
    from_domain = from_domain_of(headers)
    if source.get("via") == "smtp" and trust.verify_smtp:
        lookup = Dns(resolver_for(trust))
        found = verify(raw, source, from_domain, lookup, trust.dns_timeout_s)
        if found["verdict"] == "fail" and trust.arc_sealers and headers.get_all("ARC-Seal"):
            # A list or forwarder we trust changed the message (DKIM broken, SPF its own):
            # what it found before it did is what counts.
            sealed = from_arc(raw, headers, from_domain, trust)
            if sealed is not None and sealed["verdict"] == "pass":
                sealed["reason"] += f" (as sealed; our own check: {found['reason']})"
                return sealed
        return found
    return from_trusted_headers(raw, headers, from_domain, trust)


def verify(raw: bytes, source: dict[str, Any], from_domain: str | None, lookup: Dns,
           timeout: float) -> Result:
    """As the receiving MTA: SPF of the peer for MAIL FROM (or HELO), the DKIM signatures,
    and the From domain's DMARC policy with alignment."""
    mail_from = str(source.get("mail_from") or "")
    helo = str(source.get("helo") or "")
    peer = str(source.get("peer") or "")
    spf_domain = (mail_from.rpartition("@")[2] if "@" in mail_from else helo).lower()
    spf_result = check_spf(lookup, peer, mail_from, helo, timeout)
    dkim_result, dkim_domain = _check_dkim(raw, lookup, from_domain, timeout)
    return conclude("smtp", from_domain, (spf_result, spf_domain), (dkim_result, dkim_domain),
                    lookup)


def _check_dkim(raw: bytes, lookup: Dns, from_domain: str | None,
                timeout: float) -> tuple[str, str | None]:
    """The best DKIM signature: an aligned pass, else any pass, else why they failed."""
    import dkim

    checker = dkim.DKIM(raw, timeout=int(max(1, timeout)))
    count = len([h for h, _ in checker.headers if h.lower() == b"dkim-signature"])
    if count == 0:
        return "none", None
    best: tuple[str, str | None] = ("fail", None)
    for index in range(count):
        try:
            good = checker.verify(idx=index, dnsfunc=lookup.dkim_txt)
        except dkim.DnsTimeoutError:
            good, outcome = False, "temperror"
        except dkim.ValidationError:  # a body or header hash that does not match: fail
            good, outcome = False, "fail"
        except dkim.DKIMException:
            good, outcome = False, "permerror"
        else:
            outcome = "pass" if good else "fail"
        domain = checker.domain.decode("ascii", "replace").lower() if checker.domain else None
        if good and from_domain and aligned(domain, from_domain, strict=False):
            return "pass", domain
        if good or (best[0] != "pass" and outcome == "temperror") or best[1] is None:
            best = (outcome, domain)
    return best
