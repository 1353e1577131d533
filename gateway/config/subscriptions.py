"""`[[subscriptions]]`: where the event feed is delivered as signed webhooks."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from gateway.store.event_types import EVENT_TYPES


def http_url(value: str) -> str:
    """VALUE when it is an http(s) URL with a host (subscribers, chat platforms, trackers)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s) URL, got {value!r}")
    return value


def standard_webhooks_secret(value: SecretStr) -> SecretStr:
    """VALUE if it is a Standard Webhooks secret ("whsec_" and base64 of 16+ bytes)."""
    # The secret itself is never echoed in the error.
    text = value.get_secret_value().strip()
    if not text.startswith("whsec_"):
        raise ValueError('the secret must be "whsec_" followed by base64')
    try:
        key = base64.b64decode(text.removeprefix("whsec_") + "==", validate=False)
    except (binascii.Error, ValueError):
        raise ValueError('the secret must be "whsec_" followed by base64') from None
    if len(key) < 16:
        raise ValueError("the secret's key is shorter than 16 bytes")
    return SecretStr(text)


class SubscriptionSettings(BaseModel):
    """One subscriber: its URL, the events it wants (absent: all) and its signing secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    url: str
    events: list[str] | None = None
    # Standard Webhooks: "whsec_" and the base64 of the key.
    secret: SecretStr
    timeout_s: float = Field(default=10, gt=0, le=300)
    max_attempts: int = Field(default=12, ge=1, le=100)
    # The first retry waits about this long, doubling each time, up to an hour.
    retry_base_s: float = Field(default=10, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("events")
    @classmethod
    def _known_events(cls, values: list[str] | None) -> list[str] | None:
        unknown = [v for v in values or [] if v not in EVENT_TYPES]
        if unknown:
            raise ValueError(f"unknown event {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}")
        return values

    @field_validator("secret")
    @classmethod
    def _whsec(cls, value: SecretStr) -> SecretStr:
        return standard_webhooks_secret(value)

    def wants(self, event_type: str) -> bool:
        return self.events is None or event_type in self.events
