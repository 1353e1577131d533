"""A full disk: no acknowledgement goes out twice, and /readyz says not ready (issue 17)."""

from __future__ import annotations

import contextlib
import shutil
import smtplib
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.clock import ManualClock
from gateway.config.settings import LoadedSettings, parse_settings
from tests.conftest import (
    START,
    LoopThread,
    RunningGateway,
    SessionsController,
    SinkHandler,
    _construct,
    config_text,
    free_port,
    make_mail,
    stop_controller,
)

pytestmark = pytest.mark.adversarial


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MB tmpfs (needs root, as CI has; skipped elsewhere)."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mountpoint)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(disk: Path) -> Path:
    """Fill DISK to the last byte; the filler file, to remove again."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 65536)
            handle.flush()
    with open(filler, "ab", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0")
            handle.flush()
    return filler


@dataclass
class FillingRelay(SinkHandler):
    """A relay that fills the disk just before it answers 250 to its first message: the
    acknowledgement is taken, and nothing after can be written down."""

    disk: Path | None = None
    filler: Path | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.disk is not None and self.filler is None:
            self.filler = fill(self.disk)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def filling_relay(small_disk: Path) -> Iterator[tuple[FillingRelay, int]]:
    handler = FillingRelay(disk=small_disk)
    port = free_port()
    controller = SessionsController(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        stop_controller(controller)


def readyz(running: RunningGateway) -> int:
    try:
        with urllib.request.urlopen(running.http_url + "/readyz", timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_disk_full_sends_each_acknowledgement_once_and_is_not_ready(
        small_disk: Path, filling_relay: tuple[FillingRelay, int], tmp_path: Path) -> None:
    relay, relay_port = filling_relay
    state = small_disk / "state"
    text = config_text(f"sqlite:///{small_disk / 'intake.db'}", state, free_port(),
                       relay_port=relay_port, outgoing_extra="lease_s = 4\n")
    smtp_port = int(text.split('listen = "127.0.0.1:', 1)[1].split('"', 1)[0])
    config_path = tmp_path / "config.toml"
    config_path.write_text(text, encoding="utf-8")
    clock = ManualClock(START)
    loop = LoopThread()
    gateway = loop.run(_construct(LoadedSettings(parse_settings(text, config_path), config_path),
                                  clock))
    loop.run(gateway.start(workers=False))
    running = RunningGateway(gateway, loop, smtp_port, clock, state)
    try:
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as client:
            client.sendmail("ivan@acme.example", ["support@example.com"],
                            make_mail(message_id="<before-full@acme.example>"))
        assert running.call(gateway.process_once) == 1  # registered, acknowledgement queued
        # The relay takes the acknowledgement and the disk is full: neither the journal nor
        # the database can say so. Each retry used to send it again.
        for _ in range(4):
            with contextlib.suppress(Exception):
                running.call(gateway.outbox.run_once)
            # Past the lease: a claimed, unrecorded item is due again.
            clock.advance(timedelta(seconds=10))
        assert len(relay.messages) == 1
        # Mail now gets 451 (not stored) and /readyz says why.
        with (smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as client,
              pytest.raises(smtplib.SMTPDataError) as refused):
            client.sendmail("ivan@acme.example", ["support@example.com"],
                            make_mail(message_id="<while-full@acme.example>", body="x" * 200_000))
        assert refused.value.smtp_code == 451
        assert readyz(running) == 503
        assert relay.filler is not None
        relay.filler.unlink()
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(Exception):
                running.call(gateway.outbox.run_once)
                break
            assert time.monotonic() < deadline
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as client:
            client.sendmail("ivan@acme.example", ["support@example.com"],
                            make_mail(message_id="<after-full@acme.example>"))
        assert readyz(running) == 200
        running.settle()
        # One acknowledgement for each of the two stored messages, none twice.
        assert len(relay.messages) == 2
    finally:
        loop.run(gateway.stop(drain_deadline_s=5))
        loop.close()
        shutil.rmtree(state, ignore_errors=True)
