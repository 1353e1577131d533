"""SPF, DKIM and DMARC of one e-mail: verified from its envelope, or read from trusted headers."""

from __future__ import annotations

import re
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import Any

from gateway.config.trust_settings import TrustSettings
from gateway.intake.sender_dns import (
    Dns,
    DnsTemporaryError,
    check_spf,
    dmarc_record,
    organizational_domain,
    resolver_for,
)

Result = dict[str, Any]
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def from_domain_of(headers: Any) -> str | None:
    """The one From domain DMARC is about; None for no From or several (RFC 7489 6.6.1)."""
    values = headers.get_all("From") or []
    addresses = [a for _, a in getaddresses([str(v) for v in values]) if "@" in a]
    if len(values) != 1 or len(addresses) != 1:
        return None
    return addresses[0].rpartition("@")[2].strip().lower().rstrip(".") or None


def aligned(domain: str | None, from_domain: str, strict: bool) -> bool:
    if not domain:
        return False
    domain = domain.lower().rstrip(".")
    if strict:
        return domain == from_domain
    return organizational_domain(domain) == organizational_domain(from_domain)


def authenticate(raw: bytes, source: dict[str, Any], trust: TrustSettings) -> Result:
    """The authentication of RAW: verified ourselves when it came straight to our SMTP
    listener, else read from Authentication-Results (or ARC) of whom we trust."""
    head = _HEADER_END.split(raw[:262144], maxsplit=1)[0] + b"\r\n\r\n"
    headers = BytesHeaderParser(policy=compat32).parsebytes(head)
    from_domain = from_domain_of(headers)
    if source.get("via") == "smtp" and trust.verify_smtp:
        lookup = Dns(resolver_for(trust))
        return verify(raw, source, from_domain, lookup, trust.dns_timeout_s)
    from gateway.intake.sender_headers import from_trusted_headers

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


def conclude(source: str, from_domain: str | None, spf: tuple[str, str | None],
             dkim: tuple[str, str | None], lookup: Dns | None,
             dmarc_given: str | None = None) -> Result:
    """SPF and DKIM with alignment to the From domain, DMARC's result, and our verdict."""
    result: Result = {"source": source, "from_domain": from_domain}
    if from_domain is None:
        result.update(spf={"result": spf[0], "domain": spf[1], "aligned": False},
                      dkim={"result": dkim[0], "domain": dkim[1], "aligned": False},
                      dmarc={"result": "permerror", "policy": None},
                      verdict="fail", reason="no single From address to authenticate")
        return result
    record: dict[str, str] | None = None
    dmarc_error = False
    if dmarc_given is None and lookup is not None:
        try:
            record = dmarc_record(lookup, from_domain)
        except DnsTemporaryError:
            dmarc_error = True
    strict_spf = bool(record and record.get("aspf", "r").lower() == "s")
    strict_dkim = bool(record and record.get("adkim", "r").lower() == "s")
    spf_aligned = spf[0] == "pass" and aligned(spf[1], from_domain, strict_spf)
    dkim_aligned = dkim[0] == "pass" and aligned(dkim[1], from_domain, strict_dkim)
    result["spf"] = {"result": spf[0], "domain": spf[1], "aligned": spf_aligned}
    result["dkim"] = {"result": dkim[0], "domain": dkim[1], "aligned": dkim_aligned}
    temporary = "temperror" in (spf[0], dkim[0])
    policy = None
    if record is not None:
        policy = (record.get("sp") if record["domain"] != from_domain and record.get("sp")
                  else record.get("p"))
    if dmarc_given is not None:
        dmarc = dmarc_given
    elif dmarc_error:
        dmarc = "temperror"
    elif record is None:
        dmarc = "none"
    elif spf_aligned or dkim_aligned:
        dmarc = "pass"
    else:
        dmarc = "temperror" if temporary else "fail"
    result["dmarc"] = {"result": dmarc, "policy": policy}
    if dmarc == "pass" or (dmarc == "none" and (spf_aligned or dkim_aligned)):
        verdict, reason = "pass", f"{from_domain}: " + (
            "DMARC pass" if dmarc == "pass" else
            f"{'DKIM' if dkim_aligned else 'SPF'} pass aligned (no DMARC record)")
    elif dmarc == "temperror" or (dmarc == "none" and temporary):
        verdict, reason = "temperror", f"{from_domain}: DNS did not answer in time"
    elif dmarc == "fail":
        verdict, reason = "fail", (f"{from_domain}: DMARC fail (SPF {spf[0]}, "
                                   f"DKIM {dkim[0]}, none aligned)")
    else:
        verdict, reason = "fail", (f"{from_domain}: no DMARC record, and neither SPF "
                                   f"({spf[0]}) nor DKIM ({dkim[0]}) passes aligned")
    result.update(verdict=verdict, reason=reason)
    return result
