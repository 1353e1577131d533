"""`[[chat_platforms]]`: where the answers to a chat platform's conversations are posted."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from gateway.config.subscriptions import http_url, standard_webhooks_secret


class ChatPlatformSettings(BaseModel):
    """One platform (a bot's adapter, the web widget's backend): its name, as messages give
    it, the URL our replies are posted to, and the Standard Webhooks secret they are signed
    with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    reply_url: str
    # "whsec_" and the base64 of the key, as for [[subscriptions]].
    secret: SecretStr
    timeout_s: float = Field(default=10, gt=0, le=300)

    @field_validator("reply_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("secret")
    @classmethod
    def _whsec(cls, value: SecretStr) -> SecretStr:
        return standard_webhooks_secret(value)
