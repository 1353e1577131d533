"""Scoped API tokens: `intake` submits requests, `read` reads tickets and events, `admin` all.

Only a token's SHA-256 is stored: the token is 256 random bits, so a plain hash cannot be
guessed back, and a look-up by hash needs no per-token salt.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from gateway.http.errors import Refused
from gateway.store.db import read_transaction, transaction
from gateway.store.models import ApiToken

Scope = Literal["intake", "read", "admin"]
SCOPES: Final[tuple[Scope, ...]] = ("intake", "read", "admin")
# The configured admin token has no row: it is its own name.
CONFIGURED_ADMIN = "configured admin token"
_PREFIX = "igw_"


class TokenExists(ValueError):
    """A token of that name exists already (revoked ones too: names are never reused)."""


@dataclass(frozen=True)
class Caller:
    """Who an API request is from: the token's name and scope."""

    name: str
    scope: Scope

    def allows(self, needed: Scope) -> bool:
        return self.scope == "admin" or self.scope == needed


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(engine: Engine, name: str, scope: Scope, now: datetime) -> str:
    """A new token of SCOPE named NAME; the token itself, which is not stored anywhere."""
    token = _PREFIX + secrets.token_urlsafe(32)
    try:
        with transaction(engine) as session:
            session.add(ApiToken(name=name, scope=scope, token_sha256=digest(token),
                                 created_at=now))
    except IntegrityError:
        raise TokenExists(name) from None
    return token


def list_tokens(engine: Engine) -> list[ApiToken]:
    with read_transaction(engine) as session:
        return list(session.exec(select(ApiToken).order_by(col(ApiToken.created_at))))


def revoke_token(engine: Engine, name: str, now: datetime) -> bool:
    """Revoke token NAME; False when there is no such token (or it was revoked already)."""
    with transaction(engine) as session:
        row = session.get(ApiToken, name)
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = now
        session.add(row)
        return True


def _bearer(authorization: str | None) -> str:
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Refused(401, "missing bearer token")
    return given.strip()


def configured_admin(admin_token: str | None, authorization: str | None) -> Caller | None:
    """The configured admin, when the bearer token is theirs (no database needed); 401 for
    a request without a bearer token."""
    given = _bearer(authorization)
    if admin_token is not None and hmac.compare_digest(admin_token.encode(), given.encode()):
        return Caller(CONFIGURED_ADMIN, "admin")
    return None


def identify(engine: Engine, admin_token: str | None, authorization: str | None) -> Caller:
    """The caller a bearer token stands for; 401 for none, an unknown or a revoked token."""
    if admin := configured_admin(admin_token, authorization):
        return admin
    given = _bearer(authorization)
    if not given.startswith(_PREFIX):
        raise Refused(401, "bad bearer token")
    with read_transaction(engine) as session:
        row = session.exec(select(ApiToken).where(ApiToken.token_sha256 == digest(given))).first()
    if row is None:
        raise Refused(401, "bad bearer token")
    if row.revoked_at is not None:
        raise Refused(401, f"token {row.name} was revoked")
    return Caller(row.name, row.scope)  # type: ignore[arg-type]


def require(caller: Caller, needed: Scope) -> None:
    """403 naming the scope the request needs, when CALLER's token lacks it."""
    if not caller.allows(needed):
        raise Refused(403, f"token {caller.name} has scope {caller.scope}; this needs scope "
                           f"{needed}", "scope")
