"""`[[reports]]`: last month's SLA report of each customer, mailed through the outbox on the
day and at the time each report names; the outbox's key makes each one go out once."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Engine, text
from sqlmodel import select

from gateway.config.report_settings import ReportSettings
from gateway.outbox.compose import safe_address, sender_parts
from gateway.outbox.table import enqueue
from gateway.sla.report import ReportQuery, build_report
from gateway.sla.report_format import headline, who
from gateway.sla.report_queries import day_number
from gateway.sla.report_render import MEDIA_TYPES, render
from gateway.store.db import read_transaction, transaction
from gateway.store.models import OutboxItem
from gateway.tickets.context import Context

log = structlog.get_logger("gateway.reports")


# A daemon that was down at the delivery time sends the report when it is back, within this
# long; started later in the month, it does not send last month's report out of the blue.
CATCH_UP = timedelta(days=7)


def due_period(report: ReportSettings, now: datetime, zone: str) -> tuple[date, date] | None:
    """Last month, once this month's delivery time (DAY at AT, local) has come and for
    CATCH_UP after; else None."""
    local = now.astimezone(ZoneInfo(zone))
    hour, minute = (int(part) for part in report.at.split(":"))
    due = local.replace(day=report.day, hour=hour, minute=minute, second=0, microsecond=0)
    if not due <= local < due + CATCH_UP:
        return None
    last = local.date().replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def deliver_due_reports(engine: Engine, context: Context, now: datetime) -> int:
    """Queue every report whose time has come and that was not queued before; how many."""
    queued = 0
    for report in context.settings.reports:
        period = due_period(report, now, context.policy.report_zone)
        if period is None:
            continue
        for customer in report.customers or _customers_with_requests(engine, *period):
            queued += _deliver(engine, context, report, customer, period, now)
    return queued


def _customers_with_requests(engine: Engine, first: date, last: date) -> list[str]:
    with read_transaction(engine) as session:
        return [str(c) for (c,) in session.connection().execute(text(
            "SELECT DISTINCT customer_id FROM tickets WHERE report_day BETWEEN :first AND :last "
            "AND customer_id IS NOT NULL ORDER BY customer_id"),
            {"first": day_number(first), "last": day_number(last)})]


def _deliver(engine: Engine, context: Context, report: ReportSettings, customer: str,
             period: tuple[date, date], now: datetime) -> int:
    first, last = period
    keys = {to: f"report:{report.name}:{customer}:{first:%Y-%m}:{to}"[:200] for to in report.to}
    with read_transaction(engine) as session:
        sent = set(session.exec(select(OutboxItem.dedup_key).where(
            OutboxItem.dedup_key.in_(list(keys.values()))  # type: ignore[attr-defined]
        )).all())
    if sent >= set(keys.values()):
        return 0
    built = build_report(engine, context.policy, ReportQuery(first, last, customer), now)
    attachment = render(built, report.format)
    sender = context.settings.outgoing.sender
    subject = f"SLA report {who(built.total)} {first:%Y-%m}: {headline(built.total)}"
    queued = 0
    with transaction(engine) as session:
        for to, key in keys.items():
            if key in sent:
                continue
            message = EmailMessage()
            message["From"] = sender
            message["To"] = to
            message["Subject"] = subject
            message["Date"] = format_datetime(now)
            message["Message-ID"] = make_msgid(
                domain=sender_parts(sender)[1].rpartition("@")[2] or "localhost")
            message["Auto-Submitted"] = "auto-generated"
            message.set_content(f"{subject}\n\nRequests received {first} to {last} "
                                f"({built.time_zone}); the whole report is attached.\n")
            maintype, subtype = MEDIA_TYPES[report.format].split(";")[0].split("/")
            message.add_attachment(attachment, maintype=maintype, subtype=subtype,
                                   filename=f"sla-{customer}-{first:%Y-%m}.{report.format}")
            if enqueue(session, {
                    "dedup_key": key, "ticket_id": None, "kind": "report",
                    "sender": safe_address(sender_parts(sender)[1]) or "", "recipient": to,
                    "message_id": str(message["Message-ID"]).strip("<>"),
                    "message": message.as_bytes(), "send_by": now, "next_attempt_at": now,
                    "created_at": now}):
                queued += 1
    log.info("report.queued", report=report.name, customer=customer, period=f"{first:%Y-%m}",
             recipients=queued)
    return queued
