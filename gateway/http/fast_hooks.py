"""POST /hooks/<name> straight to its handler: the hot path of phone intake skips FastAPI."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.http.errors import Refused, refused_response
from gateway.http.hooks import receive_hook
from gateway.http.services import Services


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
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
