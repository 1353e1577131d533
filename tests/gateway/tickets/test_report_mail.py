"""[[reports]]: last month's SLA report of a customer, mailed as a PDF on its day and time,
once, through the outbox."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pypdf import PdfReader

from tests.conftest import make_mail
from tests.gateway.http.helpers import hook_config
from tests.gateway.http.portal_helpers import PORTAL_CUSTOMERS, mails_to
from tests.gateway.outbox.test_outbox import submit


def test_monthly_report_mailed_once_as_pdf(make_gateway, tmp_path: Path) -> None:
    """Due on the 1st at 09:00 Moscow time: nothing at 08:00, one PDF at 09:30, none more."""
    extra, http = hook_config(tmp_path, customers=PORTAL_CUSTOMERS)
    extra += ('\n[[reports]]\nname = "monthly"\nto = ["manager@support.example"]\n'
              'customers = ["acme"]\nformat = "pdf"\nday = 1\nat = "09:00"\n')
    running = make_gateway(extra=extra, http=http)
    submit(running, make_mail("Calls drop", sender="ivan@acme.example",
                              body="Every call drops after ten seconds for all our users."))
    running.settle()
    running.clock.set(datetime(2026, 12, 1, 5, 0, tzinfo=UTC))
    running.settle()
    assert mails_to(running, "manager@support.example") == []
    running.clock.advance(timedelta(minutes=90))
    running.settle()
    [mail] = mails_to(running, "manager@support.example")
    assert str(mail["Subject"]).startswith("SLA report ООО Акме (acme) 2026-11: ")
    [pdf] = [part for part in mail.iter_attachments()]
    assert pdf.get_filename() == "sla-acme-2026-11.pdf"
    data = pdf.get_content()
    assert isinstance(data, bytes) and data.startswith(b"%PDF-")
    text = re.sub(r"\s+", " ", " ".join(
        page.extract_text() for page in PdfReader(io.BytesIO(data)).pages))
    assert "SLA report 2026-11-01 – 2026-11-30" in text and "ООО Акме" in text
    running.clock.advance(timedelta(hours=5))
    running.settle()
    assert len(mails_to(running, "manager@support.example")) == 1
