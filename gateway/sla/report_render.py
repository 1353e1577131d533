"""The SLA report in the format asked for: table, JSON, CSV, HTML or PDF."""

from __future__ import annotations

import json

from gateway.sla.report import SlaReport
from gateway.sla.report_format import as_csv, as_table
from gateway.sla.report_html import as_html

FORMATS = ("table", "json", "csv", "html", "pdf")
# What an HTTP response carrying each format says it is.
MEDIA_TYPES = {"table": "text/plain; charset=utf-8", "json": "application/json",
               "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8",
               "pdf": "application/pdf"}


def render_text(report: SlaReport, output_format: str) -> str:
    """REPORT in one of the text formats."""
    if output_format == "json":
        return json.dumps(report.as_json(), ensure_ascii=False, indent=2) + "\n"
    if output_format == "csv":
        return as_csv(report)
    if output_format == "html":
        return as_html(report)
    return as_table(report)


def render(report: SlaReport, output_format: str) -> bytes:
    """REPORT in any format, as the bytes to write or send."""
    if output_format == "pdf":
        # WeasyPrint loads Pango on import: only when a PDF is asked for.
        from gateway.sla.report_pdf import as_pdf

        return as_pdf(report)
    return render_text(report, output_format).encode()
