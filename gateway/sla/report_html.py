"""The SLA report as one self-contained HTML page: headline, daily chart, tables (no scripts,
no external resources; the PDF is made from the same page)."""

from __future__ import annotations

from datetime import date
from html import escape

from gateway.sla.report import DayShare, ReportRow, SlaReport
from gateway.sla.report_counts import share_text
from gateway.sla.report_format import duration, local_time, pct, verdict, who

# Presentation attributes rather than page CSS: the PDF's SVG renderer reads only these.
_AXIS = 'class="axis" font-size="11" fill="#555"'


def chart(days: list[DayShare], target_pct: float) -> str:
    """An inline SVG chart of the daily share within SLA on a time axis: every day of the
    period has its place, a day without decided requests leaves a gap in the line."""
    width, height, left, bottom, top, right = 760, 260, 48, 36, 16, 16
    plot_w, plot_h = width - left - right, height - top - bottom
    first = days[0].day if days else date.today()
    span = max(1, (days[-1].day - first).days) if days else 1

    def x(day: date) -> float:
        return left + (plot_w * (day - first).days / span if len(days) > 1 else plot_w / 2)

    def y(share: float) -> float:
        return top + plot_h * (1 - share / 100)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" id="daily-chart" '
             f'data-days="{len(days)}" aria-labelledby="chart-title">'
             '<title id="chart-title">Daily share of requests within SLA</title>']
    for share in (0, 25, 50, 75, 100):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(share):.1f}" '
                     f'y2="{y(share):.1f}" class="grid" stroke="#e4e4e4"/><text x="{left - 6}" '
                     f'y="{y(share) + 4:.1f}" {_AXIS} text-anchor="end">{share}%</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(target_pct):.1f}" '
                 f'y2="{y(target_pct):.1f}" class="target" stroke="#c0392b" '
                 f'stroke-dasharray="6 4"/><text x="{width - right}" '
                 f'y="{y(target_pct) - 4:.1f}" {_AXIS} text-anchor="end">'
                 f'target {target_pct:g}%</text>')
    segment: list[str] = []
    segments = []
    for day in days:
        if day.share_pct is None:
            segments.append(segment)
            segment = []
        else:
            segment.append(f"{x(day.day):.1f},{y(day.share_pct):.1f}")
    segments.append(segment)
    for points in segments:
        if len(points) > 1:
            parts.append(f'<polyline points="{" ".join(points)}" class="share" '
                         'fill="none" stroke="#2471a3" stroke-width="2"/>')
    for day in days:
        if day.share_pct is not None:
            below = " below" if day.share_pct < target_pct else ""
            parts.append(
                f'<circle cx="{x(day.day):.1f}" cy="{y(day.share_pct):.1f}" r="3.5" '
                f'class="point{below}" fill="{"#c0392b" if below else "#2471a3"}" '
                f'data-day="{day.day}"><title>{day.day}: '
                f'{pct(day.share_pct)} ({day.within} within, {day.breached} breached)'
                "</title></circle>")
    if all(d.share_pct is None for d in days):
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" {_AXIS} '
                     'text-anchor="middle">no decided requests in this period</text>')
    for index, day in enumerate(days):
        # A tick for every day, a label on Mondays (and the first and last day).
        parts.append(f'<line x1="{x(day.day):.1f}" x2="{x(day.day):.1f}" '
                     f'y1="{top + plot_h}" y2="{top + plot_h + 4}" class="tick" stroke="#999" '
                     f'data-day="{day.day}"/>')
        ends = index in (0, len(days) - 1)
        near_end = min(index, len(days) - 1 - index) < 3
        if ends or (day.day.weekday() == 0 and not near_end):
            parts.append(f'<text x="{x(day.day):.1f}" y="{height - 12}" {_AXIS} '
                         f'text-anchor="middle">{day.day:%d.%m}</text>')
    parts.append("</svg>")
    return "".join(parts)


_STYLE = """
body { font: 14px/1.4 "DejaVu Sans", system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 4px; }
p.meta { color: #555; margin: 0 0 16px; }
.headline { font-size: 18px; padding: 10px 14px; border-left: 6px solid #2471a3; }
.headline.miss { border-color: #c0392b; background: #fdecea; }
.headline.met { border-color: #1e8449; background: #eafaf1; }
.grid { stroke: #e4e4e4; } .target { stroke: #c0392b; stroke-dasharray: 6 4; }
.tick { stroke: #999; } .axis { font-size: 11px; fill: #555; }
.share { fill: none; stroke: #2471a3; stroke-width: 2; }
.point { fill: #2471a3; } .point.below { fill: #c0392b; }
table { border-collapse: collapse; margin-top: 8px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.miss td { background: #fdecea; } tr.total td { font-weight: 600; }
"""


def _table(caption: str, header: list[str], body: list[list[str]], numeric: set[int],
           classes: list[str] | None = None, table_id: str = "") -> str:
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in header)
    rows = []
    for index, cells in enumerate(body):
        css = (classes or [])[index] if classes and index < len(classes) else ""
        rows.append(f'<tr class="{css}">' + "".join(
            f'<td class="{"n" if i in numeric else ""}">{escape(c)}</td>'
            for i, c in enumerate(cells)) + "</tr>")
    return (f'<table id="{table_id}"><caption>{escape(caption)}</caption><thead><tr>{head}'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _headline(row: ReportRow, element_id: str) -> str:
    css = {None: "", True: "met", False: "miss"}[row.meets_target]
    if not row.decided:
        return (f'<p class="headline" id="{element_id}">No request of this period is decided '
                f"yet ({row.requests} received); target {row.target_pct:g}%.</p>")
    return (f'<p class="headline {css}" id="{element_id}"><strong>'
            f"{escape(share_text(row.within, row.decided))}</strong> of requests within SLA "
            f"({row.within} of {row.decided} decided; {row.requests} received), target "
            f"{row.target_pct:g}%: <strong>{verdict(row.meets_target)}</strong></p>")


def as_html(report: SlaReport) -> str:
    """One page, no external resources: inline CSS, inline SVG chart, the tables."""
    query, total = report.query, report.total
    title = f"SLA report {query.start} – {query.end}"
    if query.customer:
        title += f" — {who(total)}"
    customers = _table("Per customer", ["Customer", "Within SLA", "Within", "Decided",
                                        "Target", "Verdict"],
                       [[who(c), share_text(c.within, c.decided), str(c.within),
                         str(c.decided), f"{c.target_pct:g}%", verdict(c.meets_target)]
                        for c in report.customers], {1, 2, 3, 4},
                       ["miss" if c.meets_target is False else "" for c in report.customers],
                       "customers")
    groups = _table(
        "Reaction and resolution by tier, priority and type",
        ["Customer", "Tier", "Priority", "Type", "Requests", "Within SLA", "Reaction met",
         "Withheld acks", "Resolution met", "Open, breached", "Target", "Verdict"],
        [[who(r), r.tier or "-", r.priority, r.request_type, str(r.requests),
          share_text(r.within, r.decided), pct(r.reaction_met_pct), str(r.reaction_withheld),
          pct(r.resolution_met_pct), str(r.open_breached), f"{r.target_pct:g}%",
          verdict(r.meets_target)] for r in report.rows]
        + [["Total", "", "", "", str(total.requests), share_text(total.within, total.decided),
            pct(total.reaction_met_pct), str(total.reaction_withheld),
            pct(total.resolution_met_pct), str(total.open_breached), f"{total.target_pct:g}%",
            verdict(total.meets_target)]], set(range(4, 11)),
        ["miss" if r.meets_target is False else "" for r in report.rows] + ["total"], "groups")
    p = report.percentiles
    times = _table("Reaction and resolution times (resolution less waiting for the customer)",
                   ["", "p50", "p90"],
                   [["Reaction", duration(p.reaction_p50_s), duration(p.reaction_p90_s)],
                    ["Resolution", duration(p.resolution_p50_s), duration(p.resolution_p90_s)],
                    ["Waited for customers (total)", duration(report.paused_s), ""]],
                   {1, 2}, table_id="times")
    trend = _table("Trend: the same figure in the periods before",
                   ["Period", "Within SLA", "Within", "Decided", "Verdict"],
                   [[f"{t.start} – {t.end}", share_text(t.within, t.decided), str(t.within),
                     str(t.decided), verdict(t.meets_target)] for t in report.trend]
                   + [[f"{query.start} – {query.end}", share_text(total.within, total.decided),
                       str(total.within), str(total.decided), verdict(total.meets_target)]],
                   {1, 2, 3}, table_id="trend")
    cut = f", the first {len(report.breaches)} entries" if report.breaches_cut else ""
    breaches = _table(f"Breached requests (times in {report.time_zone}{cut})",
                      ["Number", "Customer", "Priority", "Deadline", "Due", "Late by"],
                      [[b.number, b.customer or "-", b.priority, b.deadline,
                        local_time(report, b.due),
                        "acknowledgement withheld" if b.late_by_s is None else
                        duration(b.late_by_s) + (", still open" if b.open else "")]
                       for b in report.breaches], {5}, table_id="breaches")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body><main>"
        f"<h1>{escape(title)}</h1><p class=\"meta\">Requests received {query.start} to "
        f"{query.end} (days in {report.time_zone}); generated "
        f"{local_time(report, report.generated_at)} {report.time_zone}. A request is within "
        "SLA when both its reaction and its resolution met their deadlines; a withheld "
        "acknowledgement is a missed reaction; open requests past a deadline count as "
        f"breached.</p>{_headline(total, 'headline')}{customers}"
        "<h2>Daily share within SLA, by day of receipt</h2>"
        f"{chart(report.days, total.target_pct)}{times}{groups}{trend}{breaches}"
        "</main></body></html>\n")
