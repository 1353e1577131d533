"""Sender authentication for the SMTP bench: the senders' zones served on loopback, mail signed."""

from __future__ import annotations

import dataclasses
from contextlib import AbstractContextManager

from bench.mail_factory import DOMAINS, BenchMessage
from tests.dns_zone import DkimKey, Zones, loopback_dns


def zones_for(key: DkimKey) -> Zones:
    """What each bench domain publishes: SPF for loopback, a DKIM key, DMARC p=none."""
    zones = Zones()
    for domain in DOMAINS:
        zones.add_txt(domain, "v=spf1 ip4:127.0.0.1 -all")
        zones.add_txt(f"bench._domainkey.{domain}", key.record)
        zones.add_txt(f"_dmarc.{domain}", "v=DMARC1; p=none")
    return zones


def serve(zones: Zones) -> AbstractContextManager[int]:
    return loopback_dns(zones)


def signed(messages: list[BenchMessage], key: DkimKey) -> list[BenchMessage]:
    """MESSAGES with a DKIM signature of their sender's domain (made before timing starts)."""
    import dkim

    result = []
    for message in messages:
        domain = message.sender.rpartition("@")[2].encode()
        signature = dkim.sign(message.data, b"bench", domain, key.private_pem,
                              include_headers=[b"from", b"to", b"subject", b"date",
                                               b"message-id"])
        result.append(dataclasses.replace(message, data=signature + message.data))
    return result


def trust_section(port: int | None) -> str:
    """[trust] for the bench's config: verification against the loopback DNS, or off."""
    if port is None:
        return '[trust]\nmode = "off"\n'
    return f'[trust]\nmode = "report"\nresolvers = ["127.0.0.1:{port}"]\ndns_timeout_s = 2\n'
