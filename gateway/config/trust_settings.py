"""`[trust]`: how far the From line is believed (SPF, DKIM, DMARC; issue 18)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TrustMode = Literal["off", "report", "enforce"]


class TrustSettings(BaseModel):
    """Sender authentication: verified by our SMTP listener, or read from trusted relays."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # off: nothing checked; report: checked and shown; enforce: a customer's address that
    # fails is held for review, and replies that change a ticket must be authentic.
    mode: TrustMode = "enforce"
    # Whose Authentication-Results we believe (IMAP mailboxes, an SMTP front relay).
    trusted_authserv_ids: list[str] = Field(default_factory=list)
    # Whose ARC seals we believe (mailing lists and forwarders that re-sign).
    arc_sealers: list[str] = Field(default_factory=list)
    # The SMTP listener verifies SPF/DKIM/DMARC itself; false behind a front MTA, whose
    # Authentication-Results (trusted_authserv_ids) are read instead.
    verify_smtp: bool = True
    # DNS servers as host:port; empty: the system's (/etc/resolv.conf).
    resolvers: list[str] = Field(default_factory=list)
    dns_timeout_s: float = Field(default=5, gt=0, le=60)

    @field_validator("trusted_authserv_ids", "arc_sealers")
    @classmethod
    def _lower(cls, values: list[str]) -> list[str]:
        return [v.strip().lower() for v in values if v.strip()]

    @field_validator("resolvers")
    @classmethod
    def _host_ports(cls, values: list[str]) -> list[str]:
        for value in values:
            match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[0-9a-fA-F:.]+):(\d{1,5})", value)
            if not match or not 0 < int(match.group(2)) < 65536:
                raise ValueError(f"expected an IP address and port (127.0.0.1:53), got {value!r}")
        return values
