"""`intake-gateway tickets list | show | attachment`: tickets and what was sent, for people."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.config.settings import LoadedSettings, load_settings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def loaded_settings(args: argparse.Namespace) -> LoadedSettings:
    """The settings, with warnings logged to stderr: a command's answer is its stdout."""
    from gateway.daemon.logs import configure_logging

    loaded = load_settings(args.config)
    configure_logging("warning", loaded.settings.logging.format, sys.stderr)
    return loaded


def open_engine(loaded: LoadedSettings, create: bool = False) -> Any:
    """The database of LOADED; unless CREATE, one that exists already (NoDatabase)."""
    from gateway.store.db import open_migrated
    from gateway.store.existing import open_existing

    url = loaded.settings.database_url()
    return open_migrated(url) if create else open_existing(url)


def display_zone(loaded: LoadedSettings, tz: str | None) -> ZoneInfo | None:
    """The zone times are shown in: --tz, else the policy's report zone (Moscow by default);
    None after telling the user an unknown --tz."""
    from gateway.sla.policy import load_policy_for

    try:
        return ZoneInfo(tz or load_policy_for(loaded.settings).report_zone)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"intake-gateway: --tz: unknown time zone {tz!r}", file=sys.stderr)
        return None


def cmd_list(args: argparse.Namespace) -> int:
    from gateway.cli.ticket_text import ticket_rows
    from gateway.tickets.view import list_tickets

    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            since = None
        if since is None or since.tzinfo is None:
            print("intake-gateway: --since needs an ISO 8601 instant with a zone, "
                  "e.g. 2026-11-25T07:00:00Z", file=sys.stderr)
            return EXIT_USAGE
    loaded = loaded_settings(args)
    zone = None if args.json else display_zone(loaded, args.tz)
    if zone is None and not args.json:
        return EXIT_USAGE
    tickets = list_tickets(open_engine(loaded), status=args.status, customer=args.customer,
                           since=since, limit=args.limit)
    if args.json:
        json.dump(tickets, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    assert zone is not None
    for line in ticket_rows(tickets, zone):
        print(line)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from gateway.cli.ticket_text import render_ticket
    from gateway.tickets.view import show_ticket

    loaded = loaded_settings(args)
    zone = display_zone(loaded, args.tz)
    if zone is None:
        return EXIT_USAGE
    ticket = show_ticket(open_engine(loaded), args.number, full=args.full)
    if ticket is None:
        print(f"intake-gateway: no ticket {args.number}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        json.dump(ticket, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    for line in render_ticket(ticket, zone):
        print(line)
    return EXIT_OK


def cmd_attachment(args: argparse.Namespace) -> int:
    from gateway.store.db import read_transaction
    from gateway.tickets.content import find_attachment

    with read_transaction(open_engine(loaded_settings(args))) as session:
        found = find_attachment(session, args.number, args.id)
    if found is None:
        print(f"intake-gateway: no attachment {args.id} in ticket {args.number}",
              file=sys.stderr)
        return EXIT_FAILURE
    if args.out == "-":
        sys.stdout.buffer.write(found.data)
        return EXIT_OK
    try:
        Path(args.out).write_bytes(found.data)
    except OSError as error:
        print(f"intake-gateway: {args.out}: {error.strerror}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"{args.out}: {found.filename or '(no name)'}, {found.content_type}, "
          f"{found.size} bytes")
    return EXIT_OK


def add_ticket_commands(tickets_commands: Any) -> None:
    """`tickets list`, `show` and `attachment` under the `tickets` command."""
    from gateway.store.models import TicketStatus

    listing = tickets_commands.add_parser("list", help="newest first")
    listing.set_defaults(handler=cmd_list)
    listing.add_argument("--json", action="store_true")
    # A status nobody has would list nothing and look like an empty database.
    listing.add_argument("--status", choices=[str(s) for s in TicketStatus])
    listing.add_argument("--customer")
    listing.add_argument("--since", help="ISO 8601 instant with a zone")
    listing.add_argument("--limit", type=int)
    listing.add_argument("--tz", help="time zone of the times shown (default: the policy's "
                                      "report zone, Europe/Moscow)")
    show = tickets_commands.add_parser("show", help="one ticket")
    show.set_defaults(handler=cmd_show)
    show.add_argument("number")
    show.add_argument("--json", action="store_true")
    show.add_argument("--full", action="store_true",
                      help="each message's whole original text, quotes and signature included")
    show.add_argument("--tz", help="time zone of the times shown (default: the policy's "
                                   "report zone, Europe/Moscow)")
    attachment = tickets_commands.add_parser("attachment", help="save an attachment's bytes")
    attachment.set_defaults(handler=cmd_attachment)
    attachment.add_argument("number")
    attachment.add_argument("id", help="the attachment's id, as `tickets show` lists it")
    attachment.add_argument("--out", required=True, help="file to write ('-': stdout)")
