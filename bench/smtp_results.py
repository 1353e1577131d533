"""What an SMTP run shows: the correctness checks after it and the report it prints."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.mail_factory import BenchMessage
from bench.processes import (
    VENV_BIN,
)
from bench.relay_sink import Sink
from bench.smtp_client import Sent

END_TO_END_TARGET = 400.0  # messages/s, from the issue
P99_TARGET_MS = 200.0




def check_correctness(directory: Path, config: Path, sink: Sink,
                      phases: list[list[tuple[BenchMessage, Sent]]],
                      cli_check: bool) -> dict[str, Any]:
    """Tickets vs messages (SQLite and the CLI), exactly one acknowledgement each."""
    sent = [(m, r) for phase in phases for m, r in phase]
    accepted = {m.message_id: m for m, r in sent if r.ok}
    problems: list[str] = []
    db = sqlite3.connect(f"file:{directory / 'intake.db'}?mode=ro", uri=True)
    try:
        tickets = db.execute("SELECT count(*) FROM tickets").fetchone()[0]
        registered = Counter(row[0] for row in db.execute(
            "SELECT message_id FROM ticket_messages WHERE direction = 'in' AND kind = 'request'"))
        inputs = dict(db.execute("SELECT status, count(*) FROM inputs GROUP BY status").fetchall())
        outbox = dict(db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
        input_errors = [row[0] for row in db.execute(
            "SELECT last_error FROM inputs WHERE status != 'processed' LIMIT 5")]
    finally:
        db.close()
    if tickets != len(accepted):
        problems.append(f"{tickets} tickets for {len(accepted)} accepted messages")
    missing_ticket = [i for i in accepted if registered.get(i, 0) == 0]
    double_ticket = [i for i in accepted if registered.get(i, 0) > 1]
    foreign = [i for i in registered if i not in accepted]
    if missing_ticket:
        problems.append(f"{len(missing_ticket)} messages without a ticket, e.g. "
                        f"{missing_ticket[:3]}")
    if double_ticket:
        problems.append(f"{len(double_ticket)} messages with several tickets, e.g. "
                        f"{double_ticket[:3]}")
    if foreign:
        problems.append(f"{len(foreign)} tickets for messages we did not send: {foreign[:3]}")
    for status, count in inputs.items():
        if status != "processed":
            problems.append(f"{count} inputs in status {status!r}: {input_errors[:2]}")
    with sink._lock:  # a final, consistent snapshot
        acks = {k: list(v) for k, v in sink.acks.items()}
        unmatched, total_acks = sink.unmatched, sink.count
    no_ack = [i for i in accepted if i not in acks]
    many_acks = {i: len(acks[i]) for i in accepted if len(acks.get(i, [])) > 1}
    wrong_rcpt = [i for i, m in accepted.items()
                  if i in acks and any(a.recipient.lower() != m.sender.lower() for a in acks[i])]
    stray = [i for i in acks if i not in accepted]
    if no_ack:
        problems.append(f"{len(no_ack)} messages without an acknowledgement, e.g. {no_ack[:3]}")
    if many_acks:
        problems.append(f"{len(many_acks)} messages acknowledged more than once, e.g. "
                        f"{list(many_acks.items())[:3]}")
    if wrong_rcpt:
        problems.append(f"{len(wrong_rcpt)} acknowledgements to the wrong address: "
                        f"{wrong_rcpt[:3]}")
    if stray or unmatched:
        problems.append(f"{len(stray)} acknowledgements answering unknown ids, {unmatched} "
                        "without In-Reply-To")
    cli: dict[str, Any] = {"checked": False}
    if cli_check:
        began = time.monotonic()
        try:
            out = subprocess.run(
                [str(VENV_BIN / "intake-gateway"), "--config", str(config), "tickets", "list",
                 "--json"], capture_output=True, timeout=300, check=True, cwd=directory)
            listed = json.loads(out.stdout)
            cli = {"checked": True, "tickets": len(listed),
                   "seconds": round(time.monotonic() - began, 2)}
            if len(listed) != len(accepted):
                problems.append(f"`tickets list --json` shows {len(listed)} tickets for "
                                f"{len(accepted)} accepted messages")
        except (subprocess.SubprocessError, json.JSONDecodeError, OSError) as error:
            problems.append(f"`tickets list --json` failed: {error}")
    return {"messages_sent": len(sent), "messages_accepted": len(accepted), "tickets": tickets,
            "acknowledgements": total_acks, "inputs_by_status": inputs,
            "outbox_by_status": outbox, "cli": cli, "problems": problems, "ok": not problems}



def render(result: dict[str, Any]) -> str:
    m, s = result["machine"], result["message_sizes"]
    lines = [
        "",
        "Intake Gateway SMTP benchmark",
        f"  machine      {m['cpus']} CPU ({m['cpu']}), Python {m['python']}, "
        f"SQLite {m['sqlite']}, load before {m['load_before'][0]:.2f}",
        f"  messages     {s['count']} generated in {result['generation_seconds']:.1f} s: "
        f"mean {s['mean_kb']:.1f} KB, median {s['median_kb']:.1f} KB, p95 {s['p95_kb']:.1f} KB, "
        f"max {s['max_kb']:.0f} KB, {s['total_mb']:.0f} MB in all",
    ]
    t = result.get("throughput")
    if t:
        steady = f"{t['steady_ack_rate']:.0f}/s" if t["steady_ack_rate"] else "-"
        verdict = "PASS" if t["end_to_end_rate"] >= END_TO_END_TARGET else "FAIL"
        lines += [
            f"Throughput ({t['accepted']}/{t['messages']} accepted, {t['clients']} client "
            f"sessions, {t['per_session']} messages per session)",
            f"  accept side  {t['accept_rate']:8.1f} msg/s  ({t['accept_seconds']:.1f} s to the "
            f"last DATA 250; SMTP answer p50 {t['smtp_answer_ms_p50']:.0f} ms, "
            f"p99 {t['smtp_answer_ms_p99']:.0f} ms)",
            f"  end to end   {t['end_to_end_rate']:8.1f} msg/s  ({t['end_to_end_seconds']:.1f} s "
            f"to the last acknowledgement; target >= {END_TO_END_TARGET:.0f}: {verdict})",
            f"  steady acks  {steady:>8} (10th..90th percentile of arrivals); backlog "
            f"{t['ack_backlog_when_accepted']} unacknowledged when submission ended, drained in "
            f"{t['drain_seconds']:.1f} s",
        ]
        c = t["cpu_seconds"]
        wall = t["end_to_end_seconds"]
        lines.append(
            f"  CPU          daemon {c['daemon']:.1f} s ({100 * c['daemon'] / wall:.0f}% of one "
            f"core, {t['daemon_cpu_ms_per_message']:.1f} ms/message), sink {c['sink']:.1f} s, "
            f"load generator {c['bench']:.1f} s")
        if t["client_errors"]:
            lines.append(f"  client errors {t['client_errors']}")
    lat = result.get("latency")
    if lat:
        a, b = lat["from_data_250"], lat["from_mail_from"]
        verdict = "PASS" if a["p99"] <= P99_TARGET_MS else "FAIL"
        lines += [
            f"Latency ({lat['accepted']} messages at {lat['rate']:g}/s, open loop; "
            f"send lag max {lat['send_lag_ms_max']:.0f} ms)",
            f"  DATA 250 -> ack at sink   p50 {a['p50']:7.1f}  p95 {a['p95']:7.1f}  "
            f"p99 {a['p99']:7.1f}  max {a['max']:7.1f} ms  (target p99 <= "
            f"{P99_TARGET_MS:.0f}: {verdict})",
            f"  MAIL FROM -> ack at sink  p50 {b['p50']:7.1f}  p95 {b['p95']:7.1f}  "
            f"p99 {b['p99']:7.1f}  max {b['max']:7.1f} ms",
            f"  SMTP answer (MAIL FROM -> DATA 250) p50 {lat['smtp_answer_ms_p50']:.1f} ms, "
            f"p99 {lat['smtp_answer_ms_p99']:.1f} ms",
        ]
    c = result.get("correctness")
    if c:
        cli = c["cli"]
        lines += [
            f"Correctness: {'OK' if c['ok'] else 'MISMATCH'}",
            f"  {c['messages_accepted']} accepted messages, {c['tickets']} tickets, "
            f"{c['acknowledgements']} acknowledgements at the sink"
            + (f", `tickets list --json`: {cli['tickets']} ({cli['seconds']} s)"
               if cli.get("checked") else ""),
            f"  inputs {c['inputs_by_status']}, outbox {c['outbox_by_status']}",
            *(f"  ! {problem}" for problem in c["problems"]),
        ]
    return "\n".join(lines)


