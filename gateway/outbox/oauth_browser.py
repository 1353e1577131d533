"""The authorization-code sign-in (RFC 6749 with PKCE, RFC 8252's loopback redirect): the
person opens a URL in a browser, the provider sends the browser back to 127.0.0.1 here."""

from __future__ import annotations

import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from authlib.common.security import generate_token

from gateway.config.oauth_settings import OAuthSettings
from gateway.outbox.oauth_failures import Protocol
from gateway.outbox.oauth_providers import (
    HTTP_TIMEOUT_S,
    TokenRefused,
    TokenSet,
    authlib_call,
    authlib_client,
)

# How long the person has to sign in.
SIGN_IN_TIMEOUT_S = 600.0
_ANSWER = (b"<!doctype html><title>Intake Gateway</title><p>Signed in. You can close this "
           b"window and return to the terminal.</p>")


class _RedirectServer(HTTPServer):
    """Serves the one redirect back from the provider and keeps its URL."""

    received: str | None = None


class _RedirectHandler(BaseHTTPRequestHandler):
    server: _RedirectServer

    def log_message(self, format: str, *args: Any) -> None:
        return  # the URL carries the code: not for the terminal either

    def do_GET(self) -> None:
        if "code=" in self.path or "error=" in self.path:
            self.server.received = f"http://127.0.0.1:{self.server.server_port}{self.path}"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(_ANSWER)))
        self.end_headers()
        self.wfile.write(_ANSWER)


def browser_login(settings: OAuthSettings, protocol: Protocol,
                  show: Callable[[str, str, str], None]) -> TokenSet:
    """SHOW(url, "", how) the sign-in URL, wait for the redirect, redeem its code."""
    with _RedirectServer(("127.0.0.1", settings.redirect_port), _RedirectHandler) as server:
        server.timeout = 1.0
        redirect_uri = f"http://127.0.0.1:{server.server_port}/"
        verifier = generate_token(64)
        with authlib_client(settings, protocol) as client:
            client.redirect_uri = redirect_uri
            # access_type and prompt: Google gives a refresh token only when asked so.
            url, state = client.create_authorization_url(
                settings.authorization_endpoint(), code_verifier=verifier,
                access_type="offline", prompt="consent")
            show(url, "", f"Open the URL in a browser and sign in; the browser is sent back to "
                          f"{redirect_uri} (from another machine: ssh -L "
                          f"{server.server_port}:127.0.0.1:{server.server_port} this-host)")
            deadline = time.monotonic() + SIGN_IN_TIMEOUT_S
            while server.received is None and time.monotonic() < deadline:
                server.handle_request()
            if server.received is None:
                raise TokenRefused("nobody signed in before the time ran out")
            received = server.received
            if "error=" in received and "code=" not in received:
                raise TokenRefused(f"the provider refused the sign-in: {received.split('?')[-1]}")
            return authlib_call(lambda: client.fetch_token(
                settings.token_endpoint(), authorization_response=received, state=state,
                code_verifier=verifier, timeout=HTTP_TIMEOUT_S))
