"""HTTP connections: at most so many from one address, deadlines for the first request and for
receiving each request whole."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.intake.refusals import PeerConnections, limit_bit

_TOO_MANY = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 10\r\nContent-Length: 0\r\n"
             b"Connection: close\r\n\r\n")
_TOO_SLOW = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 52\r\n"
             b"Connection: close\r\n\r\nthe request was not received whole within the deadline")


def guarded_protocol(peers: PeerConnections, first_request_s: float,
                     request_s: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, refusing a connection over PEERS' limit with 503, closing
    one that sends no request within FIRST_REQUEST_S, and answering 408 to a request whose
    head and body have not all arrived REQUEST_S after its first byte."""

    class GuardedHttpTools(HttpToolsProtocol):
        _peer: str | None = None
        _receiving: asyncio.TimerHandle | None = None

        def on_message_begin(self) -> None:
            super().on_message_begin()
            # uvicorn stops every timer at a request's first byte: a client sending one byte
            # a second (a header, or a declared body never finished) held the connection, and
            # a handler waiting for the body, for ever.
            self._stop_receiving_timer()
            self._receiving = self.loop.call_later(request_s, self._too_slow)

        def on_message_complete(self) -> None:
            self._stop_receiving_timer()
            super().on_message_complete()

        def _stop_receiving_timer(self) -> None:
            if self._receiving is not None:
                self._receiving.cancel()
                self._receiving = None

        def _too_slow(self) -> None:
            self._receiving = None
            if self.transport.is_closing():
                return
            limit_bit("http_request_time", "http", peer=self._peer or "unknown", most=request_s)
            if getattr(self, "cycle", None) is None or not self.cycle.response_started:
                self.transport.write(_TOO_SLOW)
            # The handler reading the body sees the client gone and answers nobody.
            self.transport.close()

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
            self._stop_receiving_timer()
            if self._peer is not None:
                peers.leave(self._peer)
                self._peer = None
            super().connection_lost(exc)

    return GuardedHttpTools
