"""Signed, expiring tokens: a request's read-only link, a one-time sign-in, a session."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from gateway.clock import Clock, SystemClock
from gateway.config.portal_settings import PortalSettings


class LinkRefused(Exception):
    """A token that was altered, made with another key, or has expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.expired = reason == "expired"


@dataclass(frozen=True)
class Session:
    customer: str
    email: str


class _ClockSigner(TimestampSigner):
    """Signs and checks ages on the gateway's clock (the one its deadlines use)."""

    def __init__(self, *args: Any, clock: Clock, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock

    def get_timestamp(self) -> int:
        return int(self.clock.now().timestamp())


class PortalKeys:
    """One serializer per purpose (its salt), so a token of one kind never passes for
    another: a ticket link is no session, a session no sign-in."""

    def __init__(self, settings: PortalSettings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        secret = settings.secret.get_secret_value()

        def serializer(purpose: str) -> URLSafeTimedSerializer:
            return URLSafeTimedSerializer(secret, salt=f"intake-gateway {purpose}",
                                          signer=_ClockSigner,
                                          signer_kwargs={"clock": self.clock,
                                                         "digest_method": hashlib.sha256})

        self._ticket = serializer("ticket link")
        self._sign_in = serializer("sign-in")
        self._session = serializer("session")
        self._form = serializer("form")

    def ticket_link(self, number: str) -> str:
        """The read-only page of request NUMBER, for its acknowledgement."""
        return f"{self.settings.base_url}/portal/t/{self._ticket.dumps(number)}"

    def ticket_of(self, token: str) -> str:
        return str(_load(self._ticket, token, self.settings.ticket_link_ttl_days * 86400))

    def new_sign_in(self) -> tuple[str, str]:
        """A fresh sign-in's nonce (stored, used once) and its link."""
        nonce = secrets.token_urlsafe(24)
        return nonce, f"{self.settings.base_url}/portal/sign-in/{self._sign_in.dumps(nonce)}"

    def sign_in_nonce(self, token: str) -> str:
        return str(_load(self._sign_in, token, self.settings.sign_in_ttl_min * 60))

    def session_cookie(self, session: Session) -> str:
        return self._session.dumps([session.customer, session.email])

    def session_of(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            loaded = _load(self._session, cookie, self.settings.session_ttl_h * 3600)
        except LinkRefused:
            return None
        if not (isinstance(loaded, list) and len(loaded) == 2):
            return None
        return Session(str(loaded[0]), str(loaded[1]))

    def form_token(self, session: Session) -> str:
        """Proof that a form was served to this session (a cross-site post has none)."""
        return self._form.dumps(session.email)

    def form_is_ours(self, token: str, session: Session) -> bool:
        try:
            return bool(_load(self._form, token, self.settings.session_ttl_h * 3600)
                        == session.email)
        except LinkRefused:
            return False


def _load(serializer: URLSafeTimedSerializer, token: str, max_age_s: int) -> object:
    try:
        return serializer.loads(token, max_age=max_age_s)
    except SignatureExpired:
        raise LinkRefused("expired") from None
    except BadSignature:
        raise LinkRefused("invalid") from None


_KEYS: dict[tuple[int, int], PortalKeys] = {}


def keys_for(settings: PortalSettings, clock: Clock) -> PortalKeys:
    """The keys of one [portal] table and clock, made once (a reload brings a new table)."""
    key = (id(settings), id(clock))
    keys = _KEYS.get(key)
    if keys is None or keys.settings is not settings or keys.clock is not clock:
        if len(_KEYS) > 8:
            _KEYS.clear()
        keys = _KEYS[key] = PortalKeys(settings, clock)
    return keys


def ticket_link(settings: PortalSettings | None, number: str, clock: Clock) -> str | None:
    """The signed link to request NUMBER's page; None without a portal."""
    return None if settings is None else keys_for(settings, clock).ticket_link(number)
