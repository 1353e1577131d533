"""uvicorn inside the daemon's own event loop: started by Gateway.start, drained on stop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import structlog
import uvicorn

from gateway.config.settings import split_host_port
from gateway.http.app import make_app
from gateway.http.connections import guarded_protocol
from gateway.http.fast_hooks import HookFastPath
from gateway.http.services import Services
from gateway.intake.refusals import PeerConnections

log = structlog.get_logger("gateway.http")


class _InLoopServer(uvicorn.Server):
    """The daemon owns SIGTERM/SIGHUP; uvicorn must not install handlers of its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """One listener; `start` binds (raising OSError if it cannot), `stop` drains."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.app = make_app(services)
        self._server: _InLoopServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> None:
        host, port = split_host_port(self.services.settings.http.listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Bound here, so a busy port is an OSError for the caller, not uvicorn's sys.exit.
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
        # listening socket says TCP, and without it every answer waits ~40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        sock.listen(1024)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        http = self.services.settings.http
        config = uvicorn.Config(HookFastPath(self.app, self.services),
                                lifespan="off", log_config=None, access_log=False,
                                http=guarded_protocol(
                                    PeerConnections(http.connections_per_peer),
                                    http.idle_timeout_s, http.request_timeout_s),
                                timeout_keep_alive=int(http.idle_timeout_s),
                                server_header=False,
                                timeout_graceful_shutdown=5, backlog=1024)
        self._server = _InLoopServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="http")
        # uvicorn says when it listens only through this flag.
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("HTTP server stopped while starting")
            await asyncio.sleep(0.01)
        self.services.started = True
        log.debug("http.listening", listen=f"{host}:{self.port}")

    def close_intake(self) -> None:
        """From now on requests are answered 503; the listener still runs."""
        self.services.closing = True

    async def stop(self) -> None:
        """503 for new requests, let those in flight finish, then close the listener."""
        self.close_intake()
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._server = self._task = None
