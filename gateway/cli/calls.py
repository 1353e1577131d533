"""`intake-gateway calls list`: missed calls from unknown numbers, waiting for a call back."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any


def cmd_calls_list(args: argparse.Namespace, engine: Callable[[argparse.Namespace], Any]) -> int:
    from gateway.tickets.missed_calls import list_missed_calls

    calls = list_missed_calls(engine(args), limit=args.limit)
    if args.json:
        print(json.dumps(calls, ensure_ascii=False, indent=2))
        return 0
    for call in calls:
        print(f"{call['received_at']}  {call['caller'] or 'unknown':<16} {call['hook']:<12} "
              f"{call['call_id']}")
    return 0


def add_calls_commands(commands: Any, engine: Callable[[argparse.Namespace], Any]) -> None:
    calls = commands.add_parser("calls", help="missed calls from unknown numbers")
    calls_commands = calls.add_subparsers(dest="calls_command", required=True)
    listing = calls_commands.add_parser("list", help="newest first, for a call back")
    listing.set_defaults(handler=lambda args: cmd_calls_list(args, engine))
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--limit", type=int, default=500)
