"""`[portal]`: the customer's window, signed links to a request and a sign-in by e-mail."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class PortalSettings(BaseModel):
    """Absent, acknowledgements carry no link and /portal answers 404."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The address customers open, as they reach the daemon's HTTP listener (behind a proxy:
    # the proxy's); links in mail start with it.
    base_url: str = "http://127.0.0.1:8080"
    # Signs every link and session cookie: secret_file or secret_env (at least 32 bytes).
    secret: SecretStr
    # A request's read-only page link (in its acknowledgement) works this long.
    ticket_link_ttl_days: int = Field(default=90, ge=1, le=3650)
    # A sign-in link works once, this long; a signed-in session lasts session_ttl_h.
    sign_in_ttl_min: int = Field(default=30, ge=1, le=1440)
    session_ttl_h: int = Field(default=8, ge=1, le=720)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// address")
        return value.rstrip("/")

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().strip()) < 32:
            raise ValueError("the portal secret must be at least 32 characters")
        return value
