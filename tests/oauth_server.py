"""A small OAuth 2.0 provider on loopback for tests: issues, rotates and revokes tokens.

It serves what the gateway and Dovecot ask of a real provider: the token endpoint
(refresh_token, device_code, client_credentials grants), the device authorization endpoint
(RFC 8628), token introspection (RFC 7662, Dovecot's oauth2 passdb) and, for msal, OpenID
metadata under /TENANT/v2.0/. Optionally over TLS (msal accepts only https authorities).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.conftest import free_port

CLIENT_ID = "intake-test-client"
CLIENT_SECRET = "intake-test-secret"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class Grant:
    """What one person (USER) consented to; revoking it kills every token it issued."""

    user: str
    refresh_token: str
    revoked: bool = False


@dataclass
class OAuthServer:
    """The provider's state; tests read its counters and call approve, revoke, pause."""

    port: int = field(default_factory=free_port)
    access_ttl_s: float = 3600.0
    rotate: bool = True  # every refresh gives a new refresh token and retires the old
    client_secret: str | None = CLIENT_SECRET
    app_user: str = "support"  # whose mailbox client credentials open
    tls: tuple[Path, Path] | None = None  # (cert, key)
    access: dict[str, tuple[str, float, Grant | None]] = field(default_factory=dict)
    refresh: dict[str, Grant] = field(default_factory=dict)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    browser_user: str = "support"  # who signs in when a browser opens /authorize
    # Counters: refresh grants answered with tokens, introspections by answer, requests.
    refreshes: int = 0
    introspected: list[tuple[str, bool]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # -- what a test does --------------------------------------------------------------

    def start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def pause(self) -> None:
        """The provider goes down: nothing listens on its port until `start` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)

    def approve(self, user_code: str, user: str = "support") -> None:
        """The person signs in at the verification URL and enters USER_CODE."""
        with self._lock:
            for device in self.devices.values():
                if device["user_code"] == user_code:
                    device["user"] = user
                    return
        raise KeyError(user_code)

    def grant_for(self, user: str) -> str:
        """Log USER in without the device flow; returns the refresh token (test setup)."""
        with self._lock:
            token = secrets.token_urlsafe(24)
            self.refresh[token] = Grant(user, token)
            return token

    def revoke(self, user: str) -> None:
        """USER withdraws consent: refresh and access tokens stop working at once."""
        with self._lock:
            for grant in self.refresh.values():
                if grant.user == user:
                    grant.revoked = True
            for token, (owner, _, _) in list(self.access.items()):
                if owner == user:
                    del self.access[token]

    def valid(self, token: str) -> str | None:
        """The user an access token is good for now, or None."""
        with self._lock:
            entry = self.access.get(token)
        if entry is None or entry[1] <= time.time():
            return None
        return entry[0]

    def introspect(self, token: str) -> dict[str, Any]:
        user = self.valid(token)
        with self._lock:
            self.introspected.append((token, user is not None))
        return {"active": True, "username": user} if user else {"active": False}

    # -- the endpoints -----------------------------------------------------------------

    def _issue(self, user: str, grant: Grant | None) -> dict[str, Any]:
        access = secrets.token_urlsafe(24)
        self.access[access] = (user, time.time() + self.access_ttl_s, grant)
        answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                                  "expires_in": self.access_ttl_s, "scope": "mail"}
        if grant is not None:
            answer["refresh_token"] = grant.refresh_token
        return answer

    def token(self, form: dict[str, str], basic: tuple[str, str] | None) -> tuple[int, Any]:
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret"))
        if client_id != CLIENT_ID or (self.client_secret and secret != self.client_secret):
            return 401, {"error": "invalid_client", "error_description": "bad client secret"}
        grant_type = form.get("grant_type")
        with self._lock:
            if grant_type == "refresh_token":
                grant = self.refresh.get(form.get("refresh_token", ""))
                if grant is None or grant.revoked:
                    return 400, {"error": "invalid_grant",
                                 "error_description": "refresh token revoked or unknown"}
                if self.rotate:
                    del self.refresh[grant.refresh_token]
                    grant.refresh_token = secrets.token_urlsafe(24)
                    self.refresh[grant.refresh_token] = grant
                self.refreshes += 1
                return 200, self._issue(grant.user, grant)
            if grant_type == DEVICE_GRANT:
                device = self.devices.get(form.get("device_code", ""))
                if device is None:
                    return 400, {"error": "expired_token"}
                if device.get("user") is None:
                    return 400, {"error": "authorization_pending"}
                del self.devices[form["device_code"]]
                grant = Grant(device["user"], secrets.token_urlsafe(24))
                self.refresh[grant.refresh_token] = grant
                return 200, self._issue(grant.user, grant)
            if grant_type == "authorization_code":
                issued = self.codes.pop(form.get("code", ""), None)
                verifier = form.get("code_verifier", "")
                challenge = base64.urlsafe_b64encode(
                    hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if issued is None or issued["redirect_uri"] != form.get("redirect_uri") \
                        or issued["challenge"] != challenge:
                    return 400, {"error": "invalid_grant", "error_description": "bad code"}
                grant = Grant(issued["user"], secrets.token_urlsafe(24))
                self.refresh[grant.refresh_token] = grant
                return 200, self._issue(grant.user, grant)
            if grant_type == "client_credentials":
                return 200, self._issue(self.app_user, None)
        return 400, {"error": "unsupported_grant_type"}

    def device(self, form: dict[str, str]) -> tuple[int, Any]:
        if form.get("client_id") != CLIENT_ID:
            return 400, {"error": "invalid_client"}
        code = secrets.token_urlsafe(16)
        user_code = f"{secrets.randbelow(10**8):08d}"
        with self._lock:
            self.devices[code] = {"user_code": user_code, "user": None}
        return 200, {"device_code": code, "user_code": user_code,
                     "verification_uri": f"{self.url}/device", "expires_in": 120,
                     "interval": 1, "message": f"Enter {user_code} at {self.url}/device"}

    def authorize(self, query: dict[str, str]) -> str:
        """The person signs in as BROWSER_USER at once: where the browser is sent back."""
        if query.get("client_id") != CLIENT_ID or query.get("code_challenge_method") != "S256":
            raise ValueError("bad authorization request")
        code = secrets.token_urlsafe(16)
        with self._lock:
            self.codes[code] = {"user": self.browser_user, "challenge": query["code_challenge"],
                                "redirect_uri": query["redirect_uri"]}
        return f"{query['redirect_uri']}?code={code}&state={query.get('state', '')}"

    def openid(self, tenant: str) -> dict[str, Any]:
        base = f"{self.url}/{tenant}"
        return {"issuer": f"{base}/v2.0", "token_endpoint": f"{self.url}/token",
                "authorization_endpoint": f"{base}/authorize",
                "device_authorization_endpoint": f"{self.url}/device/code"}


def _handler(server: OAuthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet tests
            return

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            return {k: v[0] for k, v in parse_qs(raw).items()}

        def _basic(self) -> tuple[str, str] | None:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return None
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return user, password

        def do_POST(self) -> None:
            path = urlparse(self.path).path
            server.requests.append(f"POST {path}")
            form = self._form()
            if path == "/token":
                self._answer(*server.token(form, self._basic()))
            elif path == "/device/code":
                self._answer(*server.device(form))
            elif path == "/introspect":
                self._answer(200, server.introspect(form.get("token", "")))
            else:
                self._answer(404, {"error": "not_found"})

        def do_GET(self) -> None:
            path = urlparse(self.path).path
            server.requests.append(f"GET {path}")
            parts = path.strip("/").split("/")
            if path == "/authorize":
                query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
                self.send_response(302)
                self.send_header("Location", server.authorize(query))
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif parts[-2:] == ["well-known", "openid-configuration"] or path.endswith(
                    "/.well-known/openid-configuration"):
                self._answer(200, server.openid(parts[0]))
            else:
                self._answer(404, {"error": "not_found"})

    return Handler


@contextlib.contextmanager
def running_oauth_server(**options: Any) -> Iterator[OAuthServer]:
    server = OAuthServer(**options)
    server.start()
    try:
        yield server
    finally:
        server.pause()


@pytest.fixture(name="oauth_server")
def oauth_server_fixture() -> Iterator[OAuthServer]:
    """The provider over plain HTTP on a free loopback port."""
    with running_oauth_server() as server:
        yield server
