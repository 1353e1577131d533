"""DNS for sender authentication: one configured resolver with timeouts and a TTL cache."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
import spf

from gateway.config.settings import split_host_port
from gateway.config.trust_settings import TrustSettings


class DnsTemporaryError(Exception):
    """No answer in time (or no server answered): the check's result is temperror."""


# One resolver per configuration (servers, timeout) in each process: its cache keeps every
# answer, negative ones too, for the record's TTL, so a busy sender's keys and policies are
# asked for once per TTL, not once per message.
_resolvers: dict[tuple[tuple[str, ...], float], dns.resolver.Resolver] = {}
_lock = threading.Lock()


def resolver_for(trust: TrustSettings) -> dns.resolver.Resolver:
    key = (tuple(trust.resolvers), trust.dns_timeout_s)
    with _lock:
        resolver = _resolvers.get(key)
        if resolver is None:
            resolver = dns.resolver.Resolver(configure=not trust.resolvers)
            if trust.resolvers:
                resolver.nameservers = [
                    dns.nameserver.Do53Nameserver(*split_host_port(server))
                    for server in trust.resolvers]
            resolver.timeout = resolver.lifetime = trust.dns_timeout_s
            resolver.cache = dns.resolver.LRUCache(50_000)
            _resolvers[key] = resolver
    return resolver


@dataclass(frozen=True)
class Dns:
    """Look-ups through RESOLVER, in the shapes dkimpy and pyspf expect."""

    resolver: dns.resolver.Resolver

    def answers(self, name: str, qtype: str) -> list[Any]:
        """The records of NAME; [] when there are none; DnsTemporaryError on a timeout."""
        try:
            answer = self.resolver.resolve(name, qtype, search=False,
                                           raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers,
                dns.resolver.LifetimeTimeout) as error:
            raise DnsTemporaryError(f"DNS {qtype} {name}: {error}") from None
        return list(answer.rrset or [])

    def txt(self, name: str) -> list[bytes]:
        return [b"".join(r.strings) for r in self.answers(name, "TXT")]

    def dkim_txt(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        """dkimpy's `dnsfunc`: the first TXT record of NAME, or None."""
        import dkim

        key = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        try:
            records = self.txt(key.rstrip("."))
        except DnsTemporaryError as error:
            raise dkim.DnsTimeoutError(str(error)) from None
        return records[0] if records else None


_spf_dns = threading.local()


def _spf_lookup(name: str, qtype: str, strict: bool = True,
                timeout: float = 30) -> list[tuple[tuple[str, str], Any]]:
    """pyspf's look-up hook (its `DNSLookup`), answered by the resolver of this thread's check."""
    lookup: Dns = _spf_dns.current
    try:
        records = lookup.answers(name, qtype)
    except DnsTemporaryError as error:
        raise spf.TempError(str(error)) from None
    result: list[tuple[tuple[str, str], Any]] = []
    for record in records:
        if qtype in ("A", "AAAA"):
            result.append(((name, qtype), record.address))
        elif qtype == "MX":
            result.append(((name, qtype), (record.preference, record.exchange)))
        elif qtype == "PTR":
            result.append(((name, qtype), record.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            result.append(((name, qtype), record.strings))
    return result


# pyspf looks names up through its module's DNSLookup (it swaps in pydns or dnspython the
# same way); ours sends them to the configured resolver and its cache.
spf.DNSLookup = _spf_lookup


def check_spf(lookup: Dns, peer: str, mail_from: str, helo: str, timeout: float) -> str:
    """pyspf's result for the envelope: pass, fail, softfail, neutral, none, permerror,
    temperror."""
    _spf_dns.current = lookup
    try:
        result, _explanation = spf.check2(i=peer, s=mail_from, h=helo or "unknown",
                                          timeout=timeout, querytime=4 * timeout)
    except Exception:  # a malformed peer address or name; pyspf raises few of its own
        return "permerror"
    finally:
        _spf_dns.current = None
    return str(result)


def organizational_domain(domain: str) -> str:
    """The registered domain of DOMAIN by the Public Suffix List (shipped with `tld`);
    names under no listed suffix (.example, .test) by their last two labels."""
    from tld import get_fld

    domain = domain.lower().rstrip(".")
    found = get_fld(domain, fix_protocol=True, fail_silently=True)
    return str(found) if found else ".".join(domain.split(".")[-2:])


def dmarc_record(lookup: Dns, domain: str) -> dict[str, str] | None:
    """The DMARC record's tags for DOMAIN (or its organizational domain), None without one."""
    for name in dict.fromkeys([domain, organizational_domain(domain)]):
        records = [r for r in lookup.txt(f"_dmarc.{name}")
                   if r[:8].lower() == b"v=dmarc1"]
        if len(records) == 1:
            tags: dict[str, str] = {}
            for part in records[0].decode("ascii", "replace").split(";"):
                tag, _, value = part.partition("=")
                if tag.strip():
                    tags[tag.strip().lower()] = value.strip()
            tags["domain"] = name
            return tags
    return None
