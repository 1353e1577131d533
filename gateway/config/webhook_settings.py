"""`[[webhooks]]`: one telephony, call-centre or web-form endpoint each."""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from gateway.config.section import Section


def _post_only() -> list[Literal["GET", "POST"]]:
    return ["POST"]


class ValueMap(Section):
    """Which of a sender's values mean yes (answered, inbound) and, if given, which mean no."""

    field: str
    yes: list[str]
    no: list[str] | None = None


class WebhookSettings(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    provider: Literal["generic", "zammad-cti", "zadarma", "twilio", "mapped", "megafon",
                      "mango", "sipuni"] = "generic"
    secret: SecretStr | None = None
    channel: Literal["phone", "web"] = "phone"
    # mapped: our field name -> the sender's field name or dotted path (call_id, caller, ...);
    # answered / inbound may be value maps: {field = "status", yes = [...], no = [...]}.
    mapping: dict[str, str | ValueMap] = Field(default_factory=dict)
    # mango: the VPBX's vpbx_api_key (sent in every event, part of the signature).
    api_key: str | None = None
    # mapped: the form field that holds the event as JSON (as Mango Office posts it).
    json_field: str | None = None
    # mapped: the body or query field carrying the secret, instead of a path token.
    token_field: str | None = None
    # mapped: the methods the sender uses (GET puts the fields in the query string).
    methods: list[Literal["GET", "POST"]] = Field(default_factory=_post_only)
    # megafon, mango, sipuni: events whose own time is further than this from ours are
    # refused as stale or replayed (PBXs retry for hours, not days).
    max_event_age_s: int = Field(default=86_400, gt=0)
    # mapped: the JSON answered on success instead of {"status": "accepted", ...} (HTTP 200).
    success_answer: dict[str, Any] | None = None
    # Source addresses or networks allowed to call this hook; empty: any.
    allow_from: list[str] = Field(default_factory=list)
    # twilio: the public URL Twilio calls (it signs that URL); absent: the request's own URL.
    public_url: str | None = None
    # zadarma: a notification whose signed call_start is further than this from our clock is
    # refused (401): Zadarma signs only a few fields, so a captured one could be replayed.
    # Generous: call_start is in the account's time zone, and calls last.
    max_age_s: int = Field(default=86_400, gt=0)

    @model_validator(mode="after")
    def _has_secret(self) -> WebhookSettings:
        # Every provider authenticates with it: a signing key, or the token in the path.
        if self.secret is None or not self.secret.get_secret_value():
            raise ValueError("secret_file or secret_env is required")
        if self.provider != "mapped" and (self.token_field or self.json_field
                                          or self.success_answer is not None
                                          or self.methods != ["POST"]):
            raise ValueError("token_field, json_field, methods and success_answer are "
                             "options of provider mapped")
        if self.provider == "mango" and not self.api_key:
            raise ValueError("api_key (the VPBX's vpbx_api_key) is required for mango")
        return self

    def plain_mapping(self) -> dict[str, Any]:
        """The mapping as stored with each input (JSON: value maps as tables)."""
        return {ours: theirs if isinstance(theirs, str) else theirs.model_dump(exclude_none=True)
                for ours, theirs in self.mapping.items()}

    @field_validator("allow_from")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_network(value, strict=False)  # ValueError names the bad one
        return values
