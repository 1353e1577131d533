"""`intake-gateway tokens create | list | revoke`: scoped API tokens for forms, bots, readers."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gateway.cli.ticket_commands import loaded_settings, open_engine

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def cmd_create(args: argparse.Namespace) -> int:
    import secrets

    from gateway.clock import SystemClock
    from gateway.http.tokens import TokenExists, create_token

    name = args.name or f"{args.scope}-{secrets.token_hex(4)}"
    try:
        token = create_token(open_engine(loaded_settings(args), create=True), name, args.scope,
                             SystemClock().now())
    except TokenExists:
        print(f"intake-gateway: a token named {name!r} exists already", file=sys.stderr)
        return EXIT_FAILURE
    # The token goes to stdout alone (scripts capture it); the rest is said on stderr.
    print(token)
    print(f"token {name!r}, scope {args.scope}: shown this once, only its hash is kept",
          file=sys.stderr)
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from gateway.clock import iso_utc
    from gateway.http.tokens import list_tokens

    rows = [{"name": t.name, "scope": t.scope, "created_at": iso_utc(t.created_at),
             "revoked_at": iso_utc(t.revoked_at)}
            for t in list_tokens(open_engine(loaded_settings(args)))]
    if args.json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        print(f"{row['name']:<24} {row['scope']:<7} created {row['created_at']}  {state}")
    return EXIT_OK


def cmd_revoke(args: argparse.Namespace) -> int:
    from gateway.clock import SystemClock
    from gateway.http.tokens import revoke_token

    if not revoke_token(open_engine(loaded_settings(args)), args.name, SystemClock().now()):
        print(f"intake-gateway: no active token named {args.name!r}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"token {args.name!r} revoked")
    return EXIT_OK


def add_token_commands(commands: Any) -> None:
    tokens = commands.add_parser("tokens", help="scoped API tokens")
    sub = tokens.add_subparsers(dest="tokens_command", required=True)
    create = sub.add_parser("create", help="a new token, printed once")
    create.set_defaults(handler=cmd_create)
    create.add_argument("--scope", required=True, choices=["intake", "read", "admin"],
                        help="intake: submit requests only; read: tickets and events; "
                             "admin: everything")
    create.add_argument("--name", help="a name to list and revoke it by (default: generated)")
    listing = sub.add_parser("list", help="tokens, their scopes, revoked or not")
    listing.set_defaults(handler=cmd_list)
    listing.add_argument("--json", action="store_true")
    revoke = sub.add_parser("revoke", help="the token stops working at once")
    revoke.set_defaults(handler=cmd_revoke)
    revoke.add_argument("name")
