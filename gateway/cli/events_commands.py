"""`intake-gateway events`: the event feed on a terminal or as JSON lines, and redelivery."""

from __future__ import annotations

import argparse
import json
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


def add_events_commands(commands: Any) -> argparse.ArgumentParser:
    """`events [--after ID] [--follow] [--json]`; the parser, for more subcommands."""
    events: argparse.ArgumentParser = commands.add_parser(
        "events", help="the event feed (tickets registered, changed, SLA, quarantine)")
    events.set_defaults(handler=cmd_events)
    events.add_argument("--after", type=int, default=0, help="only events with a higher id")
    events.add_argument("--follow", action="store_true", help="keep printing new events")
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    return events
