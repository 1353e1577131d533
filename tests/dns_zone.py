"""An authoritative DNS server on loopback for tests: test zones, DKIM keys, DMARC records."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dnslib import QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer


@dataclass(frozen=True)
class DkimKey:
    """An RSA key pair: the private key in PEM for dkimpy, the DNS record of the public one."""

    private_pem: bytes
    record: str

    @classmethod
    def generate(cls) -> DkimKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        return cls(private, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}")


@dataclass
class Zones(BaseResolver):  # type: ignore[misc]
    """Answers from RECORDS ((name, type) -> values); names under SILENT get no answer in
    time (a resolver sees a timeout); every question is kept in QUESTIONS."""

    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)
    ttl: int = 300
    questions: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_txt(self, name: str, value: str) -> None:
        self.records.setdefault((name.lower(), "TXT"), []).append(value)

    def asked(self, name: str, qtype: str = "TXT") -> int:
        with self._lock:
            return self.questions.count((name.lower(), qtype))

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with self._lock:
            self.questions.append((name, qtype))
        if any(name == s or name.endswith("." + s) for s in self.silent):
            time.sleep(5)  # past any resolver timeout the tests configure
        reply = request.reply()
        values = self.records.get((name, qtype), [])
        for value in values:
            if qtype == "TXT":
                # TXT strings hold 255 bytes each; a DKIM key needs several.
                chunks = [value[i:i + 255] for i in range(0, len(value), 255)]
                reply.add_answer(RR(name, QTYPE.TXT, ttl=self.ttl, rdata=TXT(chunks)))
            elif qtype == "A":
                reply.add_answer(RR(name, QTYPE.A, ttl=self.ttl, rdata=A(value)))
        if not values and not any(n == name or n.endswith("." + name)
                                  for n, _ in self.records):
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


@contextmanager
def loopback_dns(zones: Zones) -> Iterator[int]:
    """Serve ZONES over UDP on a free loopback port; yield the port."""
    quiet = DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    server = DNSServer(zones, port=0, address="127.0.0.1", logger=quiet)
    server.start_thread()
    try:
        yield int(server.server.server_address[1])
    finally:
        server.stop()
        server.server.server_close()
