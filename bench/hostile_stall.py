"""The worst SMTP answer other clients get while one pathological mail is received and parsed."""

from __future__ import annotations

import argparse
import os
import smtplib
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from bench.hostile_mail import nested_boundaries
from bench.processes import Daemon, free_port

ORDINARY = (b"From: Ivan Petrov <ivan@acme.example>\r\nTo: support@example.com\r\n"
            b"Subject: The printer on floor 3 does not print\r\n"
            b"Message-ID: <probe%d@acme.example>\r\n\r\n"
            b"Since this morning the printer on floor 3 prints nothing at all.\r\n")


def transaction(port: int, raw: bytes) -> float:
    """One SMTP session sending RAW (a refusal raises); its seconds."""
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port, timeout=300) as client:
        client.sendmail("ivan@acme.example", ["support@example.com"], raw)
    return time.monotonic() - started


def write_config(directory: Path, smtp_port: int, budget_s: float) -> Path:
    config = directory / "gateway.toml"
    config.write_text(f"""\
# Written by bench/hostile_stall.py
[database]
url = "sqlite:///{directory / 'intake.db'}"
[smtp]
listen = "127.0.0.1:{smtp_port}"
[http]
listen = "127.0.0.1:{free_port()}"
[outgoing]
from = "Support <support@example.com>"
maildir = "{directory / 'outgoing'}"
[intake]
state_dir = "{directory / 'state'}"
parse_budget_s = {budget_s}
[loops]
sender_limit = 1000000
[logging]
level = "warning"
""", encoding="utf-8")
    return config


def hostile_status(database: Path) -> tuple[str, str | None] | None:
    with sqlite3.connect(database, timeout=30) as connection:
        row = connection.execute("SELECT status, last_error FROM inputs WHERE idempotency_key"
                                 " LIKE '%nested-boundaries%'").fetchone()
    return (str(row[0]), row[1]) if row else None


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="hostile-stall-") as temporary:
        directory = Path(temporary)
        port = free_port()
        daemon = Daemon(write_config(directory, port, args.budget_s), port,
                        directory / "daemon.log")
        try:
            daemon.wait_ready(120)
            hostile = nested_boundaries(args.megabytes * 1_000_000)
            latencies: list[float] = []
            stop = threading.Event()

            def probe() -> None:
                n = 0
                while not stop.is_set():
                    latencies.append(transaction(port, ORDINARY % n))
                    n += 1

            prober = threading.Thread(target=probe, daemon=True)
            prober.start()
            began = time.monotonic()
            hostile_s = transaction(port, hostile)
            status = None
            while time.monotonic() - began < args.timeout_s:
                status = hostile_status(directory / "intake.db")
                if status and status[0] != "received":
                    break
                time.sleep(0.2)
            settled_s = time.monotonic() - began
            stop.set()
            prober.join(60)
            daemon.check_alive()
        finally:
            daemon.stop()
    ordered = sorted(latencies)
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(f"hostile mail: {len(hostile) / 1e6:.1f} MB, 19 nested multiparts; DATA answered in "
          f"{hostile_s:.2f} s; {status[0] if status else 'not stored'} after {settled_s:.1f} s"
          f" ({status[1] if status else ''})")
    if ordered:
        print(f"other clients meanwhile: {len(ordered)} SMTP transactions, median "
              f"{statistics.median(ordered) * 1000:.0f} ms, p99 "
              f"{ordered[int(len(ordered) * 0.99)] * 1000:.0f} ms, worst "
              f"{ordered[-1] * 1000:.0f} ms")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=25, help="size of the '--' filler")
    parser.add_argument("--budget-s", type=float, default=10.0, help="intake.parse_budget_s")
    parser.add_argument("--timeout-s", type=float, default=600.0)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
