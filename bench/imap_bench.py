"""IMAP benchmark: APPEND-to-acknowledgement latency, backlog drain rate and peak memory.

(a) latency: the daemon idles on a private Dovecot; messages are APPENDed at a steady rate
    and each one's acknowledgement is timed at the relay sink (p50/p99);
(b) backlog: N realistic messages are in the mailbox before the daemon starts; time from the
    daemon's start until every acknowledgement reached the sink;
(c) memory: peak RSS (VmHWM) of the daemon and of its worker processes during (b).

Usage: .venv/bin/python -m bench.imap_bench [--backlog 10000] [--latency 1000 --rate 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.mail_factory import MessageFactory
from bench.processes import BenchError, Daemon, free_port, write_config
from bench.relay_sink import Sink, wait_for_acks
from bench.smtp_throughput import percentile
from tests.dovecot import Dovecot, running_dovecot

BACKLOG_TARGET = 400.0  # messages/s, from the issue
P99_TARGET_S = 1.5
RSS_TARGET_MB = 200.0


def peak_rss_mb(pid: int) -> dict[int, float]:
    """VmHWM of PID and of each of its children (the worker processes), in MB."""
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    peaks: dict[int, float] = {}
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[one] = int(line.split()[1]) / 1024
        except OSError:
            continue
    return peaks


class RssWatch:
    """Samples the peak RSS of the daemon and its children every 0.2 s."""

    def __init__(self, pid: int) -> None:
        self.pid, self._stop = pid, threading.Event()
        self.peaks: dict[int, float] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        for one, mb in peak_rss_mb(self.pid).items():
            self.peaks[one] = max(self.peaks.get(one, 0.0), mb)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def stop(self) -> tuple[float, float]:
        """(the daemon's own peak, the sum of the peaks of it and its workers)."""
        self._sample()
        self._stop.set()
        self._thread.join()
        return self.peaks.get(self.pid, 0.0), sum(self.peaks.values())

    def by_role(self) -> dict[str, list[float]]:
        """The peaks of the daemon and of its workers, in MB (a pool replaced mid-run adds
        workers)."""
        kinds: dict[str, list[float]] = {}
        for one, mb in self.peaks.items():
            kinds.setdefault("daemon" if one == self.pid else "worker", []).append(round(mb, 1))
        return kinds


def mailbox_config(dovecot: Dovecot) -> str:
    return (f'\n[[mailboxes]]\nname = "support"\nhost = "127.0.0.1"\nport = {dovecot.port}\n'
            f'security = "none"\nusername = "support"\npassword = "{dovecot.users["support"]}"\n'
            'folder = "INBOX"\nafter_import = "seen"\nidle = true\npoll_interval_s = 30\n')


def start_daemon(directory: Path, dovecot: Dovecot, sink: Sink,
                 workers: int | None = None) -> Daemon:
    smtp_port = free_port()
    config = write_config(directory, smtp_port, sink.port, None, workers)
    with config.open("a", encoding="utf-8") as out:
        out.write(mailbox_config(dovecot))
    daemon = Daemon(config, smtp_port, directory / "daemon.log")
    daemon.wait_ready(60)
    return daemon


def backlog_phase(count: int, directory: Path, dovecot: Dovecot, sink: Sink,
                  factory: MessageFactory, workers: int | None = None) -> dict[str, Any]:
    messages = [factory.make(i, "backlog") for i in range(count)]
    began = time.monotonic()
    with dovecot.client() as client:
        for message in messages:
            client.append("INBOX", message.data)
    append_s = time.monotonic() - began
    print(f"  backlog: {count} messages appended in {append_s:.1f} s", file=sys.stderr)
    started = time.monotonic()
    daemon = start_daemon(directory, dovecot, sink, workers)
    watch = RssWatch(daemon.proc.pid)
    try:
        wait_for_acks(sink, [m.message_id for m in messages], daemon, stall_timeout=60,
                      deadline_s=1800, label="backlog", quiet=False)
        elapsed = time.monotonic() - started
    finally:
        own, peak = watch.stop()
        daemon.stop()
    return {"messages": count, "seconds": round(elapsed, 2),
            "messages_per_s": round(count / elapsed, 1), "peak_rss_mb": round(peak, 1),
            "daemon_peak_rss_mb": round(own, 1), "peak_rss_by_process_mb": watch.by_role(),
            "megabytes": round(sum(len(m.data) for m in messages) / 2**20, 1)}


def latency_phase(count: int, rate: float, directory: Path, dovecot: Dovecot, sink: Sink,
                  factory: MessageFactory, workers: int | None = None) -> dict[str, Any]:
    messages = [factory.make(i, "latency") for i in range(count)]
    daemon = start_daemon(directory, dovecot, sink, workers)
    appended: dict[str, float] = {}
    try:
        time.sleep(2)  # the mailbox worker connects and enters IDLE
        with dovecot.client() as client:
            start = time.monotonic()
            for n, message in enumerate(messages):
                due = start + n / rate
                if (pause := due - time.monotonic()) > 0:
                    time.sleep(pause)
                appended[message.message_id] = time.monotonic()
                client.append("INBOX", message.data)
        wait_for_acks(sink, list(appended), daemon, stall_timeout=60, deadline_s=600,
                      label="latency", quiet=False)
    finally:
        daemon.stop()
    latencies = []
    for message_id, at in appended.items():
        ack = sink.first_ack(message_id)
        if ack is None:
            raise BenchError(f"no acknowledgement for {message_id}")
        latencies.append(ack.arrived - at)
    return {"messages": count, "rate_per_s": rate,
            "p50_s": round(percentile(latencies, 50), 3),
            "p99_s": round(percentile(latencies, 99), 3),
            "max_s": round(max(latencies), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--latency", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=None,
                        help="[intake] workers (default: the daemon's default)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--keep", type=Path, help="work in this (new) directory and keep it: "
                        "database and daemon logs for a post-mortem")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"machine": {"cpus": len(__import__("os").sched_getaffinity(0)),
                                          "python": platform.python_version()}}
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True)
            tmp = str(args.keep)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="intake-imap-bench-"))
        sink = Sink(Path(tmp) / "sink.log")
        try:
            factory = MessageFactory(seed=11)
            if args.backlog:
                with running_dovecot() as dovecot:
                    directory = Path(tmp) / "backlog"
                    directory.mkdir()
                    result["backlog"] = backlog_phase(args.backlog, directory, dovecot, sink,
                                                      factory, args.workers)
            if args.latency:
                with running_dovecot() as dovecot:
                    directory = Path(tmp) / "latency"
                    directory.mkdir()
                    result["latency"] = latency_phase(args.latency, args.rate, directory,
                                                      dovecot, sink, factory, args.workers)
        finally:
            sink.stop()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        if "backlog" in result:
            b = result["backlog"]
            print(f"backlog: {b['messages']} messages ({b['megabytes']} MB) drained in "
                  f"{b['seconds']} s = {b['messages_per_s']} msg/s (target {BACKLOG_TARGET:.0f});"
                  f" peak RSS {b['peak_rss_mb']} MB with workers, "
                  f"{b['daemon_peak_rss_mb']} MB the daemon (target {RSS_TARGET_MB:.0f}); "
                  f"by process {b['peak_rss_by_process_mb']}")
        if "latency" in result:
            la = result["latency"]
            print(f"latency: {la['messages']} messages at {la['rate_per_s']}/s: "
                  f"p50 {la['p50_s']} s, p99 {la['p99_s']} s, max {la['max_s']} s "
                  f"(target p99 {P99_TARGET_S} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        sys.exit(1)
