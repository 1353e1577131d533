"""The OpenAPI document's security schemes: the admin token and each hook's own scheme."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

# OpenAPI can only place an apiKey in a header, the query or a cookie: a scheme whose secret
# rides elsewhere (the body, the path, a signature over fields) says so in its description.
SCHEMES: dict[str, dict[str, Any]] = {
    "adminBearer": {"type": "http", "scheme": "bearer",
                    "description": "The admin token (http.admin_token_file) for /api/v1, or a "
                                   "scoped one (intake-gateway tokens create --scope "
                                   "intake|read|admin)."},
    "genericHmac": {"type": "apiKey", "in": "header", "name": "X-Signature",
                    "description": "provider generic: X-Signature: sha256=hex(HMAC-SHA256("
                                   "secret, X-Timestamp + '.' + body)), X-Timestamp within "
                                   "http.replay_window_s."},
    "twilioSignature": {"type": "apiKey", "in": "header", "name": "X-Twilio-Signature",
                        "description": "provider twilio: Twilio's request signature."},
    "zadarmaSignature": {"type": "apiKey", "in": "header", "name": "Signature",
                         "description": "provider zadarma: base64(hex HMAC-SHA1) of the "
                                        "event's signed fields."},
    "pathToken": {"type": "apiKey", "in": "query", "name": "token",
                  "description": "providers zammad-cti and mapped: the secret as the path's "
                                 "last segment, POST /hooks/<name>/<token> (not a query "
                                 "parameter; OpenAPI has no path-placed key)."},
    "megafonCrmToken": {"type": "apiKey", "in": "query", "name": "crm_token",
                        "description": "provider megafon: the form field crm_token of the "
                                       "body equals the hook's secret."},
    "mangoSign": {"type": "apiKey", "in": "query", "name": "sign",
                  "description": "provider mango: form fields vpbx_api_key (= api_key) and "
                                 "sign = hex(SHA-256(api_key + json + api_salt)), in the body."},
    "sipuniKey": {"type": "apiKey", "in": "query", "name": "key",
                  "description": "provider sipuni: ?key=<secret> in the URL given to Sipuni."},
    "mappedTokenField": {"type": "apiKey", "in": "query", "name": "token_field",
                         "description": "provider mapped with token_field: that field of the "
                                        "query or the body carries the secret."},
}
_HOOK_SCHEMES = [name for name in SCHEMES if name != "adminBearer"]


def add_security_schemes(app: FastAPI) -> None:
    """Publish SCHEMES and name, per operation, which of them apply."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        schema.setdefault("components", {})["securitySchemes"] = SCHEMES
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                if path.startswith("/api/v1/"):
                    operation["security"] = [{"adminBearer": []}]
                elif path.startswith("/hooks/"):
                    # Alternatives: the hook's provider decides which one it checks.
                    operation["security"] = [{name: []} for name in _HOOK_SCHEMES]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
