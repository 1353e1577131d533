"""Reading a request body no larger than the limit (413 otherwise)."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request

from gateway.http.errors import Refused


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body; Refused(413) as soon as it passes LIMIT bytes, declared or sent."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Refused(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(413, f"body larger than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise Refused(400, "client went away before the body ended") from None
    return b"".join(chunks)
