"""Refusals as data: status, reason and field, logged once and answered as JSON."""

from __future__ import annotations

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse

log = structlog.get_logger("gateway.http")


class Refused(Exception):
    """An outcome, not a crash: the request is answered STATUS and nothing is stored."""

    def __init__(self, status: int, reason: str, field: str | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field
        self.retry_after = retry_after


async def refused_response(request: Request, error: Exception) -> JSONResponse:
    """Log why (never a secret: reasons are ours, not echoes of credentials) and answer."""
    assert isinstance(error, Refused)
    log.warning("http.refused", status=error.status, reason=error.reason, field=error.field,
                path=loggable_path(request.url.path),
                peer=request.client.host if request.client else None)
    body: dict[str, str] = {"error": error.reason}
    if error.field is not None:
        body["field"] = error.field
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return JSONResponse(body, status_code=error.status, headers=headers)


def loggable_path(path: str) -> str:
    """PATH without a hook's path token: for senders that cannot sign, it is the secret."""
    for signed in ("/portal/t/", "/portal/sign-in/"):
        # A portal link's token opens a request or a session: never written to logs.
        if path.startswith(signed):
            return f"{signed}[redacted]"
    name, slash, _token = path.removeprefix("/hooks/").partition("/")
    if path.startswith("/hooks/") and slash:
        return f"/hooks/{name}/[redacted]"
    return path
