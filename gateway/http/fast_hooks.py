"""POST /hooks/<name> straight to its handler: the hot path of phone intake skips FastAPI."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.http.errors import Refused, refused_response
from gateway.http.hooks import receive_hook
from gateway.http.rate import SourceRate
from gateway.http.services import Services

# Probes must keep working for a monitor that polls often from one address.
_NOT_COUNTED = frozenset({"/healthz", "/metrics"})


class HookFastPath:
    """Answers signed webhook posts itself and hands everything else to the FastAPI app.

    FastAPI's routing, dependency solving and middleware stack cost more than the rest of a
    webhook request together; this route takes no parameters for FastAPI to validate, so the
    same handler runs here with the same answers. FastAPI still documents the route (OpenAPI)
    and serves the token form, the GET check and everything while the daemon stops.
    """

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services
        # The limit is read per request, so settings replaced in Services take effect.
        self.rate = SourceRate(lambda: services.settings.limits.http_requests_per_source_per_min)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        # Outermost, so a flood is turned away before any routing or body reading.
        if scope["type"] == "http" and path not in _NOT_COUNTED:
            client = scope.get("client")
            source = client[0] if client else "unknown"
            wait = self.rate.retry_after(source)
            if wait is not None:
                limit = self.services.settings.limits.http_requests_per_source_per_min
                refused = Refused(429, f"too many requests from {source}: more than {limit} "
                                  "per minute", "http_requests_per_source_per_min", wait)
                answer = await refused_response(Request(scope, receive), refused)
                await answer(scope, receive, send)
                return
        name = path[len("/hooks/"):]
        if (scope["type"] != "http" or scope["method"] != "POST" or self.services.closing
                or not path.startswith("/hooks/") or not name or "/" in name):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await receive_hook(self.services, request, name, None)
        except Refused as error:
            response = await refused_response(request, error)
        await response(scope, receive, send)
