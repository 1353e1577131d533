"""Russian cloud PBXs and templated senders: their authentication and the answers they need."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from starlette.responses import JSONResponse

from gateway.config.webhook_settings import WebhookSettings
from gateway.http.errors import Refused
from gateway.http.services import Services
from gateway.tickets.phone_calls import match_phone


def _same(secret: str, given: str) -> bool:
    return hmac.compare_digest(secret.encode(), given.encode())


def check_field_token(secret: str, fields: Mapping[str, Any], name: str) -> None:
    """The secret in field NAME of the body or the query (MegaFon's crm_token, Sipuni's key)."""
    given = fields.get(name)
    if not isinstance(given, str) or not given:
        raise Refused(401, f"missing {name}", name)
    if not _same(secret, given):
        raise Refused(401, f"bad {name}", name)


def mango_sign(api_key: str, json_text: str, api_salt: str) -> str:
    """Mango Office's signature: hex SHA-256 of the key, the JSON as sent, and the salt."""
    return hashlib.sha256((api_key + json_text + api_salt).encode("utf-8")).hexdigest()


def check_mango(api_key: str, api_salt: str, fields: Mapping[str, Any]) -> None:
    given_key, sign, json_text = (fields.get("vpbx_api_key"), fields.get("sign"),
                                  fields.get("json"))
    if not isinstance(sign, str) or not sign:
        raise Refused(401, "missing sign", "sign")
    if not isinstance(given_key, str) or not _same(api_key, given_key):
        raise Refused(401, "vpbx_api_key is not this hook's api_key", "vpbx_api_key")
    if not isinstance(json_text, str):
        raise Refused(401, "missing json: nothing is signed", "json")
    if not hmac.compare_digest(mango_sign(api_key, json_text, api_salt), sign.strip().lower()):
        raise Refused(401, "bad sign", "sign")


def authenticate(services: Services, hook: WebhookSettings, fields: Mapping[str, Any],
                 query: Mapping[str, str]) -> None:
    """401 unless FIELDS (the body) or QUERY carry this hook's credentials."""
    secret = services.secret_of(hook)
    if hook.provider == "megafon":
        check_field_token(secret, fields, "crm_token")
    elif hook.provider == "mango":
        check_mango(hook.api_key or "", secret, fields)
    elif hook.provider == "sipuni":
        # Sipuni does not sign: the key rides in the URL given to it (?key=...).
        check_field_token(secret, query, "key")
    elif hook.provider == "mapped" and hook.token_field:
        name = hook.token_field
        check_field_token(secret, query if name in query else fields, name)
    # After the credentials: a stranger learns nothing of our clock.
    check_fresh(hook, fields, services.clock.now())


def _event_time(hook: WebhookSettings, fields: Mapping[str, Any]) -> tuple[str, Any]:
    """The field holding the event's own time, as the provider writes it, and its value."""
    if hook.provider == "sipuni":
        return "timestamp", fields.get("timestamp")
    if hook.provider == "mango" and isinstance(fields.get("json"), str):
        try:
            inner = json.loads(fields["json"])
        except ValueError:
            return "", None  # the reader refuses it (422) with the parser's own words
        if isinstance(inner, dict):
            name = "timestamp" if "timestamp" in inner else "end_time"
            return f"json.{name}", inner.get(name)
    return "", None


def check_fresh(hook: WebhookSettings, fields: Mapping[str, Any], now: datetime) -> None:
    """401 for an event whose own time is more than max_event_age_s from now: a replay of a
    captured request, or a PBX's queue emptied long after."""
    name, value = _event_time(hook, fields)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return
    if abs(now.timestamp() - value) > hook.max_event_age_s:
        raise Refused(401, f"event time {value} is more than {hook.max_event_age_s} s from now: "
                      "stale or replayed", name)


def megafon_contact(services: Services, fields: Mapping[str, Any]) -> JSONResponse:
    """MegaFon asks whose number is calling: the customer's name, or nothing when unknown."""
    phone = fields.get("phone")
    customer = None
    if services.context is not None and isinstance(phone, str):
        customer = match_phone(services.context().directory, phone)
    if customer is None:
        return JSONResponse({})
    return JSONResponse({"contact_name": customer.name or customer.id,
                         "responsible": customer.engineer or ""})


def answer(hook: WebhookSettings, stored: JSONResponse) -> JSONResponse:
    """The answer the sender needs: Sipuni stops sending unless it reads success: true."""
    if hook.provider in ("megafon", "mango", "sipuni"):
        body: dict[str, Any] = {"success": True}
    elif hook.success_answer is not None:
        body = dict(hook.success_answer)
    else:
        return stored
    return JSONResponse(body, status_code=200)
