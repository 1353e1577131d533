"""`intake-gateway events`: the event feed on a terminal or as JSON lines, and redelivery."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any
from zoneinfo import ZoneInfo

from gateway.cli.ticket_commands import loaded_settings, open_engine
from gateway.cli.ticket_text import local_time

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
FOLLOW_POLL_S = 1.0


def _line(event: dict[str, Any], zone: ZoneInfo) -> str:
    details = ", ".join(f"{k}: {v}" for k, v in event["details"].items() if v is not None)
    return (f"{event['id']:>7}  {local_time(event['at'], zone)}  {event['type']:<23} "
            f"{event['ticket_number'] or '-':<11} {details}").rstrip()


def cmd_events(args: argparse.Namespace) -> int:
    from gateway.sla.policy import load_policy_for
    from gateway.store.feed import read_events

    loaded = loaded_settings(args)
    zone = ZoneInfo(load_policy_for(loaded.settings).report_zone)
    engine = open_engine(loaded)
    after = args.after
    try:
        while True:
            events = read_events(engine, after, 500)
            for event in events:
                print(json.dumps(event, ensure_ascii=False) if args.json else _line(event, zone),
                      flush=True)
                after = event["id"]
            if not args.follow:
                return EXIT_OK
            if not events:
                time.sleep(FOLLOW_POLL_S)
    except KeyboardInterrupt:
        return EXIT_OK


def cmd_redeliver(args: argparse.Namespace) -> int:
    from gateway.clock import SystemClock
    from gateway.outbox.webhooks import redeliver

    if args.dead == (args.id is not None):
        print("intake-gateway: give an event ID or --dead", file=sys.stderr)
        return EXIT_USAGE
    count = redeliver(open_engine(loaded_settings(args)), SystemClock().now(), args.id,
                      args.dead)
    if count == 0:
        what = "no dead deliveries" if args.dead else f"no deliveries of event {args.id}"
        print(f"intake-gateway: {what} (a delivery being sent right now is left to finish)",
              file=sys.stderr)
        return EXIT_FAILURE if not args.dead else EXIT_OK
    print(f"{count} deliver{'y' if count == 1 else 'ies'} queued again; the daemon sends "
          "them within a second")
    return EXIT_OK


def cmd_deliveries(args: argparse.Namespace) -> int:
    from gateway.outbox.webhooks import list_deliveries

    rows = list_deliveries(open_engine(loaded_settings(args)), "dead" if args.dead else None)
    if args.json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    for row in rows:
        print(f"{row['id']:>7}  event {row['event_id']:<7} {row['subscription']:<16} "
              f"{row['ticket_number'] or '-':<11} {row['status']:<9} "
              f"attempts {row['attempts']:<3} {row['last_error'] or ''}".rstrip())
    return EXIT_OK


def add_events_commands(commands: Any) -> argparse.ArgumentParser:
    """`events [--after ID] [--follow] [--json]`; the parser, for more subcommands."""
    events: argparse.ArgumentParser = commands.add_parser(
        "events", help="the event feed (tickets registered, changed, SLA, quarantine)")
    events.set_defaults(handler=cmd_events)
    events.add_argument("--after", type=int, default=0, help="only events with a higher id")
    events.add_argument("--follow", action="store_true", help="keep printing new events")
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    sub = events.add_subparsers(dest="events_command", required=False)
    again = sub.add_parser("redeliver", help="send an event's webhooks again, or every dead one")
    again.set_defaults(handler=cmd_redeliver)
    again.add_argument("id", nargs="?", type=int)
    again.add_argument("--dead", action="store_true", help="every dead letter")
    listing = sub.add_parser("deliveries", help="webhook deliveries, newest first")
    listing.set_defaults(handler=cmd_deliveries)
    listing.add_argument("--dead", action="store_true", help="only the dead letters")
    listing.add_argument("--json", action="store_true")
    return events
