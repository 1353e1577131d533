"""`intake-gateway mailbox login NAME`: sign a mailbox (or the relay) in to its OAuth provider."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from gateway.cli.ticket_commands import loaded_settings, open_engine

if TYPE_CHECKING:
    from gateway.config.settings import Settings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def cmd_login(args: argparse.Namespace) -> int:
    from gateway.outbox.oauth_failures import LoginTarget
    from gateway.outbox.oauth_providers import TokenRefused, TokenUnavailable
    from gateway.outbox.oauth_tokens import TokenSource

    settings = loaded_settings(args).settings
    mailbox = next((m for m in settings.mailboxes if m.name == args.name), None)
    if mailbox is not None:
        login: Any = mailbox
        target = LoginTarget("mailbox", mailbox.name, "imap")
    elif args.name == "outgoing" and settings.outgoing.host:
        login = settings.outgoing
        target = LoginTarget("outgoing", "outgoing", "smtp")
    else:
        names = ", ".join([m.name for m in settings.mailboxes] + ["outgoing"])
        print(f"intake-gateway: no mailbox named {args.name!r} (known: {names})",
              file=sys.stderr)
        return EXIT_USAGE
    if not login.uses_oauth:
        print(f"intake-gateway: {args.name} uses auth = 'password': there is nothing to log "
              "in to (set auth = 'xoauth2' and a provider)", file=sys.stderr)
        return EXIT_USAGE
    source = TokenSource(login, target, settings.intake.state_dir,
                         open_engine(loaded_settings(args)))

    def show(url: str, code: str, message: str) -> None:
        if code:
            print(f"To sign {args.name} in, open {url}\nand enter the code {code}", flush=True)
        else:
            print(f"To sign {args.name} in, open {url}", flush=True)
        if message and (not code or code not in message):
            print(message, flush=True)
        print("Waiting for the sign-in to complete ...", flush=True)

    try:
        token = source.login(show)
    except (TokenRefused, TokenUnavailable) as error:
        print(f"intake-gateway: login failed: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if login.grant == "client_credentials":
        print(f"{args.name}: app-only access works (client credentials); no refresh token "
              "to keep, the daemon asks for access tokens itself")
        return EXIT_OK
    minutes = max(0, round((token.expires_at - time.time()) / 60))
    print(f"{args.name}: signed in; the refresh token is saved in {source.file.path} "
          f"(readable by this user only). The access token is good for {minutes} min and is "
          "renewed by the daemon, which picks the new login up at its next attempt.")
    return EXIT_OK


def logins_not_signed_in(settings: Settings) -> list[str]:
    """Mailboxes (and "outgoing") that sign in by a person but have no saved token yet."""
    from gateway.store.token_files import TokenFile

    logins: list[tuple[str, str, Any]] = [("mailbox", m.name, m) for m in settings.mailboxes]
    if settings.outgoing.host:
        logins.append(("outgoing", "outgoing", settings.outgoing))
    return [name for kind, name, login in logins
            if login.uses_oauth and login.grant != "client_credentials"
            and not TokenFile(settings.intake.state_dir, kind, name).path.exists()]


def warn_not_signed_in(settings: Settings) -> None:
    """check-config: a valid configuration, but these will not log in yet."""
    for name in logins_not_signed_in(settings):
        print(f"warning: {name} is not signed in: run `intake-gateway mailbox login {name}`",
              file=sys.stderr)


def add_mailbox_commands(commands: Any) -> None:
    mailbox = commands.add_parser("mailbox", help="IMAP mailboxes and the relay: OAuth 2.0")
    sub = mailbox.add_subparsers(dest="mailbox_command", required=True)
    login = sub.add_parser("login", help="device-code sign-in (prints a URL and a code, "
                                         "waits), or a check of client credentials")
    login.set_defaults(handler=cmd_login)
    login.add_argument("name", help="a [[mailboxes]] name, or 'outgoing' for the relay")
