"""How a mailbox or the relay logs in: a password, or an OAuth 2.0 token from a provider."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, model_validator

from gateway.config.section import Section

Provider = Literal["microsoft", "google", "yandex", "generic"]


@dataclass(frozen=True)
class ProviderEndpoints:
    """Where a provider issues tokens, and the scopes a mailbox needs there by default."""

    token_url: str
    device_authorization_url: str
    authorization_url: str
    imap_scopes: tuple[str, ...]
    smtp_scopes: tuple[str, ...]
    # Client credentials (app-only access) ask for this scope instead.
    app_scopes: tuple[str, ...] = ()


# Microsoft's endpoints depend on the tenant and are msal's business (see oauth_providers).
PROVIDERS: dict[str, ProviderEndpoints] = {
    "microsoft": ProviderEndpoints(
        "", "", "",
        ("https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"),
        ("https://outlook.office.com/SMTP.Send", "offline_access"),
        ("https://outlook.office365.com/.default",)),
    "google": ProviderEndpoints(
        "https://oauth2.googleapis.com/token", "https://oauth2.googleapis.com/device/code",
        "https://accounts.google.com/o/oauth2/v2/auth",
        ("https://mail.google.com/",), ("https://mail.google.com/",)),
    "yandex": ProviderEndpoints(
        "https://oauth.yandex.ru/token", "https://oauth.yandex.ru/device/code",
        "https://oauth.yandex.ru/authorize", ("mail:imap_full",), ("mail:smtp",)),
    "generic": ProviderEndpoints("", "", "", (), ()),
}


class OAuthSettings(Section):
    """The login keys shared by [[mailboxes]] and [outgoing]."""

    auth: Literal["password", "xoauth2", "oauthbearer"] = "password"
    provider: Provider | None = None
    # Microsoft: the directory (tenant) id or domain; "organizations" takes any work account.
    tenant: str = "organizations"
    # Microsoft in another cloud (e.g. https://login.microsoftonline.us/TENANT); absent: the
    # global one for `tenant`.
    authority_url: str | None = None
    # Absent: the provider's own (generic has none: both are required for it).
    token_url: str | None = None
    device_authorization_url: str | None = None
    authorization_url: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    # CA bundle (PEM) for the token endpoints' certificates; absent: the system's CAs.
    token_ca_file: Path | None = None
    # Absent: what the provider documents for IMAP (mailboxes) or SMTP (the relay).
    scopes: list[str] | None = None
    # device_code: a person logs in once (`intake-gateway mailbox login NAME`) with a code
    # shown on the terminal, and the refresh token is kept; authorization_code: the same
    # through a browser redirected to this host's loopback (Google's default: its device
    # flow does not grant mail scopes); client_credentials: app-only access, client secret.
    grant: Literal["device_code", "authorization_code", "client_credentials"] = "device_code"
    # authorization_code: the loopback port the browser is sent back to (0: any free one;
    # fix it to forward it over SSH from the machine with the browser).
    redirect_port: int = Field(default=0, ge=0, lt=65536)
    # An access token is renewed this long before it expires, and an IMAP session logged
    # in with it is reopened with a fresh one by then.
    refresh_before_s: float = Field(default=300, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _provider_grant(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("provider") == "google" and "grant" not in data:
            return {**data, "grant": "authorization_code"}
        return data

    @model_validator(mode="after")
    def _oauth_complete(self) -> Self:
        if self.auth == "password":
            return self
        if self.provider is None:
            raise ValueError(f"auth = {self.auth!r} needs provider = microsoft | google | "
                             "yandex | generic")
        if not self.client_id:
            raise ValueError(f"auth = {self.auth!r} needs client_id (from the provider's "
                             "application registration)")
        if self.provider == "generic" and not self.token_url:
            raise ValueError("provider = 'generic' needs token_url")
        if self.grant == "authorization_code" and self.provider == "microsoft":
            raise ValueError("provider = 'microsoft' signs in by grant = 'device_code' (or "
                             "'client_credentials')")
        if self.grant == "authorization_code" and not self.authorization_endpoint():
            raise ValueError("grant = 'authorization_code' needs authorization_url here")
        if self.grant == "client_credentials" and self.client_secret is None:
            raise ValueError("grant = 'client_credentials' needs client_secret_file or "
                             "client_secret_env")
        if self.grant == "client_credentials" and self.provider in ("google", "yandex"):
            raise ValueError(f"{self.provider} gives no app-only mailbox access by client "
                             "credentials: use grant = 'device_code'")
        return self

    @property
    def uses_oauth(self) -> bool:
        return self.auth != "password"

    def endpoints(self) -> ProviderEndpoints:
        assert self.provider is not None
        return PROVIDERS[self.provider]

    def token_endpoint(self) -> str:
        return self.token_url or self.endpoints().token_url

    def authorization_endpoint(self) -> str:
        return self.authorization_url or self.endpoints().authorization_url

    def device_endpoint(self) -> str:
        return self.device_authorization_url or self.endpoints().device_authorization_url

    def scopes_for(self, protocol: Literal["imap", "smtp"]) -> list[str]:
        """The scopes asked for: configured, else the provider's for PROTOCOL and grant."""
        if self.scopes is not None:
            return list(self.scopes)
        endpoints = self.endpoints()
        if self.grant == "client_credentials" and endpoints.app_scopes:
            return list(endpoints.app_scopes)
        return list(endpoints.imap_scopes if protocol == "imap" else endpoints.smtp_scopes)
