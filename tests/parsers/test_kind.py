"""Unit tests of the kind classifier on generated messages."""

from __future__ import annotations

from parsers.email import parse_email


def _parse(headers: str, body: str = "Hello\n") -> tuple[str, list[str]]:
    raw = (headers.replace("\n", "\r\n") + "\r\n" + body.replace("\n", "\r\n")).encode()
    req = parse_email(raw)
    return req.kind, req.failed_recipients


def test_normal() -> None:
    """Ordinary mail, also with Auto-Submitted: no, is normal."""
    assert _parse("From: a@x.org\nSubject: help\nAuto-Submitted: no\n")[0] == "normal"


def test_auto_replies() -> None:
    """Auto-Submitted, X-Autoreply, Precedence: auto_reply and vacation subjects are auto_reply."""
    assert _parse("From: a@x.org\nAuto-Submitted: auto-replied\n")[0] == "auto_reply"
    assert _parse("From: a@x.org\nX-Autoreply: yes\n")[0] == "auto_reply"
    assert _parse("From: a@x.org\nPrecedence: auto_reply\n")[0] == "auto_reply"
    assert _parse("From: a@x.org\nSubject: Out of Office: back Monday\n")[0] == "auto_reply"
    assert _parse("From: a@x.org\nSubject: Автоответ: в отпуске\n")[0] == "auto_reply"


def test_dsn_bounce_with_failed_recipients() -> None:
    """A multipart/report delivery-status gives bounce and the failed Final-Recipient."""
    body = ("--b\nContent-Type: text/plain\n\nfailed\n--b\n"
            "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.x.org\n\n"
            "Final-Recipient: rfc822; lost@y.org\nAction: failed\nStatus: 5.1.1\n\n"
            "Final-Recipient: rfc822; ok@y.org\nAction: delayed\nStatus: 4.0.0\n--b--\n")
    kind, failed = _parse("From: MAILER-DAEMON@x.org\n"
                          "Subject: Undelivered Mail Returned to Sender\n"
                          "Content-Type: multipart/report; report-type=delivery-status;"
                          " boundary=b\n", body)
    assert (kind, failed) == ("bounce", ["lost@y.org"])


def test_text_bounces() -> None:
    """Bounce subjects with a null return path or bounce wording are bounces (also Russian)."""
    kind, failed = _parse("From: postmaster@x.org\nReturn-Path: <>\n"
                          "Subject: Недоставленное сообщение\n", "<lost@y.org>: user unknown\n")
    assert (kind, failed) == ("bounce", ["lost@y.org"])
    assert _parse("From: Mail Delivery System <mailer-daemon@x.org>\n"
                  "Subject: Mail delivery failed\nX-Failed-Recipients: z@y.org\n")[1] == ["z@y.org"]


def test_customer_mentioning_delivery_failure_is_normal() -> None:
    """A customer writing about a failed delivery is not mistaken for a bounce."""
    assert _parse("From: a@x.org\nSubject: Delivery failure of my order\n")[0] == "normal"


def test_feedback_report_and_mdn() -> None:
    """ARF reports are feedback_report; read receipts (MDN) are auto_reply."""
    arf = _parse("From: abuse@x.org\nContent-Type: multipart/report;"
                 " report-type=feedback-report; boundary=b\n",
                 "--b\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\n--b--\n")
    mdn = _parse("From: a@x.org\nContent-Type: multipart/report;"
                 " report-type=disposition-notification; boundary=b\n",
                 "--b\nContent-Type: message/disposition-notification\n\n"
                 "Disposition: manual-action/MDN-sent-manually; displayed\n--b--\n")
    assert (arf[0], mdn[0]) == ("feedback_report", "auto_reply")


def test_list_mail() -> None:
    """List-Id or List-Unsubscribe makes list; Precedence: bulk alone does not."""
    assert _parse("From: a@x.org\nList-Id: <dev.x.org>\n")[0] == "list"
    assert _parse("From: a@x.org\nList-Unsubscribe: <mailto:u@x.org>\n")[0] == "list"
    assert _parse("From: a@x.org\nPrecedence: bulk\n")[0] == "normal"
