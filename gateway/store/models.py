"""Database tables: inputs as received, tickets, their messages and history, the outbox."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class InputStatus(StrEnum):
    """An input's way: received -> processed | failed | held."""

    RECEIVED = "received"
    PROCESSED = "processed"
    FAILED = "failed"
    HELD = "held"


class TicketStatus(StrEnum):
    """A ticket's way. A request that arrives outside its tier's intake window waits as
    pending_registration until the window opens; then it is registered."""

    PENDING_REGISTRATION = "pending_registration"
    REGISTERED = "registered"
    RESOLVED = "resolved"
    CLOSED = "closed"
    # Merged into an older ticket of the same conversation: its number still finds it.
    MERGED = "merged"


class OutboxStatus(StrEnum):
    """An outgoing message's way: pending -> sending (leased) -> sent | failed."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


# The members by their short names, as the modules that store and compare them use them (a
# StrEnum member is the string it stands for, in the database and in JSON alike).
RECEIVED, PROCESSED, FAILED, HELD = InputStatus
PENDING_REGISTRATION, REGISTERED, RESOLVED, CLOSED, MERGED = TicketStatus
OPEN_STATUSES = (PENDING_REGISTRATION, REGISTERED)
PENDING, SENDING, SENT = OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.SENT
# Ticket.sla_outcome bits: what is decided of the SLA so far, kept by whoever decides it, so
# the SLA report counts small integers from one index instead of comparing instants.
REACTION_MET, REACTION_LATE, RESOLUTION_MET, RESOLUTION_LATE, NO_ACKNOWLEDGEMENT = 1, 2, 4, 8, 16
REACTION_DECIDED = REACTION_MET | REACTION_LATE | NO_ACKNOWLEDGEMENT
RESOLUTION_DECIDED = RESOLUTION_MET | RESOLUTION_LATE


class Input(SQLModel, table=True):
    """Everything that reached a channel, stored raw before the channel said yes."""

    __tablename__ = "inputs"

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    idempotency_key: str = Field(max_length=600, unique=True)
    source: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    # The bytes are in InputBody: this row is updated as processing goes on, they never are.
    size: int
    received_at: datetime
    status: str = Field(default=RECEIVED, max_length=16, index=True)
    outcome: str | None = Field(default=None, sa_column=Column(Text))
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    attempts: int = 0
    processed_at: datetime | None = None
    ticket_id: int | None = Field(default=None, foreign_key="tickets.id", index=True)
    # SPF, DKIM and DMARC of an e-mail as JSON (gateway/intake/sender_auth.py), found once.
    authentication: str | None = Field(default=None, sa_column=Column(Text))
    # Until when, and by which instance, it is claimed for processing (tickets/claims.py).
    claimed_until: datetime | None = None
    claimed_by: str | None = Field(default=None, max_length=200)


class InputBody(SQLModel, table=True):
    """The raw bytes of an input, exactly as received, written once."""

    __tablename__ = "input_bodies"

    input_id: int = Field(foreign_key="inputs.id", primary_key=True)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Customer(SQLModel, table=True):
    """A mirror of the customers file, kept for joins and reports."""

    __tablename__ = "customers"

    id: str = Field(primary_key=True, max_length=64)
    name: str
    tier: str = Field(max_length=16)
    language: str = Field(default="ru", max_length=8)
    emails: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    domains: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    phones: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    engineer: str | None = None
    manager: str | None = None


class Ticket(SQLModel, table=True):
    __tablename__ = "tickets"
    # The SLA report reads only this index (no sort, no table rows); it also serves
    # look-ups by customer.
    __table_args__ = (Index("ix_tickets_sla_report", "customer_id", "tier", "priority",
                            "request_type", "report_day", "sla_outcome"),)

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=32, unique=True)
    channel: str = Field(max_length=16)
    status: str = Field(max_length=32, index=True)
    customer_id: str | None = Field(default=None, max_length=64)
    tier: str | None = Field(default=None, max_length=16)
    request_type: str = Field(max_length=32)
    priority: str = Field(max_length=16)
    declared_priority: str | None = Field(default=None, max_length=16)
    # A lower priority we asked the customer to agree to (their reply can accept it).
    proposed_priority: str | None = Field(default=None, max_length=16)
    subject: str = Field(default="", sa_column=Column(Text, nullable=False))
    requester_name: str | None = None
    requester_email: str | None = Field(default=None, index=True)
    requester_phone: str | None = None
    received_at: datetime = Field(index=True)
    registered_at: datetime | None = None
    reaction_due: datetime | None = None
    resolution_due: datetime | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    # When the acknowledgement counts as at risk (half the reaction window), and when the
    # duty address was alerted about it.
    ack_at_risk: datetime | None = None
    ack_alerted_at: datetime | None = None
    # Escalation thresholds notified so far, and when the next one is reached.
    escalation_level: int = 0
    escalation_due: datetime | None = Field(default=None, index=True)
    # The day of receipt in the report's time zone, as YYYYMMDD; and the sla_outcome bits.
    report_day: int | None = None
    sla_outcome: int = 0
    reasons: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    notes: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    # The closed ticket a reply was registered as a follow-up of (intake.reply_to_closed = "new").
    follows_up: str | None = Field(default=None, max_length=32)
    # The older ticket this one was merged into (status merged), when a message joined both.
    merged_into: str | None = Field(default=None, max_length=32)
    # Set by rules: tags, the customer's dedicated engineer, the personal manager copied.
    tags: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))
    assignee: str | None = Field(default=None, sa_column=Column(Text))
    manager_cc: str | None = Field(default=None, sa_column=Column(Text))


class TicketMessage(SQLModel, table=True):
    """One message of a ticket, in (from the customer) or out (from us)."""

    __tablename__ = "ticket_messages"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    input_id: int | None = Field(default=None, foreign_key="inputs.id")
    direction: str = Field(max_length=3)
    kind: str = Field(max_length=32)
    message_id: str | None = Field(default=None, max_length=998, index=True)
    received_at: datetime
    body: str = Field(default="", sa_column=Column(Text, nullable=False))


class ThreadId(SQLModel, table=True):
    """A Message-ID seen in a ticket's thread: its messages' own ids and every id they cite.

    Cited ids of messages we never saw ("ghosts") are kept too, so two replies to the same
    missing message still land in one ticket.
    """

    __tablename__ = "thread_ids"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    message_id: str = Field(max_length=998, index=True)


class Undeliverable(SQLModel, table=True):
    """An address our mail bounced from: it gets no more automatic messages."""

    __tablename__ = "undeliverable"

    address: str = Field(primary_key=True, max_length=320)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    ticket_id: int | None = Field(default=None, foreign_key="tickets.id")
    at: datetime
class TicketEvent(SQLModel, table=True):
    """One entry of a ticket's history: a lifecycle event, a priority change, a notice."""

    __tablename__ = "ticket_events"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    at: datetime
    kind: str = Field(max_length=32)
    actor: str | None = None
    details: str = Field(default="{}", sa_column=Column(Text, nullable=False))


class OutboxItem(SQLModel, table=True):
    """A message to send, written in the same commit as the change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("dedup_key", name="uq_outbox_dedup_key"),
                      # The per-sender rate limit counts a recipient's recent messages.
                      Index("ix_outbox_recipient_created", "recipient", "created_at"))

    id: int | None = Field(default=None, primary_key=True)
    dedup_key: str = Field(max_length=200)
    ticket_id: int | None = Field(default=None, foreign_key="tickets.id", index=True)
    kind: str = Field(max_length=32)
    sender: str
    recipient: str
    message_id: str = Field(max_length=998)
    message: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = Field(default=PENDING, max_length=16, index=True)
    attempts: int = 0
    next_attempt_at: datetime = Field(index=True)
    # The deadline this message serves (an acknowledgement's reaction_due): due items are
    # sent earliest deadline first.
    send_by: datetime | None = None
    lease_until: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime
    sent_at: datetime | None = None


class Counter(SQLModel, table=True):
    """Named gapless counters, incremented inside the transaction that uses them."""

    __tablename__ = "counters"

    name: str = Field(primary_key=True, max_length=32)
    value: int = 0


class MailboxCheckpoint(SQLModel, table=True):
    """How far an IMAP mailbox has been imported: its UIDVALIDITY and the last UID taken."""

    __tablename__ = "mailbox_checkpoints"

    name: str = Field(primary_key=True, max_length=128)
    folder: str = Field(default="INBOX", sa_column=Column(Text, nullable=False))
    # IMAP UIDs and UIDVALIDITY are unsigned 32-bit: beyond PostgreSQL's INTEGER.
    uidvalidity: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_uid: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime


class FeedEvent(SQLModel, table=True):
    """One entry of the event feed, written in the same commit as the change it reports."""

    __tablename__ = "feed_events"

    id: int | None = Field(default=None, primary_key=True)
    type: str = Field(max_length=40)
    at: datetime
    ticket_number: str | None = Field(default=None, max_length=32, index=True)
    input_id: int | None = None
    # {"ticket": the ticket's JSON at that moment or null, "details": what changed}.
    data: str = Field(default="{}", sa_column=Column(Text, nullable=False))


# Webhook delivery statuses: pending -> sending (leased) -> delivered | dead.
DELIVERED, DEAD = "delivered", "dead"


class Delivery(SQLModel, table=True):
    """One feed event owed to one subscription, until the subscriber says 2xx (or dead)."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("subscription", "event_id", name="uq_delivery"),
                      Index("ix_deliveries_due", "status", "next_attempt_at"))

    id: int | None = Field(default=None, primary_key=True)
    subscription: str = Field(max_length=128)
    event_id: int = Field(foreign_key="feed_events.id")
    # Events of one ticket go out in order: a later one waits while an earlier one is owed.
    ticket_number: str | None = Field(default=None, max_length=32)
    status: str = Field(default=PENDING, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime
    lease_until: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime
    delivered_at: datetime | None = None


class Subscription(SQLModel, table=True):
    """A mirror of `[[subscriptions]]`: the feed's writers plan each event's deliveries from
    it in their own commit, so no event is missed whatever order commits come in."""

    __tablename__ = "subscriptions"

    name: str = Field(primary_key=True, max_length=128)
    # ",ticket.registered,sla.breached," (matched with LIKE); NULL: every event.
    events: str | None = Field(default=None, sa_column=Column(Text))
    active: bool = True


class ApiToken(SQLModel, table=True):
    """A scoped API token: only its SHA-256 is kept; the token itself was shown once."""

    __tablename__ = "api_tokens"

    name: str = Field(primary_key=True, max_length=128)
    scope: str = Field(max_length=16)
    token_sha256: str = Field(max_length=64, unique=True)
    created_at: datetime
    revoked_at: datetime | None = None
