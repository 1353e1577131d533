"""The SLA report as a text table or CSV, and the wording the other formats share."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.sla.report import ReportRow, SlaReport
from gateway.sla.report_counts import share_text

_CSV_COLUMNS = ("customer", "customer_name", "tier", "priority", "request_type", "requests",
                "within", "breached", "within_sla_pct", "reaction_met", "reaction_missed",
                "reaction_withheld", "reaction_met_pct", "resolution_met",
                "resolution_missed", "resolution_met_pct", "open_breached", "target_pct",
                "meets_target")


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def verdict(met: bool | None) -> str:
    return {None: "-", True: "met", False: "NOT MET"}[met]


def local_time(report: SlaReport, instant: datetime) -> str:
    """INSTANT in the report's time zone, as a manager reads it."""
    return instant.astimezone(ZoneInfo(report.time_zone)).strftime("%Y-%m-%d %H:%M")


def duration(seconds: int | None) -> str:
    """`2 h 05 min`, `3 d 4 h`, `45 s`; `-` for none."""
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min" if minutes else f"{secs} s"


def who(row: ReportRow) -> str:
    """A customer's name with its id, as the report shows it."""
    if row.customer is None:
        return "(unknown)"
    return f"{row.customer_name} ({row.customer})" if row.customer_name else row.customer


def headline(row: ReportRow) -> str:
    """`89.96% (2249 of 2500) within SLA, target 90%: NOT MET`."""
    if not row.decided:
        return f"nothing decided yet ({row.requests} received), target {row.target_pct:g}%"
    return (f"{share_text(row.within, row.decided)} ({row.within} of {row.decided}) within "
            f"SLA, target {row.target_pct:g}%: {verdict(row.meets_target)}")


def _cells(row: ReportRow) -> list[str]:
    return [who(row), row.tier or "-", row.priority, row.request_type, str(row.requests),
            share_text(row.within, row.decided), pct(row.reaction_met_pct),
            pct(row.resolution_met_pct), str(row.open_breached), f"{row.target_pct:g}%",
            verdict(row.meets_target)]


def _columns(header: list[str], body: list[list[str]], numeric: set[int]) -> list[str]:
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(c) for c in body)]


def as_table(report: SlaReport) -> str:
    query = report.query
    title = (f"SLA report {query.start} .. {query.end}"
             + (f", customer {who(report.total)}" if query.customer else "")
             + f" (times in {report.time_zone})")
    lines = [title, "", f"Overall: {headline(report.total)}"]
    lines += [f"  {who(c)}: {headline(c)}" for c in report.customers]
    p = report.percentiles
    lines += ["", f"Reaction p50 {duration(p.reaction_p50_s)}, p90 {duration(p.reaction_p90_s)}; "
              f"resolution p50 {duration(p.resolution_p50_s)}, "
              f"p90 {duration(p.resolution_p90_s)}; waited for customers "
              f"{duration(report.paused_s)}", ""]
    header = ["customer", "tier", "priority", "type", "requests", "within SLA", "reaction met",
              "resolution met", "open breached", "target", "verdict"]
    body = [_cells(r) for r in report.rows]
    total = report.total
    body.append(["total", "", "", "", str(total.requests), share_text(total.within,
                                                                     total.decided),
                 pct(total.reaction_met_pct), pct(total.resolution_met_pct),
                 str(total.open_breached), f"{total.target_pct:g}%", verdict(total.meets_target)])
    lines += _columns(header, body, set(range(4, 10)))
    if report.trend:
        lines += ["", "Trend:"] + [f"  {t.start} .. {t.end}: {share_text(t.within, t.decided)} "
                                   f"({t.within} of {t.decided}) {verdict(t.meets_target)}"
                                   for t in report.trend]
    if report.breaches:
        lines += ["", "Breached" + (f" (the first {len(report.breaches)} entries)"
                                    if report.breaches_cut else "") + ":"]
        lines += _columns(["number", "customer", "priority", "deadline", "due", "late by"],
                          [[b.number, b.customer or "-", b.priority, b.deadline,
                            local_time(report, b.due),
                            "withheld" if b.late_by_s is None else duration(b.late_by_s)
                            + (" (open)" if b.open else "")] for b in report.breaches], set())
    return "\n".join(lines) + "\n"


def as_csv(report: SlaReport) -> str:
    """One line per group and a last `total` line with the overall figures."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_CSV_COLUMNS)
    for row in report.rows:
        data = row.as_json()
        writer.writerow(["" if data[n] is None else data[n] for n in _CSV_COLUMNS])
    data = report.total.as_json() | {"customer": "total"}
    writer.writerow(["" if data[n] is None else data[n] for n in _CSV_COLUMNS])
    return out.getvalue()
