"""The verdict on one e-mail's sender: SPF and DKIM aligned with the From domain, and DMARC."""

from __future__ import annotations

from typing import Any

from gateway.intake.sender_dns import Dns, DnsTemporaryError, dmarc_record, organizational_domain

Result = dict[str, Any]


def aligned(domain: str | None, from_domain: str, strict: bool) -> bool:
    if not domain:
        return False
    domain = domain.lower().rstrip(".")
    if strict:
        return domain == from_domain
    return organizational_domain(domain) == organizational_domain(from_domain)


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
