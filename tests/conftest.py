"""Shared fixtures: both databases, a relay sink, and a gateway running in its own loop."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import socket
import threading
import uuid
import warnings
import weakref
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.clock import ManualClock
from gateway.config.settings import LoadedSettings, parse_settings
from gateway.daemon.service import Gateway

T = TypeVar("T")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora"


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Below the kernel's ephemeral range: a port from that range (what bind to port 0 hands out)
# may be given to some outgoing connection between this probe and the server's bind, and on
# a machine busy with other test runs one was ("Address already in use" at a gateway's start).
_PORTS = range(max(1024, _ephemeral_low() - 12000), _ephemeral_low())
_random_ports = random.Random()
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on now, outside the ephemeral range, and never one
    handed out before in this run (two asked for at once came back the same: the daemon then
    bound SMTP to it and failed to bind HTTP)."""
    for _ in range(200):
        port = _random_ports.choice(_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port in {_PORTS}")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database for this test session, dropped at the end."""
    name = f"intake_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({error}); "
                    "start it to run the PostgreSQL half of the suite")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each database test runs on SQLite and on PostgreSQL (a fresh schema per test)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'intake.db'}"
    base: str = request.getfixturevalue("postgres_database")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base.replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    return f"{base}?options=-csearch_path%3D{schema}"


@dataclass
class SinkHandler:
    """A relay that records what it is given and answers with the codes it is told to."""

    messages: list[EmailMessage] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)  # consumed one per DATA; then 250

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.replies:
            return self.replies.pop(0)
        raw = envelope.original_content or b""
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        parsed["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        self.messages.append(parsed)
        return "250 OK"


@dataclass
class Sink:
    handler: SinkHandler
    port: int

    @property
    def messages(self) -> list[EmailMessage]:
        return self.handler.messages


@pytest.fixture
def relay_sink() -> Iterator[Sink]:
    """An aiosmtpd relay on loopback that keeps every message it receives."""
    handler = SinkHandler()
    port = free_port()
    controller = SessionsController(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield Sink(handler, port)
    finally:
        stop_controller(controller)


class SessionsController(Controller):
    """An aiosmtpd Controller that remembers its sessions, so that `stop_controller` can close
    the connections a client still holds (a daemon keeps its relay connections open)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()
        # Sessions whose connection was made (a session without a transport that is not in
        # here is still being set up).
        self.connected: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def factory(self) -> SMTP:
        session = super().factory()
        self.sessions.add(session)
        made = session.connection_made
        connected = self.connected

        def connection_made(transport: Any) -> None:
            made(transport)
            connected.add(session)

        session.connection_made = connection_made  # type: ignore[method-assign]
        return session


def stop_controller(controller: Controller) -> None:
    """Stop an aiosmtpd Controller and close the event loop it made: `stop` leaves the loop
    open, and when the garbage collector later finds its self-pipe sockets, the "unclosed
    socket" ResourceWarning fails whichever test happens to be running then. Connections still
    open are closed first, while the loop runs: `stop` cancels their tasks but leaves their
    transports open, to the same effect ("unclosed transport"). The listener closes before
    them, or a client that reconnects at once (a daemon's outbox) opens one more.

    Under load a connection the listener accepted just before it closed may still be on its
    way to a session (it has no transport yet), so the sessions are looked at again until one
    look finds nothing to close; the deadline is generous, as a busy machine needs."""
    sessions = getattr(controller, "sessions", None)
    if sessions is not None and controller.loop.is_running():
        closed = threading.Event()
        connected = getattr(controller, "connected", set())
        quiet_looks = 0

        def close_sessions() -> None:
            nonlocal quiet_looks
            if controller.server is not None:
                controller.server.close()
            quiet_looks += 1
            for session in list(sessions):
                transport = session.transport
                if transport is None and session not in connected:
                    quiet_looks = 0  # accepted, not connected yet: look again
                elif transport is not None and not transport.is_closing():
                    transport.abort()
                    quiet_looks = 0
            if quiet_looks >= 2:
                # After the callbacks abort() queued, which close the sockets.
                controller.loop.call_soon(closed.set)
            else:
                controller.loop.call_later(0.05, close_sessions)

        controller.loop.call_soon_threadsafe(close_sessions)
        closed.wait(60)
    controller.stop()
    controller.loop.close()
    # Whatever the relay's loop still owned is collected here, where its warnings belong to
    # the relay that is being stopped, not to a later test that happens to run when the
    # collector finds it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def config_text(database_url: str, state: Path, smtp_port: int, *, relay_port: int | None = None,
                extra: str = "", smtp: str = "", intake: str = "", http: str = "",
                http_port: int | None = None, outgoing_extra: str = "") -> str:
    outgoing = outgoing_extra + (f'host = "127.0.0.1"\nport = {relay_port}\nsecurity = "none"\n'
                if relay_port else f'maildir = "{state / "outgoing"}"\n')
    return (f'[database]\nurl = "{database_url}"\n\n'
            f'[intake]\nstate_dir = "{state}"\n{intake}\n'
            f'[smtp]\nlisten = "127.0.0.1:{smtp_port}"\n{smtp}\n'
            f'[http]\nlisten = "127.0.0.1:{http_port or free_port()}"\n{http}\n'
            f'[outgoing]\nfrom = "Support <support@example.com>"\ntimeout_s = 5\n{outgoing}\n'
            f"{extra}"
            # The test domains publish nothing: sender authentication is off unless a test
            # (tests/gateway/intake/test_sender_auth.py) sets [trust] with its own DNS.
            + ("" if "[trust]" in extra else '\n[trust]\nmode = "off"\n'))


class LoopThread:
    """An event loop in a thread, so blocking clients (smtplib) can talk to it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    # Generous: starting a gateway with its worker processes took over 60 s at load 9.
    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass
class RunningGateway:
    gateway: Gateway
    loop: LoopThread
    smtp_port: int
    clock: ManualClock
    state: Path

    def settle(self) -> None:
        """Process everything accepted and send everything due, then return."""
        self.loop.run(self.gateway.run_until_idle())

    def call(self, function: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return self.loop.run(function())

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.http.port}"


START = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)  # a Wednesday, 11:00 in Moscow


@pytest.fixture
def make_gateway(database_url: str, tmp_path: Path) -> Iterator[Callable[..., RunningGateway]]:
    """Start a gateway (SMTP listener, processor, outbox) on a free port with a manual clock."""
    running: list[RunningGateway] = []

    def start(relay_port: int | None = None, extra: str = "", smtp: str = "",
              workers: bool = False, http: str = "", intake: str = "",
              outgoing: str = "") -> RunningGateway:
        state = tmp_path / f"state{len(running)}"
        port = free_port()
        text = config_text(database_url, state, port, relay_port=relay_port, extra=extra,
                           smtp=smtp, http=http, intake=intake, outgoing_extra=outgoing)
        config_path = tmp_path / f"config{len(running)}.toml"
        config_path.write_text(text, encoding="utf-8")
        settings = parse_settings(text, config_path)
        clock = ManualClock(START)
        loop = LoopThread()
        gateway = loop.run(_construct(LoadedSettings(settings, config_path), clock))
        loop.run(gateway.start(workers=workers))
        handle = RunningGateway(gateway, loop, port, clock, state)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        handle.loop.run(handle.gateway.stop(drain_deadline_s=5))
        handle.loop.close()


async def _construct(loaded: LoadedSettings, clock: ManualClock) -> Gateway:
    return Gateway(loaded, clock)


def make_mail(subject: str = "Messages are not delivered", *,
              sender: str = "Ivan Petrov <ivan@acme.example>",
              body: str = "Since this morning messages are not delivered to most users of ours.",
              message_id: str | None = None, headers: dict[str, str] | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@example.com"
    message["Subject"] = subject
    message["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@acme.example>"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes(policy=policy.SMTP)

