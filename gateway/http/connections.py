"""HTTP connections: at most so many from one address, and a deadline for the first request."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.intake.refusals import PeerConnections, limit_bit

_TOO_MANY = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 10\r\nContent-Length: 0\r\n"
             b"Connection: close\r\n\r\n")


def guarded_protocol(peers: PeerConnections, first_request_s: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, refusing a connection over PEERS' limit with 503 and
    closing one that sends no request within FIRST_REQUEST_S."""

    class GuardedHttpTools(HttpToolsProtocol):
        _peer: str | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            peer = str(self.client[0]) if self.client else "unknown"
            if not peers.enter(peer):
                limit_bit("http_connections_per_peer", "http", peer=peer, most=peers.most)
                transport.write(_TOO_MANY)
                transport.close()
                return
            self._peer = peer
            # uvicorn arms its idle timer only after a response, so a connection that never
            # sends a request stayed open for ever (a thousand of them took every descriptor).
            self.timeout_keep_alive_task = self.loop.call_later(
                first_request_s, self.timeout_keep_alive_handler)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._peer is not None:
                peers.leave(self._peer)
                self._peer = None
            super().connection_lost(exc)

    return GuardedHttpTools
