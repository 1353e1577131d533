"""Peers that can fail on demand: a relay that answers 4xx, 5xx or is down, a private PostgreSQL."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import SessionsController, free_port, stop_controller


class RelayHandler:
    """Answers 250, or 451 / 554 to every DATA while told to; some domains always get 550."""

    def __init__(self, refused_domains: frozenset[str]) -> None:
        self.mode = "ok"  # ok | 4xx | 5xx
        self.refused_domains = refused_domains
        self.received: Counter[str] = Counter()  # envelope recipient -> messages taken
        self.answered: Counter[str] = Counter()  # reply code -> DATA commands answered

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address.rpartition("@")[2].lower() in self.refused_domains:
            self.answered["550"] += 1
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.mode != "ok":
            self.answered[self.mode] += 1
            return ("451 4.3.0 Busy, try again later" if self.mode == "4xx"
                    else "554 5.7.1 Refused for policy reasons")
        parsed = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        assert parsed["Auto-Submitted"] == "auto-replied", "only acknowledgements expected"
        for recipient in envelope.rcpt_tos:
            self.received[recipient.lower()] += 1
        self.answered["250"] += 1
        return "250 OK"


class Relay:
    """The outgoing relay on a fixed loopback port; `down()` and `up()` stop and restart it."""

    def __init__(self, refused_domains: frozenset[str]) -> None:
        self.handler = RelayHandler(refused_domains)
        self.port = free_port()
        self._controller: Controller | None = None

    def up(self) -> None:
        self.handler.mode = "ok"
        self._controller = SessionsController(self.handler, hostname="127.0.0.1",
                                              port=self.port)
        self._controller.start()

    def down(self) -> None:
        """Stop listening. DATA is refused with 451 for a moment first, so no message is taken
        while its connection is cut (the sender could not know, and would send it again)."""
        self.handler.mode = "4xx"
        time.sleep(0.3)
        if self._controller is not None:
            stop_controller(self._controller)
            self._controller = None


def _postgres_bin() -> Path | None:
    """The newest PostgreSQL server binaries (Debian keeps them out of PATH)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit()
                        else 0)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


class PrivatePostgres:
    """A PostgreSQL cluster of our own in a temporary directory, on a free loopback port, so
    it can be restarted under load without disturbing anyone. As root it runs as `postgres`
    (the server refuses root)."""

    def __init__(self) -> None:
        binaries = _postgres_bin()
        if binaries is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.bin = binaries
        self.user: str | None = None
        if os.getuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no `postgres` user to run a "
                            "private PostgreSQL as")
            self.user = "postgres"
        self.root = Path(tempfile.mkdtemp(prefix="intake-pg-"))
        self.port = free_port()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}\n{self.log()}"

    def start(self) -> None:
        data = self.root / "data"
        # fsync off: these tests kill and restart processes, not the machine.
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._run("pg_ctl", "-D", str(data), "-l", str(self.root / "server.log"), "-w",
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off -c max_connections=100", "start")

    def restart(self) -> None:
        """A fast restart: every session is terminated, transactions in flight roll back."""
        # The log file again: a server started without one would hold our output pipe open.
        self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "server.log"),
                  "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""
