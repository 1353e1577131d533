"""The SLA report as PDF: the HTML page laid out by WeasyPrint, with nothing fetched."""

from __future__ import annotations

from typing import Any

from gateway.sla.report import SlaReport
from gateway.sla.report_html import as_html


class ExternalResourceRefused(ValueError):
    """The page named a resource outside itself; the report must be self-contained."""


def _no_fetching(url: str, *_: Any, **__: Any) -> dict[str, Any]:
    # The page carries its CSS and chart inline and names no URL: anything asked for here
    # would be a download at run time, which the daemon never does.
    raise ExternalResourceRefused(f"the report refers to {url!r}")


def as_pdf(report: SlaReport) -> bytes:
    """REPORT as a PDF document (A4 landscape, fonts from the system's fontconfig)."""
    from weasyprint import CSS, HTML

    page = CSS(string="@page { size: A4 landscape; margin: 12mm; } body { margin: 0; }")
    document = HTML(string=as_html(report), url_fetcher=_no_fetching)
    return bytes(document.write_pdf(stylesheets=[page]))
