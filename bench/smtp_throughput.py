"""End-to-end SMTP benchmark of the Intake Gateway: throughput, ack latency and correctness."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.mail_factory import SUPPORT_ADDRESS, BenchMessage, MessageFactory
from bench.processes import (
    BenchError,
    Daemon,
    Profiler,
    cpu_seconds,
    free_port,
    write_config,
)
from bench.relay_sink import Sink, wait_for_acks
from bench.smtp_client import Sent, Submitter
from bench.smtp_results import check_correctness, render

# --------------------------------------------------------------------------------------------
# Phases and checks
# --------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of VALUES."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def generate(factory: MessageFactory, count: int, tag: str) -> tuple[list[BenchMessage], float]:
    began = time.monotonic()
    messages = [factory.make(i, tag) for i in range(count)]
    return messages, time.monotonic() - began


def size_stats(messages: list[BenchMessage]) -> dict[str, float]:
    sizes = [len(m.data) for m in messages]
    return {"count": len(sizes), "mean_kb": statistics.fmean(sizes) / 1024,
            "median_kb": statistics.median(sizes) / 1024,
            "p95_kb": percentile(sizes, 95) / 1024, "max_kb": max(sizes) / 1024,
            "total_mb": sum(sizes) / 1024 / 1024}


def throughput_phase(args: argparse.Namespace, daemon: Daemon, sink: Sink,
                     messages: list[BenchMessage], stop: threading.Event,
                     profile: Path | None) -> tuple[dict[str, Any], list[Sent]]:
    profiler = Profiler(daemon.proc.pid, profile, args.profile_rate) if profile else None
    submitter = Submitter(daemon.port, messages, SUPPORT_ADDRESS, args.clients, args.per_session,
                          stop)
    ids = [m.message_id for m in messages]
    cpu_before = {"daemon": cpu_seconds(daemon.proc.pid), "sink": cpu_seconds(sink.proc.pid),
                  "bench": cpu_seconds()}
    try:
        progress = threading.Thread(target=_progress, args=(sink, ids, submitter, stop, args),
                                    daemon=True)
        progress.start()
        begun = submitter.run()
        accepted_ids = [m.message_id for m, r in zip(messages, submitter.results, strict=True)
                        if r.ok]
        submitted_at = max((r.accepted for r in submitter.results if r.ok), default=begun)
        backlog = len(accepted_ids) - sink.received(accepted_ids)
        wait_for_acks(sink, accepted_ids, daemon, args.stall_timeout, args.deadline,
                      "throughput", args.json)
        cpu = {"daemon": cpu_seconds(daemon.proc.pid), "sink": cpu_seconds(sink.proc.pid),
               "bench": cpu_seconds()}
    finally:
        if profiler:
            profiler.stop()
    arrivals = sorted(a.arrived for i in accepted_ids if (a := sink.first_ack(i)) is not None)
    done = arrivals[-1] if arrivals else begun
    n = len(accepted_ids)
    lo_i, hi_i = n // 10, (n * 9) // 10
    lo, hi = (arrivals[lo_i], arrivals[hi_i]) if n >= 20 else (begun, done)
    steady = hi_i - lo_i
    summary = {
        "messages": len(messages), "accepted": n, "failed": len(messages) - n,
        "clients": args.clients, "per_session": args.per_session,
        "cpu_seconds": {k: cpu[k] - cpu_before[k] for k in cpu},
        "daemon_cpu_ms_per_message": 1000 * (cpu["daemon"] - cpu_before["daemon"]) / max(1, n),
        "smtp_connections": submitter.connections, "client_errors": dict(submitter.errors),
        "accept_seconds": submitted_at - begun,
        "accept_rate": n / max(1e-9, submitted_at - begun),
        "end_to_end_seconds": done - begun,
        "end_to_end_rate": n / max(1e-9, done - begun),
        "steady_ack_rate": steady / max(1e-9, hi - lo) if n >= 20 and hi_i > lo_i else None,
        "ack_backlog_when_accepted": backlog,
        "drain_seconds": done - submitted_at,
        "smtp_answer_ms_p50": 1000 * percentile(
            [r.accepted - r.started for r in submitter.results if r.ok], 50),
        "smtp_answer_ms_p99": 1000 * percentile(
            [r.accepted - r.started for r in submitter.results if r.ok], 99),
    }
    return summary, submitter.results


def _progress(sink: Sink, ids: list[str], submitter: Submitter, stop: threading.Event,
              args: argparse.Namespace) -> None:
    if args.json:
        return
    began = time.monotonic()
    while not stop.wait(5):
        done = sum(1 for r in submitter.results if r.ok)
        if done >= len(ids):
            return
        print(f"  throughput: {time.monotonic() - began:5.0f} s  accepted {done}/{len(ids)}, "
              f"acknowledged {sink.received(ids)}", file=sys.stderr)


def latency_phase(args: argparse.Namespace, daemon: Daemon, sink: Sink,
                  messages: list[BenchMessage], stop: threading.Event,
                  ) -> tuple[dict[str, Any], list[Sent]]:
    start_at = time.monotonic() + 0.5
    interval = 1.0 / args.rate
    # Open loop: each message has a due time; a slow answer does not delay the next send.
    sessions = max(2, min(8, int(args.rate // 10) + 2))
    submitter = Submitter(daemon.port, messages, SUPPORT_ADDRESS, sessions, args.per_session,
                          stop, schedule=lambda i: start_at + i * interval)
    submitter.run()
    ok = [(m, r) for m, r in zip(messages, submitter.results, strict=True) if r.ok]
    wait_for_acks(sink, [m.message_id for m, _ in ok], daemon, args.stall_timeout,
                  args.deadline, "latency", args.json)
    from_answer, from_start = [], []
    for message, result in ok:
        ack = sink.first_ack(message.message_id)
        assert ack is not None
        from_answer.append(1000 * (ack.arrived - result.accepted))
        from_start.append(1000 * (ack.arrived - result.started))
    lag = [1000 * (r.started - r.scheduled) for _, r in ok]
    summary: dict[str, Any] = {
        "messages": len(messages), "accepted": len(ok), "rate": args.rate,
        "client_sessions": sessions, "client_errors": dict(submitter.errors),
        "send_lag_ms_max": max(lag, default=0.0),
        "smtp_answer_ms_p50": percentile([1000 * (r.accepted - r.started) for _, r in ok], 50),
        "smtp_answer_ms_p99": percentile([1000 * (r.accepted - r.started) for _, r in ok], 99),
    }
    for name, values in (("from_data_250", from_answer), ("from_mail_from", from_start)):
        summary[name] = {f"p{q}": percentile(values, q) for q in (50, 95, 99)}
        summary[name]["max"] = max(values, default=float("nan"))
        summary[name]["mean"] = statistics.fmean(values) if values else float("nan")
    return summary, submitter.results


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="SMTP in, acknowledgement out: end-to-end throughput and latency of the "
                    "Intake Gateway daemon (SQLite), with a correctness check.")
    parser.add_argument("--messages", type=int, default=10_000,
                        help="throughput phase: messages to submit (default 10000)")
    parser.add_argument("--latency-messages", type=int, default=1_000,
                        help="latency phase: messages at --rate (default 1000; 0 skips)")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="latency phase: messages per second (default 20)")
    parser.add_argument("--clients", type=int, default=16,
                        help="throughput phase: concurrent SMTP sessions (default 16, "
                             "an MTA delivering in parallel)")
    parser.add_argument("--per-session", type=int, default=20,
                        help="messages per SMTP session before QUIT and reconnect (default 20)")
    parser.add_argument("--workers", type=int, default=None,
                        help="[intake] workers: processes that parse and register (default: 1)")
    parser.add_argument("--event-loop", choices=("uvloop", "asyncio"), default=None,
                        help="[intake] event_loop (default: the daemon's, uvloop)")
    parser.add_argument("--worker-niceness", type=int, default=None,
                        help="[intake] worker_niceness (default: the daemon's, 10)")
    parser.add_argument("--seed", type=int, default=20261125, help="message generator seed")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 500 messages + 100 at the rate (under a minute)")
    parser.add_argument("--relay-connections", type=int, default=None,
                        help="[outgoing] connections for the daemon (default: the daemon's)")
    parser.add_argument("--stall-timeout", type=float, default=60.0,
                        help="give up when no acknowledgement arrives for this long (s)")
    parser.add_argument("--deadline", type=float, default=1800.0,
                        help="give up on a phase's acknowledgements after this long (s)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="wait this long after the last acknowledgement for duplicates (s)")
    parser.add_argument("--no-cli-check", action="store_true",
                        help="skip the `tickets list --json` cross-check")
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy record the daemon during the throughput phase into this "
                             "file (.svg flamegraph, .json speedscope, else raw collapsed stacks)")
    parser.add_argument("--profile-rate", type=int, default=50, help="py-spy samples per second")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (database, logs, config)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--verify-senders", action="store_true",
                        help="DKIM-sign the mail and verify SPF/DKIM/DMARC against a DNS "
                             "server on loopback ([trust] mode = report); else [trust] is off")
    args = parser.parse_args(argv)
    if args.quick:
        if "--messages" not in (argv or sys.argv):
            args.messages = 500
        if "--latency-messages" not in (argv or sys.argv):
            args.latency_messages = 100
    if args.messages < 1 or args.clients < 1 or args.per_session < 1 or args.rate <= 0:
        parser.error("--messages, --clients, --per-session and --rate must be positive")
    return args


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "kernel": platform.release(),
            "load_before": os.getloadavg()}


def _log(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    stop = threading.Event()
    directory = Path(tempfile.mkdtemp(prefix="intake-bench-"))
    sink: Sink | None = None
    daemon: Daemon | None = None
    result: dict[str, Any] = {"machine": machine(), "directory": str(directory),
                              "verify_senders": args.verify_senders}
    resources = contextlib.ExitStack()
    try:
        factory = MessageFactory(args.seed)
        _log(args, f"bench: generating {args.messages} + {args.latency_messages} messages ...")
        bulk, gen_s = generate(factory, args.messages, "tput")
        paced, _ = generate(factory, args.latency_messages, "lat")
        dns_port = None
        if args.verify_senders:
            from bench.sender_dns import serve, signed, zones_for
            from tests.dns_zone import DkimKey

            key = DkimKey.generate()
            bulk, paced = signed(bulk, key), signed(paced, key)
            dns_port = resources.enter_context(serve(zones_for(key)))
        result["message_sizes"] = size_stats(bulk + paced)
        result["generation_seconds"] = gen_s
        sink = Sink(directory / "sink.log")
        smtp_port = free_port()
        from bench.sender_dns import trust_section

        config = write_config(directory, smtp_port, sink.port, args.relay_connections,
                              args.workers, args.worker_niceness, args.event_loop,
                              trust_section(dns_port))
        daemon = Daemon(config, smtp_port, directory / "daemon.log")
        result["daemon_start_seconds"] = daemon.wait_ready(120)
        _log(args, f"bench: daemon pid {daemon.proc.pid} on 127.0.0.1:{smtp_port}, relay sink on "
                   f"127.0.0.1:{sink.port}, work dir {directory}")

        _log(args, f"bench: throughput phase: {len(bulk)} messages over {args.clients} sessions")
        result["throughput"], bulk_sent = throughput_phase(args, daemon, sink, bulk, stop,
                                                           args.profile)
        phases = [list(zip(bulk, bulk_sent, strict=True))]
        time.sleep(args.settle)
        if paced:
            _log(args, f"bench: latency phase: {len(paced)} messages at {args.rate:g}/s")
            result["latency"], paced_sent = latency_phase(args, daemon, sink, paced, stop)
            phases.append(list(zip(paced, paced_sent, strict=True)))
            time.sleep(args.settle)
        result["daemon_exit"] = daemon.stop()
        _log(args, "bench: daemon stopped; checking tickets and acknowledgements ...")
        result["correctness"] = check_correctness(directory, config, sink, phases,
                                                  not args.no_cli_check)
        return result
    finally:
        stop.set()
        if daemon is not None:
            daemon.stop()
        resources.close()
        if sink is not None:
            sink.stop()
        if args.keep:
            _log(args, f"bench: kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    try:
        result = run(args)
    except KeyboardInterrupt:
        print("bench: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(result, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(render(result))
    return 0 if result["correctness"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
