"""One alert to the duty engineer when a mailbox or the relay can no longer log in.

"Once" is kept by the outbox's unique dedup key, which every instance sharing the database
sees. A mailbox's alert goes out through the outbox (the relay, or the local maildir), which
needs no token of that mailbox. When the relay itself cannot log in, the alert cannot go
through it: it is written to the local maildir at once (recorded in the outbox as sent, so no
instance writes it twice) and the log says so.
"""

from __future__ import annotations

import socket
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from gateway.outbox.compose import header_safe, safe_address, sender_parts
from gateway.outbox.mailer import MaildirDelivery
from gateway.outbox.oauth_failures import LoginTarget, TokenFailure
from gateway.outbox.table import enqueue
from gateway.store.db import transaction
from gateway.store.models import SENT

log = structlog.get_logger("gateway.alerts")


def alert_text(target: LoginTarget, failure: TokenFailure) -> tuple[str, str]:
    """Subject and body of the alert about TARGET."""
    what = ("the outgoing relay" if target.kind == "outgoing"
            else f"the mailbox {target.name}")
    subject = f"[intake-gateway] {what} cannot log in (OAuth 2.0)"
    action = (f"A person with access to the account signs in again, on that host as the "
              f"service user: {target.login_command}"
              if failure.refused else
              "The token server did not answer; the gateway keeps trying with backoff.")
    consequence = ("Acknowledgements and notices wait in the outbox until it can send again."
                   if target.kind == "outgoing" else
                   "New mail in this mailbox is not imported until then; nothing is lost: "
                   "it is imported once the login works again. Other mailboxes go on.")
    body = (f"The gateway on {socket.gethostname()} could not get an access token for "
            f"{what}.\n\n"
            f"Reason: {header_safe(failure.reason, 500)}\n\n{action}\n{consequence}\n\n"
            "This alert is sent once for this failure; /readyz and the metric "
            "intake_oauth_login_failing show the state meanwhile.\n")
    return subject, body


def compose_alert(sender: str, recipient: str, target: LoginTarget, failure: TokenFailure,
                  now: datetime) -> EmailMessage:
    subject, body = alert_text(target, failure)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=sender_parts(sender)[1].rpartition("@")[2]
                                       or "intake-gateway")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    return message


def send_duty_alert(engine: Engine, *, duty_address: str, sender: str, target: LoginTarget,
                    failure: TokenFailure, now: datetime,
                    maildir: MaildirDelivery | None) -> bool:
    """Queue (or, with MAILDIR, write) the alert unless this episode was alerted already.
    True when this call sent it. Blocking (database)."""
    recipient = safe_address(duty_address)
    if not recipient:
        log.error("oauth.alert_not_sent", reason="no escalation.duty_address in the policy",
                  **{target.kind: target.name}, error=failure.reason)
        return False
    message = compose_alert(sender, recipient, target, failure, now)
    data = message.as_bytes()
    values = {"dedup_key": f"oauth-failing:{failure.episode}"[:200], "ticket_id": None,
              "kind": "duty_alert", "sender": safe_address(sender_parts(sender)[1]) or "",
              "recipient": recipient, "message_id": str(message["Message-ID"]),
              "message": data, "next_attempt_at": now, "send_by": now, "created_at": now}
    if maildir is not None:
        values.update(status=SENT, sent_at=now)
    try:
        with transaction(engine) as session:
            added = enqueue(session, values)
    except IntegrityError:  # another instance queued it between our look and our insert
        added = False
    if not added:
        return False
    if maildir is not None:
        maildir.write(data)
        log.error("oauth.alert_to_maildir", duty=recipient, maildir=str(maildir.root),
                  why="the relay itself cannot log in", **{target.kind: target.name})
    else:
        log.info("oauth.alert_queued", duty=recipient, **{target.kind: target.name})
    return True

