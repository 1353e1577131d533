"""HTTP intake benchmark: signed generic call-centre requests, each a new call id, on loopback.

Starts the daemon (`intake-gateway run`) on SQLite in a temporary directory, drives it from a
lean asyncio HTTP/1.1 keep-alive client, and reports requests/s answered 202 (each one
committed by the intake door before the answer), p50/p99 latency, and how long processing
took to turn all of them into registered tickets.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from bench.event_loop import new_event_loop

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
SECRET = "bench-secret"
TARGET_RPS, TARGET_P99_MS = 2000.0, 50.0
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def request_bytes(port: int, call_id: str) -> bytes:
    body = json.dumps({
        "call_id": call_id, "caller": "+7 495 123-45-67", "agent": "operator-7",
        "contact_email": "ivan@acme.example", "subject": "Calls drop after 10 seconds",
        "description": "Every outgoing call of our office drops after about ten seconds.",
        "declared_priority": "high", "duration_s": 130}).encode()
    timestamp = str(int(time.time()))
    signature = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body,
                         hashlib.sha256).hexdigest()
    head = (f"POST /hooks/callcenter HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"X-Timestamp: {timestamp}\r\nX-Signature: sha256={signature}\r\n\r\n")
    return head.encode() + body


async def connection(port: int, ids: list[str], latencies: list[float],
                     statuses: dict[int, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for call_id in ids:
            data = request_bytes(port, call_id)
            started = time.perf_counter()
            writer.write(data)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = int(status_line.split()[1])
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def load(port: int, total: int, connections: int, prefix: str = "bench"
               ) -> tuple[float, list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    ids = [f"{prefix}-{index}" for index in range(total)]
    started = time.perf_counter()
    await asyncio.gather(*(connection(port, ids[i::connections], latencies, statuses)
                           for i in range(connections)))
    return time.perf_counter() - started, latencies, statuses


def run_client(work: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(work)


def wait_listening(port: int, daemon: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise SystemExit("the daemon exited while starting")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the daemon did not start listening")


def process_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of PID and of its children (the processing worker), from /proc."""
    def cpu(task: int) -> float:
        fields = Path(f"/proc/{task}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return cpu(pid), sum(cpu(child) for child in children(pid))


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def count(database: Path, query: str) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute(query).fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1,
                        help="[intake] workers: processing processes beside the daemon")
    parser.add_argument("--no-wait", action="store_true",
                        help="do not wait for every input to become a ticket (quick runs)")
    parser.add_argument("--profile", metavar="FILE",
                        help="py-spy (raw collapsed stacks) on the daemon during the load")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="http-bench-") as tmp:
        state = Path(tmp)
        (state / "secret").write_text(SECRET, encoding="utf-8")
        port = free_port()
        config = state / "config.toml"
        config.write_text(
            f'[database]\nurl = "sqlite:///{state / "intake.db"}"\n\n'
            f'[intake]\nstate_dir = "{state}"\nworkers = {args.workers}\n\n'
            f'[http]\nlisten = "127.0.0.1:{port}"\n\n'
            f'[outgoing]\nmaildir = "{state / "outgoing"}"\n\n'
            f'[logging]\nlevel = "warning"\nformat = "json"\n\n'
            # One client address sends everything: the per-source limit would measure itself.
            f'[limits]\nhttp_requests_per_source_per_min = 100000000\n\n'
            f'[[webhooks]]\nname = "callcenter"\nprovider = "generic"\nsecret_file = "secret"\n',
            encoding="utf-8")
        daemon = subprocess.Popen([str(BIN / "intake-gateway"), "--config", str(config), "run"],
                                  stdout=subprocess.DEVNULL, stderr=None)
        try:
            wait_listening(port, daemon)
            run_client(load(port, args.warmup, 8, prefix="warmup"))
            profiler = (subprocess.Popen([str(BIN / "py-spy"), "record", "--pid", str(daemon.pid),
                                          "--subprocesses", "--format", "raw", "--output",
                                          args.profile], stdout=subprocess.DEVNULL)
                        if args.profile else None)
            started = time.perf_counter()
            client_cpu = sum(os.times()[:2])
            daemon_cpu = process_cpu(daemon.pid)
            elapsed, latencies, statuses = run_client(
                load(port, args.requests, args.connections))
            client_cpu = sum(os.times()[:2]) - client_cpu
            daemon_cpu = tuple(after - before for after, before in
                               zip(process_cpu(daemon.pid), daemon_cpu, strict=True))
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(30)
            database = state / "intake.db"
            stored = count(database, "SELECT count(*) FROM inputs WHERE idempotency_key "
                                     "LIKE 'phone:callcenter:bench-%'")
            total = args.warmup + args.requests
            # Processing runs behind intake; wait (bounded) until every input is a ticket.
            while not args.no_wait and count(database, "SELECT count(*) FROM tickets") < total:
                if time.perf_counter() - started > 300 or daemon.poll() is not None:
                    break
                time.sleep(0.05)
            registered_after = time.perf_counter() - started
            tickets = count(database, "SELECT count(*) FROM tickets")
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()

    latencies.sort()
    accepted = statuses.get(202, 0)
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    report = {
        "requests": args.requests, "connections": args.connections,
        "statuses": statuses, "stored_inputs": stored,
        "accepted_per_s": round(accepted / elapsed, 1),
        "p50_ms": round(p50, 2), "p99_ms": round(p99, 2),
        "tickets_registered": tickets,
        "registered_per_s": round(args.requests / registered_after, 1),
        "cpu_s_during_load": {"client": round(client_cpu, 1),
                              "daemon": round(daemon_cpu[0], 1),
                              "worker": round(daemon_cpu[1], 1)},
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(), "python": sys.version.split()[0],
    }
    print(json.dumps(report, indent=2))
    print(f"target: {TARGET_RPS:.0f} req/s accepted with p99 <= {TARGET_P99_MS:.0f} ms -> "
          f"{'met' if accepted / elapsed >= TARGET_RPS and p99 <= TARGET_P99_MS else 'NOT met'}")


if __name__ == "__main__":
    main()
