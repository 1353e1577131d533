"""The relay sink that takes the acknowledgements: a subprocess, its report read in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.event_loop import new_event_loop
from bench.processes import ROOT, BenchError, Daemon, free_port

_IN_REPLY_TO = re.compile(rb"^in-reply-to:[ \t]*(?:\r?\n[ \t]+)?<([^>\s]+)>",
                          re.IGNORECASE | re.MULTILINE)


def run_sink() -> int:
    """Accept every message; print `monotonic<TAB>In-Reply-To<TAB>rcpt` per message."""
    from aiosmtpd.controller import Controller

    out = sys.stdout
    flushing: list[bool] = []

    def flush() -> None:
        flushing.clear()
        out.flush()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            arrived = time.monotonic()
            raw = envelope.original_content or envelope.content or b""
            head = raw.split(b"\r\n\r\n", 1)[0]
            match = _IN_REPLY_TO.search(head)
            reply_to = match.group(1).decode("ascii", "replace") if match else "-"
            rcpt = ",".join(envelope.rcpt_tos) or "-"
            out.write(f"{arrived:.6f}\t{reply_to}\t{rcpt}\n")
            # The arrival time is in the line: flushing every 10 ms instead of every line
            # changes no figure and spares the shared cores a write per acknowledgement.
            if not flushing:
                flushing.append(True)
                asyncio.get_running_loop().call_later(0.01, flush)
            return "250 2.0.0 OK"

    controller = None
    for _ in range(20):
        port = free_port()
        try:
            # On uvloop, as the daemon: the sink's share of the two cores is not the daemon's.
            controller = Controller(Handler(), hostname="127.0.0.1", port=port,
                                    ready_timeout=10.0, loop=new_event_loop())
            controller.start()
            break
        except Exception:  # port taken between probe and bind: try another
            controller = None
    if controller is None:
        print("SINKERROR could not bind", flush=True)
        return 1
    out.write(f"READY {port}\n")
    out.flush()
    signal.signal(signal.SIGTERM, lambda *_: sys.stdin.close())
    with contextlib.suppress(Exception):
        for _line in sys.stdin:  # runs until the parent closes our stdin (or dies)
            pass
    controller.stop()
    return 0



@dataclass
class Ack:
    arrived: float
    recipient: str


class Sink:
    """The relay sink subprocess and a thread collecting what it reports."""

    def __init__(self, log_path: Path) -> None:
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.relay_sink"], stdin=subprocess.PIPE, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=self._log, text=True, start_new_session=True)
        assert self.proc.stdout is not None
        self.acks: dict[str, list[Ack]] = {}
        self.unmatched = 0
        self.count = 0
        self.last_arrival = time.monotonic()
        self._lock = threading.Lock()
        self.port = self._await_ready()
        self._reader = threading.Thread(target=self._read, name="sink-reader", daemon=True)
        self._reader.start()

    def _await_ready(self) -> int:
        assert self.proc.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()),  # type: ignore[union-attr]
                                  daemon=True)
        reader.start()
        reader.join(30)
        line = result[0] if result else ""
        if not line.startswith("READY "):
            raise BenchError(f"relay sink did not start (said {line.strip()!r})")
        return int(line.split()[1])

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                continue
            arrived, reply_to, rcpt = float(parts[0]), parts[1], parts[2]
            with self._lock:
                self.count += 1
                self.last_arrival = arrived
                if reply_to == "-":
                    self.unmatched += 1
                else:
                    self.acks.setdefault(reply_to, []).append(Ack(arrived, rcpt))

    def received(self, ids: Sequence[str]) -> int:
        with self._lock:
            return sum(1 for i in ids if i in self.acks)

    def snapshot(self) -> tuple[int, float]:
        with self._lock:
            return self.count, self.last_arrival

    def first_ack(self, message_id: str) -> Ack | None:
        with self._lock:
            found = self.acks.get(message_id)
            return found[0] if found else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        self._log.close()



def wait_for_acks(sink: Sink, ids: list[str], daemon: Daemon, stall_timeout: float,
                  deadline_s: float, label: str, quiet: bool) -> None:
    """Until every id has an acknowledgement; raise if they stop arriving."""
    started = time.monotonic()
    last_count, last_progress, last_report = -1, time.monotonic(), 0.0
    while True:
        have = sink.received(ids)
        now = time.monotonic()
        if have >= len(ids):
            return
        daemon.check_alive()
        if have != last_count:
            last_count, last_progress = have, now
        elif now - last_progress > stall_timeout:
            raise BenchError(f"{label}: acknowledgements stopped arriving: {have}/{len(ids)} "
                             f"after {now - started:.0f} s, none for {stall_timeout:.0f} s.\n"
                             f"daemon log tail:\n{daemon.log_tail()}")
        if now - started > deadline_s:
            raise BenchError(f"{label}: only {have}/{len(ids)} acknowledgements within "
                             f"{deadline_s:.0f} s")
        if not quiet and now - last_report >= 5:
            print(f"  {label}: {have}/{len(ids)} acknowledgements", file=sys.stderr)
            last_report = now
        time.sleep(0.05)



if __name__ == "__main__":
    sys.exit(run_sink())
