"""Token requests to an OAuth 2.0 provider: msal for Microsoft, Authlib for the others.

Nothing here is kept or cached: each function asks the provider once (the device-code login
polls until the person has answered) and returns what it gave, or raises why not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msal
import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from gateway.config.oauth_settings import OAuthSettings
from gateway.outbox.oauth_failures import Protocol

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# What a provider says when the grant itself is gone (consent revoked, secret expired, user
# disabled): a person has to act. Anything else (5xx, timeouts, slow_down) passes by itself.
_REFUSALS = {"invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope",
             "access_denied", "expired_token", "invalid_request", "consent_required",
             "interaction_required"}
# msal adds these itself and refuses them in a scope list.
_MSAL_RESERVED = {"offline_access", "openid", "profile"}
HTTP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    expires_at: float  # Unix seconds, by the provider's expires_in
    refresh_token: str | None
    scope: str = ""
    lifetime_s: float = 3600.0  # the provider's expires_in


class TokenRefused(Exception):
    """The provider refused (revoked consent, expired secret): retrying alone will not help."""


class TokenUnavailable(Exception):
    """The provider could not be asked (down, slow, 5xx): the next try may work."""


def _own_ca_first(session: requests.Session, settings: dict[str, Any]) -> dict[str, Any]:
    # requests lets REQUESTS_CA_BUNDLE override a session's own CA bundle (psf/requests#3829):
    # a configured token_ca_file must win.
    if isinstance(session.verify, str):
        settings["verify"] = session.verify
    return settings


class ProviderSession(requests.Session):
    """msal's HTTP client: a timeout on every request, token_ca_file honoured."""

    def request(self, method: Any, url: Any,
                *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", HTTP_TIMEOUT_S)
        return super().request(method, url, *args, **kwargs)

    def merge_environment_settings(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return _own_ca_first(self, super().merge_environment_settings(*args, **kwargs))


class _AuthlibSession(OAuth2Session):  # type: ignore[misc]
    def merge_environment_settings(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return _own_ca_first(self, super().merge_environment_settings(*args, **kwargs))


def _token_set(answer: dict[str, Any], previous_refresh: str | None = None) -> TokenSet:
    access = answer.get("access_token")
    if not isinstance(access, str) or not access:
        raise TokenUnavailable("the token endpoint answered without an access_token")
    expires_in = float(answer.get("expires_in") or 3600)
    # A provider that does not rotate refresh tokens sends none back: the old one stays good.
    refresh = answer.get("refresh_token") or previous_refresh
    return TokenSet(access, time.time() + expires_in, refresh, str(answer.get("scope") or ""),
                    expires_in)


def _refusal(error: str, description: str | None) -> Exception:
    text = f"{error}: {description}" if description else error
    return TokenRefused(text) if error in _REFUSALS else TokenUnavailable(text)


# -- Microsoft: msal ---------------------------------------------------------------------


def _msal_app(settings: OAuthSettings) -> msal.ClientApplication:
    authority = settings.authority_url or f"https://login.microsoftonline.com/{settings.tenant}"
    http = ProviderSession()
    if settings.token_ca_file:
        http.verify = str(settings.token_ca_file)
    options: dict[str, Any] = {"authority": authority, "http_client": http}
    if settings.authority_url:
        # Another cloud (or a test's own server): its metadata, not Microsoft's host list.
        options["instance_discovery"] = False
    try:
        # A device-code sign-in is a public client's (Entra: "Allow public client flows"),
        # and so are its refresh tokens: Entra refuses a secret with them (AADSTS700025).
        if settings.grant == "client_credentials" and settings.client_secret is not None:
            return msal.ConfidentialClientApplication(
                settings.client_id, client_credential=settings.client_secret.get_secret_value(),
                **options)
        return msal.PublicClientApplication(settings.client_id, **options)
    except requests.RequestException as error:
        raise TokenUnavailable(f"authority {authority}: {error}") from error
    except ValueError as error:  # msal: the authority's metadata could not be read
        raise TokenUnavailable(str(error)) from error


def _msal_answer(answer: dict[str, Any] | None, previous_refresh: str | None) -> TokenSet:
    if not answer:
        raise TokenUnavailable("no answer from Microsoft Entra")
    if "error" in answer:
        raise _refusal(str(answer["error"]), answer.get("error_description"))
    return _token_set(answer, previous_refresh)


def _msal_scopes(settings: OAuthSettings, protocol: Protocol) -> list[str]:
    return [s for s in settings.scopes_for(protocol) if s not in _MSAL_RESERVED]


def _msal_call(function: Callable[[], dict[str, Any] | None],
               previous_refresh: str | None = None) -> TokenSet:
    try:
        return _msal_answer(function(), previous_refresh)
    except requests.RequestException as error:
        raise TokenUnavailable(f"Microsoft Entra: {type(error).__name__}") from error


# -- everyone else: Authlib --------------------------------------------------------------


def authlib_client(settings: OAuthSettings, protocol: Protocol) -> OAuth2Session:
    secret = settings.client_secret.get_secret_value() if settings.client_secret else None
    session = _AuthlibSession(
        client_id=settings.client_id, client_secret=secret,
        scope=" ".join(settings.scopes_for(protocol)),
        # A public client (no secret) names itself in the body, as RFC 8628 expects.
        token_endpoint_auth_method="client_secret_post" if secret else "none",
        # PKCE (RFC 7636) wherever a code_verifier is given: the authorization-code sign-in.
        code_challenge_method="S256")
    session.verify = str(settings.token_ca_file) if settings.token_ca_file else True
    return session


def authlib_call(function: Callable[[], dict[str, Any]],
                  previous_refresh: str | None = None) -> TokenSet:
    try:
        return _token_set(function(), previous_refresh)
    except AuthlibBaseError as error:  # the provider's error answer, or a mismatched state
        raise _refusal(error.error or "error", error.description) from error
    except requests.HTTPError as error:
        raise TokenUnavailable(f"token endpoint: HTTP {_status(error)}") from error
    except (requests.RequestException, ValueError) as error:
        raise TokenUnavailable(f"token endpoint: {type(error).__name__}") from error


# -- what the rest of the gateway asks for ------------------------------------------------


def renew(settings: OAuthSettings, protocol: Protocol, refresh_token: str) -> TokenSet:
    """A fresh access token (and perhaps a new refresh token) for REFRESH_TOKEN."""
    if settings.provider == "microsoft":
        app = _msal_app(settings)
        return _msal_call(lambda: app.acquire_token_by_refresh_token(
            refresh_token, _msal_scopes(settings, protocol)), refresh_token)
    with authlib_client(settings, protocol) as client:
        return authlib_call(lambda: client.refresh_token(
            settings.token_endpoint(), refresh_token=refresh_token, timeout=HTTP_TIMEOUT_S),
            refresh_token)


def app_token(settings: OAuthSettings, protocol: Protocol) -> TokenSet:
    """An app-only access token by client credentials (no person, no refresh token)."""
    if settings.provider == "microsoft":
        app = _msal_app(settings)
        assert isinstance(app, msal.ConfidentialClientApplication)
        return _msal_call(lambda: app.acquire_token_for_client(
            _msal_scopes(settings, protocol)))
    with authlib_client(settings, protocol) as client:
        return authlib_call(lambda: client.fetch_token(
            settings.token_endpoint(), grant_type="client_credentials", timeout=HTTP_TIMEOUT_S))


def device_login(settings: OAuthSettings, protocol: Protocol,
                 show: Callable[[str, str, str], None]) -> TokenSet:
    """The device-code flow (RFC 8628): SHOW(url, code, message), then wait for the person."""
    if settings.provider == "microsoft":
        app = _msal_app(settings)
        flow = app.initiate_device_flow(scopes=_msal_scopes(settings, protocol))
        if "user_code" not in flow:
            raise _refusal(str(flow.get("error", "error")), flow.get("error_description"))
        show(flow["verification_uri"], flow["user_code"], flow.get("message", ""))
        return _msal_call(lambda: app.acquire_token_by_device_flow(flow))
    endpoint = settings.device_endpoint()
    if not endpoint:
        raise TokenRefused("no device_authorization_url configured for this provider")
    with authlib_client(settings, protocol) as client:
        started = _authlib_call_raw(lambda: _device_authorization(client, endpoint, settings,
                                                                  protocol))
        url = started.get("verification_uri_complete") or started.get("verification_uri") \
            or started.get("verification_url", "")
        show(str(url), str(started["user_code"]), str(started.get("message", "")))
        interval = float(started.get("interval") or 5)
        deadline = time.monotonic() + float(started.get("expires_in") or 900)
        while time.monotonic() < deadline:
            time.sleep(interval)
            try:
                return _token_set(client.fetch_token(
                    settings.token_endpoint(), grant_type=DEVICE_CODE_GRANT,
                    device_code=started["device_code"], timeout=HTTP_TIMEOUT_S))
            except OAuthError as error:
                if error.error == "authorization_pending":
                    continue
                if error.error == "slow_down":
                    interval += 5  # RFC 8628 section 3.5
                    continue
                raise _refusal(error.error or "error", error.description) from error
            except requests.RequestException as error:
                raise TokenUnavailable(f"token endpoint: {type(error).__name__}") from error
        raise TokenRefused("the code expired before the login was completed")


def _device_authorization(client: OAuth2Session, endpoint: str, settings: OAuthSettings,
                          protocol: Protocol) -> dict[str, Any]:
    # Authlib has no client helper for RFC 8628's first request; its session still sends it,
    # with the client's own authentication.
    data = {"client_id": settings.client_id, "scope": " ".join(settings.scopes_for(protocol))}
    if settings.client_secret is not None:
        data["client_secret"] = settings.client_secret.get_secret_value()
    response = client.post(endpoint, data=data, withhold_token=True, timeout=HTTP_TIMEOUT_S)
    answer = response.json()
    if not isinstance(answer, dict):
        raise TokenUnavailable("the device authorization endpoint answered no JSON object")
    if "error" in answer:
        raise _refusal(str(answer["error"]), answer.get("error_description"))
    response.raise_for_status()
    if "device_code" not in answer or "user_code" not in answer:
        raise TokenUnavailable("the device authorization endpoint gave no device_code")
    return answer


def _authlib_call_raw(function: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return function()
    except requests.HTTPError as error:
        raise TokenUnavailable(f"device authorization: HTTP {_status(error)}") from error
    except (requests.RequestException, ValueError) as error:
        raise TokenUnavailable(f"device authorization: {type(error).__name__}") from error


def _status(error: requests.HTTPError) -> int | str:
    return error.response.status_code if error.response is not None else "?"
