"""The SLA report as a text table, JSON, CSV, or one self-contained HTML page with a chart."""

from __future__ import annotations

import csv
import io
import json
from html import escape

from gateway.clock import iso_utc
from gateway.sla.report import DayShare, ReportRow, SlaReport

FORMATS = ("table", "json", "csv", "html")
# What an HTTP response carrying each format says it is.
MEDIA_TYPES = {"table": "text/plain; charset=utf-8", "json": "application/json",
               "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8"}
_CSV_COLUMNS = ("customer", "tier", "priority", "request_type", "requests", "reaction_met",
                "reaction_missed", "reaction_met_pct", "resolution_met", "resolution_missed",
                "resolution_met_pct", "open_breached", "target_pct", "meets_target")


def render(report: SlaReport, output_format: str) -> str:
    if output_format == "json":
        return json.dumps(report.as_json(), ensure_ascii=False, indent=2) + "\n"
    if output_format == "csv":
        return as_csv(report)
    if output_format == "html":
        return as_html(report)
    return as_table(report)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _verdict(row: ReportRow) -> str:
    return {None: "-", True: "yes", False: "NO"}[row.meets_target]


def _cells(row: ReportRow) -> list[str]:
    return [row.customer or "(unknown)", row.tier or "-", row.priority, row.request_type,
            str(row.requests), _pct(row.reaction_met_pct), _pct(row.resolution_met_pct),
            str(row.open_breached), f"{row.target_pct:g}%", _verdict(row)]


def as_table(report: SlaReport) -> str:
    header = ["customer", "tier", "priority", "type", "requests", "reaction met",
              "resolution met", "open breached", "target", "met"]
    body = [_cells(r) for r in report.rows]
    total = report.total
    body.append(["total", "", "", "", str(total.requests), _pct(total.reaction_met_pct),
                 _pct(total.resolution_met_pct), str(total.open_breached), "", ""])
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    numeric = set(range(4, 9))

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    title = (f"SLA report {report.query.start} .. {report.query.end}"
             + (f", customer {report.query.customer}" if report.query.customer else ""))
    return "\n".join([title, "", line(header), line(["-" * w for w in widths]),
                      *(line(c) for c in body)]) + "\n"


def as_csv(report: SlaReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_CSV_COLUMNS)
    for row in report.rows:
        data = row.as_json()
        writer.writerow(["" if data[n] is None else data[n] for n in _CSV_COLUMNS])
    return out.getvalue()


def _chart(days: list[DayShare], target_pct: float) -> str:
    """An inline SVG line chart of the daily share within SLA, with the target as a line."""
    width, height, left, bottom, top, right = 760, 260, 48, 36, 16, 16
    plot_w, plot_h = width - left - right, height - top - bottom

    def y(pct: float) -> float:
        return top + plot_h * (1 - pct / 100)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" '
             'aria-label="Daily share of requests within SLA">']
    for pct in (0, 25, 50, 75, 100):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(pct):.1f}" '
                     f'y2="{y(pct):.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{y(pct) + 4:.1f}" class="axis" '
                     f'text-anchor="end">{pct}%</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(target_pct):.1f}" '
                 f'y2="{y(target_pct):.1f}" class="target"/>'
                 f'<text x="{width - right}" y="{y(target_pct) - 4:.1f}" class="axis" '
                 f'text-anchor="end">target {target_pct:g}%</text>')
    known = [(i, d) for i, d in enumerate(days) if d.share_pct is not None]
    step = plot_w / max(1, len(days) - 1)

    def x(index: int) -> float:
        return left + (step * index if len(days) > 1 else plot_w / 2)

    if known:
        points = " ".join(f"{x(i):.1f},{y(d.share_pct or 0):.1f}" for i, d in known)
        parts.append(f'<polyline points="{points}" class="share"/>')
        for i, d in known:
            below = " below" if (d.share_pct or 0) < target_pct else ""
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(d.share_pct or 0):.1f}" r="3.5" '
                         f'class="point{below}"><title>{d.day}: {_pct(d.share_pct)} '
                         f'({d.within} within, {d.breached} breached)</title></circle>')
    else:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" class="axis" '
                     'text-anchor="middle">no decided requests in this period</text>')
    label_every = max(1, len(days) // 8)
    for i, d in enumerate(days):
        if i % label_every == 0 or i == len(days) - 1:
            parts.append(f'<text x="{x(i):.1f}" y="{height - 12}" class="axis" '
                         f'text-anchor="middle">{d.day:%d.%m}</text>')
    parts.append("</svg>")
    return "".join(parts)


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; }
p.meta { color: #666; margin: 0 0 16px; }
.grid { stroke: #e4e4e4; } .target { stroke: #c0392b; stroke-dasharray: 6 4; }
.axis { font-size: 11px; fill: #666; }
.share { fill: none; stroke: #2471a3; stroke-width: 2; }
.point { fill: #2471a3; } .point.below { fill: #c0392b; }
table { border-collapse: collapse; margin-top: 16px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.miss td { background: #fdecea; } tr.total td { font-weight: 600; }
"""


def as_html(report: SlaReport) -> str:
    """One page, no external resources: inline CSS, inline SVG chart, the table."""
    query = report.query
    target = report.rows[0].target_pct if report.rows else report.total.target_pct
    header = ["Customer", "Tier", "Priority", "Type", "Requests", "Reaction met",
              "Resolution met", "Open, breached", "Target", "Met"]
    lines = ["<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"]
    for row in [*report.rows, report.total]:
        cells = (_cells(row) if row is not report.total else
                 ["Total", "", "", "", str(row.requests), _pct(row.reaction_met_pct),
                  _pct(row.resolution_met_pct), str(row.open_breached), "", ""])
        css = "total" if row is report.total else "miss" if row.meets_target is False else ""
        lines.append(f'<tr class="{css}">' + "".join(
            f'<td class="{"n" if 4 <= i <= 8 else ""}">{escape(c)}</td>'
            for i, c in enumerate(cells)) + "</tr>")
    who = f" — {escape(query.customer)}" if query.customer else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>SLA report {query.start} – {query.end}</title><style>{_STYLE}</style>"
        f"</head><body><h1>SLA report {query.start} – {query.end}{who}</h1>"
        f'<p class="meta">Daily share of requests within SLA (reaction and resolution met), '
        "by day of receipt; generated "
        f"{iso_utc(report.generated_at)}.</p>"
        f"{_chart(report.days, target)}"
        f"<table>{''.join(lines)}</table></body></html>\n")
