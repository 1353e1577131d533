"""`[[trackers]]`: the ticket trackers each registered ticket is handed over to."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from gateway.config.section import Section
from gateway.config.subscriptions import http_url

# Request Tracker's own scale (0-100; RT 5 shows 0 as Low, 50 as Medium, 100 as High).
DEFAULT_PRIORITY_MAP = {"critical": 100, "high": 75, "medium": 50, "low": 0}


class TrackerSettings(Section):
    """One tracker: where it is, the queue tickets go to, its token, how priorities map."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    kind: Literal["request-tracker"] = "request-tracker"
    # The web root, e.g. "https://rt.example.com/rt" (the REST 2 API is under it).
    url: str
    queue: str = Field(min_length=1)
    # An RT auth token (Settings > Auth Tokens); given as token_file or token_env.
    token: SecretStr
    priority_map: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_PRIORITY_MAP))
    # RT is asked this often for tickets changed since the last look (resolved, rejected...).
    poll_interval_s: float = Field(default=30, gt=0, le=3600)
    timeout_s: float = Field(default=20, gt=0, le=300)
    # The first retry waits about this long, doubling each time, up to retry_cap_s; a
    # tracker's deliveries are never given up (a dead letter would lose a ticket).
    retry_base_s: float = Field(default=10, gt=0)
    retry_cap_s: float = Field(default=600, gt=0)
    # How the customer's later messages reach RT: "correspond" (RT's scrips may mail them
    # to the requester, see docs/outlet.md) or "comment" (internal).
    messages_as: Literal["correspond", "comment"] = "correspond"

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value).rstrip("/")

    @field_validator("priority_map")
    @classmethod
    def _every_priority(cls, value: dict[str, int]) -> dict[str, int]:
        known = tuple(DEFAULT_PRIORITY_MAP)
        if unknown := sorted(set(value) - set(known)):
            raise ValueError(f"unknown priority {unknown[0]!r}; known: {', '.join(known)}")
        if missing := [p for p in known if p not in value]:
            raise ValueError(f"priority_map needs every priority; missing: {', '.join(missing)}")
        return value
