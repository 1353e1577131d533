"""The access token of one mailbox or of the relay: renewed before it expires, saved at once.

`TokenSource.access_token()` is a blocking call (the IMAP worker runs it in its mailbox's
thread, the relay in a thread of its own). Tokens never appear in logs or errors.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway.config.oauth_settings import OAuthSettings
from gateway.outbox.oauth_browser import browser_login
from gateway.outbox.oauth_failures import LoginTarget, TokenFailure
from gateway.outbox.oauth_providers import (
    TokenRefused,
    TokenSet,
    TokenUnavailable,
    app_token,
    device_login,
    renew,
)
from gateway.store.token_files import TokenFile, fingerprint

log = structlog.get_logger("gateway.oauth")
# Shows the person logging in where to go and which code to enter: (url, code, message).
DeviceCodeShown = Callable[[str, str, str], None]


class TokenSource:
    """Hands out a valid access token, renewing it REFRESH_BEFORE_S ahead of its expiry."""

    def __init__(self, settings: OAuthSettings, target: LoginTarget, state_dir: Path,
                 engine: Engine | None) -> None:
        self.settings = settings
        self.target = target
        self.file = TokenFile(state_dir, target.kind, target.name)
        self._engine = engine
        self._current: TokenSet | None = None
        self._lock = threading.Lock()
        self._log = log.bind(**{target.kind: target.name})
        # Why the provider left us without a token, until it gives one again; and why the
        # mail server refused the provider's tokens, until it takes one (/readyz, metrics).
        self._provider_failure: str | None = None
        self._server_refusal: str | None = None
        # The access token the mail server refused last: not handed out again.
        self._refused: str | None = None
        self.renewals = 0  # renewals this process made (tests, metrics)

    def _margin(self, lifetime_s: float) -> float:
        # Never more than half a token's life: a provider giving 10-minute tokens with
        # refresh_before_s = 300 would otherwise have us renew (and reconnect) without pause.
        return min(self.settings.refresh_before_s, lifetime_s / 2)

    @property
    def margin_s(self) -> float:
        """How long before the current token's expiry it is renewed (and sessions reopened)."""
        current = self._current
        return self._margin(current.lifetime_s if current else self.settings.refresh_before_s)

    def expires_at(self) -> float:
        """When the token last handed out expires (Unix seconds; 0 before the first)."""
        current = self._current
        return current.expires_at if current else 0.0

    @property
    def failing(self) -> str | None:
        """Why this login does not work now, or None."""
        return self._provider_failure or self._server_refusal

    def refused_by_server(self, reason: str) -> TokenFailure | None:
        """The mail server refused the token we hold. The first time, the next call renews it
        (a token revoked early); a fresh token refused as well means the login itself is
        wrong (the account, its IMAP/SMTP access, the scopes): returned as the failure."""
        with self._lock:
            current, self._current = self._current, None
            refused_before = self._refused is not None
            self._refused = current.access_token if current else None
            if not refused_before:
                return None
            self._server_refusal = reason
            episode = self._episode(None).rsplit(":", 1)[0]  # whatever the expiry
            return TokenFailure(self.target, reason, f"{episode}:server-refused", True)

    def forget(self) -> None:
        """Drop the token in hand: the next call reads the saved one or renews."""
        with self._lock:
            self._current = None

    def accepted(self) -> None:
        """The mail server took the token."""
        with self._lock:
            self._refused = None
            if self._server_refusal is not None:
                self._log.info("oauth.recovered", was=self._server_refusal)
            self._server_refusal = None

    def access_token(self) -> str:
        """A token good for at least REFRESH_BEFORE_S more, or TokenFailure saying why not."""
        with self._lock:
            current = self._current
            if current is not None and (current.expires_at - self._margin(current.lifetime_s)
                                        > time.time()):
                return current.access_token
            try:
                token = self._obtain_safely()
            except (TokenRefused, TokenUnavailable) as error:
                still_valid = current is not None and current.expires_at > time.time() + 1
                if current is not None and still_valid and not isinstance(error, TokenRefused):
                    # Renewal is early on purpose: the token in hand still works a while.
                    self._log.warning("oauth.renewal_postponed", error=str(error),
                                      expires_in_s=round(current.expires_at - time.time()))
                    return current.access_token
                self._provider_failure = str(error)
                raise TokenFailure(self.target, str(error), self._episode(current),
                                   isinstance(error, TokenRefused)) from None
            if self._provider_failure is not None:
                self._log.info("oauth.recovered", was=self._provider_failure)
            self._provider_failure = None
            self._current = token
            return token.access_token

    def _episode(self, current: TokenSet | None) -> str:
        """Same grant and same lost expiry: the same failure, wherever it is seen."""
        try:
            saved = self.file.read() or {}
        except (OSError, ValueError):
            saved = {}
        # The sign-in's id survives the refresh token's rotation; a new sign-in gets a new one.
        grant = saved.get("grant_id") or fingerprint(saved.get("refresh_token") or (
            self.settings.client_secret.get_secret_value() if self.settings.client_secret
            else None))
        expired = int(float(saved.get("expires_at") or (current.expires_at if current else 0)))
        return f"{self.target.kind}:{self.target.name}:{grant}:{expired}"

    def _obtain_safely(self) -> TokenSet:
        """`_obtain`, its other failures said as what they mean for the login."""
        try:
            return self._obtain()
        except (OSError, ValueError) as error:
            # Unreadable token file: most often `mailbox login` run as another user.
            detail = error.strerror if isinstance(error, OSError) else "not a token file"
            raise TokenRefused(f"cannot use {self.file.path}: {detail} (run "
                               f"`{self.target.login_command}` as the service user)") from error
        except SQLAlchemyError as error:
            raise TokenUnavailable(f"renewal lock in the database: {type(error).__name__}") \
                from error

    def _obtain(self) -> TokenSet:
        if self.settings.grant == "client_credentials":
            token = app_token(self.settings, self.target.protocol)
            self._log.info("oauth.app_token", expires_in_s=round(token.expires_at - time.time()))
            return token
        with self.file.renewal_lock(self._engine):
            saved = self.file.read()
            if not saved or not saved.get("refresh_token"):
                raise TokenRefused(f"not logged in: run `{self.target.login_command}`")
            # Another process sharing this token may have renewed it while we waited.
            expires_at = float(saved.get("expires_at") or 0)
            lifetime = float(saved.get("lifetime_s") or 3600)
            if (saved.get("access_token") and saved["access_token"] != self._refused
                    and expires_at - self._margin(lifetime) > time.time()):
                return TokenSet(str(saved["access_token"]), expires_at,
                                str(saved["refresh_token"]), lifetime_s=lifetime)
            old_refresh = str(saved["refresh_token"])
            token = renew(self.settings, self.target.protocol, old_refresh)
            self.save(token, str(saved.get("grant_id") or fingerprint(old_refresh)))
            self.renewals += 1
            self._log.info("oauth.renewed", rotated=token.refresh_token != old_refresh,
                           expires_in_s=round(token.expires_at - time.time()))
            return token

    def save(self, token: TokenSet, grant_id: str) -> None:
        """Write TOKEN of sign-in GRANT_ID to the state directory at once (the caller holds
        the renewal lock)."""
        self.file.write({"grant_id": grant_id, "provider": self.settings.provider,
                         "access_token": token.access_token,
                         "expires_at": token.expires_at, "refresh_token": token.refresh_token,
                         "scope": token.scope, "lifetime_s": token.lifetime_s,
                         "saved_at": time.time()})

    def login(self, show: DeviceCodeShown) -> TokenSet:
        """`mailbox login`: a person signs in (device code) or the app proves itself (client
        credentials); the result is saved and becomes the current token."""
        if self.settings.grant == "client_credentials":
            token = app_token(self.settings, self.target.protocol)
        else:
            if self.settings.grant == "authorization_code":
                token = browser_login(self.settings, self.target.protocol, show)
            else:
                token = device_login(self.settings, self.target.protocol, show)
            if not token.refresh_token:
                raise TokenRefused("the provider gave no refresh token: add the offline_access "
                                   "scope (Microsoft) or check the application's settings")
            with self.file.renewal_lock(self._engine):
                self.save(token, secrets.token_hex(8))
        with self._lock:
            self._current = token
            self._provider_failure = self._server_refusal = self._refused = None
        return token
