"""Signed, expiring tokens: a request's read-only link, a one-time sign-in, a session."""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

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


class PortalKeys:
    """One serializer per purpose (its salt), so a token of one kind never passes for
    another: a ticket link is no session, a session no sign-in."""

    def __init__(self, settings: PortalSettings) -> None:
        self.settings = settings
        secret = settings.secret.get_secret_value()
        self._ticket = URLSafeTimedSerializer(secret, salt="intake-gateway ticket link")
        self._sign_in = URLSafeTimedSerializer(secret, salt="intake-gateway sign-in")
        self._session = URLSafeTimedSerializer(secret, salt="intake-gateway session")
        self._form = URLSafeTimedSerializer(secret, salt="intake-gateway form")

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


@functools.lru_cache(maxsize=4)
def keys_for(settings: PortalSettings) -> PortalKeys:
    """The keys of one [portal] table, made once (a reload brings a new table)."""
    return PortalKeys(settings)


def ticket_link(settings: PortalSettings | None, number: str) -> str | None:
    """The signed link to request NUMBER's page; None without a portal."""
    return None if settings is None else keys_for(settings).ticket_link(number)
