"""The `intake-gateway` command line: the daemon and the operator's tools."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.config.settings import LoadedSettings, load_settings
from gateway.store.existing import NoDatabase
from rules.config_errors import ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def _settings(args: argparse.Namespace) -> LoadedSettings:
    from gateway.daemon.logs import configure_logging, configure_process_logging

    loaded = load_settings(args.config)
    logging_settings = loaded.settings.logging
    if args.command == "run":
        configure_process_logging(logging_settings.level, logging_settings.format)
    else:
        # A command's answer is its stdout (scripts read `--json` and summaries from it); what
        # went wrong on the way (an input that failed again, say) is told on stderr.
        configure_logging("warning", logging_settings.format, sys.stderr)
    return loaded


def cmd_run(args: argparse.Namespace) -> int:
    # Settings (and logging) first: the app's imports then find logging configured.
    loaded = _settings(args)
    from gateway.daemon.event_loops import loop_factory
    from gateway.daemon.service import run_daemon
    from gateway.store.roles import InstanceRunning

    with asyncio.Runner(loop_factory=loop_factory(loaded.settings.intake.event_loop)) as runner:
        try:
            runner.run(run_daemon(loaded))
        except InstanceRunning as error:
            print(f"intake-gateway: {error}", file=sys.stderr)
            return EXIT_FAILURE
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    from gateway.cli.config_check import config_problems

    loaded, problems = config_problems(args.config)
    if problems:
        raise ConfigError(problems)
    assert loaded is not None
    from gateway.cli.mailbox_commands import warn_not_signed_in

    warn_not_signed_in(loaded.settings)
    print(f"{loaded.path or 'embedded defaults'}: OK")
    return EXIT_OK


def cmd_parse(args: argparse.Namespace) -> int:
    from parsers.email import parse_email

    try:
        raw = Path(args.file).read_bytes()
    except OSError as error:
        print(f"intake-gateway: {args.file}: {error.strerror}", file=sys.stderr)
        return EXIT_USAGE
    request = parse_email(raw)
    data = request.as_json()
    from gateway.cli.quarantine import parse_authentication
    data["authentication"] = parse_authentication(args.config, raw)
    if args.json:
        _print_json(data)
        return EXIT_OK
    sender = data["from"]
    print(f"From:     {sender['name'] or ''} <{sender['address']}>" if sender else "From:     -")
    print(f"Subject:  {data['subject']}")
    print(f"Kind:     {data['kind']}   declared priority: {data['declared_priority']}")
    print(f"Parts:    {len(data['attachments'])} attachment(s)")
    for defect in data["defects"]:
        print(f"Defect:   {defect}")
    print()
    print(data["reply_text"])
    return EXIT_OK


def cmd_ingest(args: argparse.Namespace) -> int:
    from gateway.cli.ingest import ingest_paths

    # Progress bars only for a person watching: not into a log, a pipe or a script's capture.
    watched = sys.stdout.isatty() and sys.stderr.isatty()
    summary = ingest_paths(_settings(args), [Path(p) for p in args.paths],
                           acknowledge=args.acknowledge, show_progress=watched)
    print(summary.describe())
    # A script importing mail learns from the exit status that something needs a look.
    return EXIT_OK if not summary.unreadable and not summary.quarantined else EXIT_FAILURE


def _engine(args: argparse.Namespace) -> Any:
    from gateway.store.existing import open_existing

    return open_existing(_settings(args).settings.database_url())


def cmd_quarantine_list(args: argparse.Namespace) -> int:
    from gateway.cli.quarantine import list_quarantine

    rows = list_quarantine(_engine(args))
    if args.json:
        _print_json(rows)
        return EXIT_OK
    for row in rows:
        print(f"{row['id']:>8}  {row['status']:<7} {row['channel']:<6} {row['received_at']}  "
              f"{row['error']}")
    return EXIT_OK


def cmd_quarantine_retry(args: argparse.Namespace) -> int:
    from gateway.cli.quarantine import retry

    if not args.all and args.id is None:
        print("intake-gateway: give an input ID or --all", file=sys.stderr)
        return EXIT_USAGE
    outcome = retry(_settings(args), None if args.all else [args.id])
    print(outcome)
    return EXIT_OK


def cmd_quarantine_release(args: argparse.Namespace) -> int:
    from gateway.cli.quarantine import release

    code, text = release(_settings(args), args.id)
    print(text, file=sys.stderr if code else sys.stdout)
    return code


def _instant(text: str, option: str) -> datetime | None:
    """An ISO 8601 instant with a zone (Z accepted), or None after telling the user why."""
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        print(f"intake-gateway: {option} needs an ISO 8601 instant with a zone, "
              "e.g. 2026-11-25T07:00:00Z", file=sys.stderr)
        return None
    return instant


def cmd_sla_due(args: argparse.Namespace) -> int:
    from gateway.clock import iso_utc
    from gateway.sla.deadlines import plan
    from gateway.sla.policy import load_policy_for

    policy = load_policy_for(load_settings(args.config).settings)
    received = _instant(args.received, "--received")
    if received is None:
        return EXIT_USAGE
    if args.tier.lower() not in policy.tiers:
        print(f"intake-gateway: unknown tier {args.tier!r}; the policy defines "
              f"{', '.join(policy.tiers)}", file=sys.stderr)
        return EXIT_USAGE
    due = plan(received, args.tier, args.priority, args.type, policy)
    answer = {"tier": args.tier.lower(), "priority": args.priority, "request_type": args.type,
              "received_at": iso_utc(due.received_at),
              "status": "pending_registration" if due.pending else "registered",
              "registered_at": iso_utc(due.registered_at),
              "reaction_due": iso_utc(due.reaction_due),
              "resolution_due": iso_utc(due.resolution_due)}
    if args.json:
        _print_json(answer)
        return EXIT_OK
    zone = policy.tier(args.tier).calendar.zone
    for key in ("registered_at", "reaction_due", "resolution_due"):
        local = datetime.fromisoformat(str(answer[key])).astimezone(zone)
        print(f"{key + ':':<16} {answer[key]}  ({local:%a %Y-%m-%d %H:%M %Z})")
    return EXIT_OK


def cmd_report_sla(args: argparse.Namespace) -> int:
    from gateway.clock import SystemClock
    from gateway.sla.policy import load_policy_for
    from gateway.sla.report import ReportQuery, build_report, period_of
    from gateway.sla.report_render import render
    from gateway.store.existing import open_existing

    now = SystemClock().now()
    try:
        start, end = period_of(args.start, args.end, args.month, now.date())
    except ValueError as error:
        print(f"intake-gateway: {error}", file=sys.stderr)
        return EXIT_USAGE
    loaded = _settings(args)
    policy = load_policy_for(loaded.settings)
    engine = open_existing(loaded.settings.database_url())
    report = build_report(engine, policy, ReportQuery(start, end, args.customer), now)
    data = render(report, args.format)
    if args.out:
        Path(args.out).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return EXIT_OK


def cmd_tickets_event(args: argparse.Namespace) -> int:
    from gateway.clock import SystemClock
    from gateway.daemon.context_files import build_context
    from gateway.daemon.one_round import deliver_now
    from gateway.store.existing import open_existing
    from gateway.tickets.lifecycle import (
        EventInvalid,
        EventRefused,
        TicketNotFound,
        apply_event,
        parse_event,
    )

    payload = {"type": args.type, "priority": args.priority, "reason": args.reason,
               "basis": args.basis, "customer_agreed": args.customer_agreed, "actor": args.by}
    try:
        event = parse_event({k: v for k, v in payload.items() if v is not None})
    except EventInvalid as error:
        print(f"intake-gateway: {error}", file=sys.stderr)
        return EXIT_USAGE
    loaded = _settings(args)
    engine = open_existing(loaded.settings.database_url())
    try:
        applied = apply_event(engine, build_context(loaded, SystemClock()), args.number, event)
    except TicketNotFound:
        print(f"intake-gateway: no ticket {args.number}", file=sys.stderr)
        return EXIT_FAILURE
    except EventRefused as error:
        print(f"intake-gateway: refused: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if applied.enqueued:
        deliver_now(loaded)
    ticket = applied.ticket
    if args.json:
        _print_json(ticket)
    else:
        print(f"{ticket['number']}: {ticket['status']}, {ticket['priority']}, "
              f"resolution due {ticket['resolution_due']}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="intake-gateway", description="Intake Gateway: support requests in, tickets out.")
    parser.add_argument("--config", help="TOML config file (default: $INTAKE_GATEWAY_CONFIG, "
                                         "else the embedded defaults)")
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str,
            parent: Any = commands) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = parent.add_parser(name, help=help_text)
        sub.set_defaults(handler=handler)
        return sub

    add("run", cmd_run, "run the daemon")
    add("check-config", cmd_check_config, "validate the configuration and exit")
    parse = add("parse", cmd_parse, "show what we read from one .eml, registering nothing")
    parse.add_argument("file")
    parse.add_argument("--json", action="store_true")
    ingest = add("ingest", cmd_ingest, "import .eml files, mbox files or maildirs")
    ingest.add_argument("paths", nargs="+")
    ingest.add_argument("--acknowledge", action="store_true",
                        help="acknowledge imported requests (a bulk import sends none)")

    tickets = commands.add_parser("tickets", help="list or show tickets")
    tickets_commands = tickets.add_subparsers(dest="tickets_command", required=True)
    from gateway.cli.ticket_commands import add_ticket_commands

    add_ticket_commands(tickets_commands)
    event = add("event", cmd_tickets_event, "resolved, closed, reopened, priority_changed, "
                "priority_proposed", tickets_commands)
    event.add_argument("number")
    event.add_argument("type", choices=["resolved", "closed", "reopened", "priority_changed",
                                        "priority_proposed", "waiting_for_customer",
                                        "waiting_ended"])
    event.add_argument("--priority", choices=["critical", "high", "medium", "low"])
    event.add_argument("--reason", help="why; the customer is told (priority changes)")
    event.add_argument("--basis", choices=["diagnosis", "customer_information",
                                           "declared_mismatch", "partial_restoration"])
    event.add_argument("--customer-agreed", action="store_true", default=None,
                       help="the customer agreed to lowering a critical or high priority")
    event.add_argument("--by", help="who did it (recorded in the history)")
    event.add_argument("--json", action="store_true")

    quarantine = commands.add_parser("quarantine", help="inputs that failed or are held")
    quarantine_commands = quarantine.add_subparsers(dest="quarantine_command", required=True)
    qlist = add("list", cmd_quarantine_list, "failed and held inputs", quarantine_commands)
    qlist.add_argument("--json", action="store_true")
    qretry = add("retry", cmd_quarantine_retry, "process again", quarantine_commands)
    qretry.add_argument("id", nargs="?", type=int)
    qretry.add_argument("--all", action="store_true")
    add("release", cmd_quarantine_release, "register a held input after a human looked",
        quarantine_commands).add_argument("id", type=int)

    from gateway.cli.events_commands import add_events_commands

    add_events_commands(commands)
    from gateway.cli.token_commands import add_token_commands

    add_token_commands(commands)
    from gateway.cli.mailbox_commands import add_mailbox_commands

    add_mailbox_commands(commands)
    from gateway.cli.rules_commands import add_rules_commands

    add_rules_commands(commands)
    from gateway.cli.calls import add_calls_commands

    add_calls_commands(commands, _engine)

    sla = commands.add_parser("sla", help="the SLA clock")
    sla_commands = sla.add_subparsers(dest="sla_command", required=True)
    due = add("due", cmd_sla_due, "when would a request be registered and due?", sla_commands)
    due.add_argument("--tier", required=True)
    due.add_argument("--priority", required=True, choices=["critical", "high", "medium", "low"])
    due.add_argument("--type", default="incident",
                     choices=["incident", "consultation", "administration", "feature_request"])
    due.add_argument("--received", required=True, help="ISO 8601 instant with a zone")
    due.add_argument("--json", action="store_true")

    report = commands.add_parser("report", help="reports")
    report_commands = report.add_subparsers(dest="report_command", required=True)
    sla_report = add("sla", cmd_report_sla, "share of requests within SLA", report_commands)
    sla_report.add_argument("--from", dest="start", help="YYYY-MM-DD")
    sla_report.add_argument("--to", dest="end", help="YYYY-MM-DD (included)")
    sla_report.add_argument("--month", help="YYYY-MM, instead of --from/--to (neither: the "
                            "previous month)")
    sla_report.add_argument("--customer")
    sla_report.add_argument("--format", choices=["table", "json", "csv", "html", "pdf"],
                            default="table")
    sla_report.add_argument("--out", help="write to this file instead of standard output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    except NoDatabase as error:
        print(f"intake-gateway: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except BrokenPipeError:
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
