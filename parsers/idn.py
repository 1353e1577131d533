"""Internationalised addresses (RFC 6531/6532) and domains (IDNA): compared in one form."""

from __future__ import annotations

import functools

import idna


@functools.lru_cache(maxsize=4096)
def unicode_domain(domain: str) -> str:
    """DOMAIN in its Unicode form, lowercased (UTS 46): "XN--E1AFMKFD.xn--p1ai" and "Пример.РФ"
    are both "пример.рф". A name IDNA refuses is only lowercased."""
    domain = domain.strip().rstrip(".")
    try:
        return idna.decode(domain, uts46=True)
    except (idna.IDNAError, UnicodeError, ValueError):
        return domain.lower()


def comparable_address(address: str) -> str:
    """ADDRESS lowercased with its domain in Unicode form: what customers are matched by."""
    local, at, domain = address.strip().rpartition("@")
    return f"{local.lower()}@{unicode_domain(domain)}" if at else address.strip().lower()


def ascii_address(address: str) -> str | None:
    """ADDRESS as plain ASCII (its domain as IDNA A-labels), or None when its local part is
    not ASCII: then only a relay that offers SMTPUTF8 can take it."""
    local, at, domain = address.rpartition("@")
    if not at or not local.isascii():
        return None
    if domain.isascii():
        return address
    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
