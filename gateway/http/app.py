"""The ASGI application: routes, the refusal handler, and the 503 gate used while stopping."""

from __future__ import annotations

import asyncio

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import text
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.http import (  # noqa: F401 (rules_api, sla_api, events_api add to api.router)
    api,
    events_api,
    hooks,
    rules_api,
    sla_api,
)
from gateway.http.errors import Refused, refused_response
from gateway.http.metrics import CONTENT_TYPE, GatewayCollector, render
from gateway.http.openapi_doc import add_security_schemes
from gateway.http.services import Services
from gateway.sla.calendar_check import missing_transfers
from gateway.store.db import read_transaction

log = structlog.get_logger("gateway.http")


class ClosingGate:
    """While the daemon stops, answer 503 (retry later) to everything but /healthz."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and self.services.closing
                and scope["path"] != "/healthz"):
            response = JSONResponse({"error": "shutting down, try again later"},
                                    status_code=503, headers={"Retry-After": "5"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def make_app(services: Services) -> FastAPI:
    app = FastAPI(title="Intake Gateway", version="1", openapi_url="/openapi.json",
                  docs_url=None, redoc_url=None)
    app.state.services = services
    app.add_exception_handler(Refused, refused_response)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(ClosingGate, services=services)
    app.include_router(hooks.router)
    app.include_router(api.router)
    add_security_schemes(app)

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"],
             summary="Ready to take requests (database and mailboxes reachable)")
    async def readyz() -> Response:
        if not services.started or services.closing:
            return JSONResponse({"status": "not ready"}, status_code=503)
        if failure := services.door.commit_failure:
            return JSONResponse({"status": "database cannot commit", "error": failure},
                                status_code=503)
        # A mailbox another instance reads is not down here.
        if down := [m.name for m in services.mailboxes if m.owned and not m.connected]:
            return JSONResponse({"status": "mailbox down", "mailboxes": down}, status_code=503)
        try:
            await asyncio.to_thread(_ping, services)
        except Exception as error:
            log.warning("http.not_ready", error=str(error))
            return JSONResponse({"status": "database unreachable"}, status_code=503)
        body: dict[str, object] = {"status": "ready"}
        if services.context is not None and (warnings := missing_transfers(
                services.context().policy, services.clock.now().date())):
            body["warnings"] = warnings  # ready still: deadlines are computed, maybe wrong
        return JSONResponse(body)

    collector = GatewayCollector(services.db.engine, services.clock.now,
                                 lambda: services.mailboxes, lambda: dict(services.outcomes))

    @app.get("/metrics", tags=["health"], summary="Prometheus text format",
             response_class=PlainTextResponse)
    async def metrics() -> Response:
        # The collector queries the database: off the event loop.
        return Response(await asyncio.to_thread(render, collector),
                        media_type=CONTENT_TYPE)

    return app


def _ping(services: Services) -> None:
    with read_transaction(services.db.engine) as session:
        session.exec(text("SELECT 1"))  # type: ignore[call-overload]


async def _invalid(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's own validation (query parameters): 422 naming the first wrong field."""
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0] if error.errors() else {}
    field = str((first.get("loc") or ("", ""))[-1])
    return await refused_response(request, Refused(422, str(first.get("msg", "invalid")), field))


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    return await refused_response(request, Refused(error.status_code, str(error.detail)))
