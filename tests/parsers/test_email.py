"""Unit tests of parse_email: headers, charsets, bodies, attachments and hostile input."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.email import parse_email
from parsers.html import html_to_text


def _msg(headers: str, body: bytes = b"Hello\r\n") -> bytes:
    return headers.replace("\n", "\r\n").encode("ascii") + b"\r\n" + body


def test_basic_fields() -> None:
    """From/To/Cc, ids without brackets, aware date and subject are filled."""
    raw = _msg("From: Ann Lee <ann@example.com>\nTo: a@x.org, B <b@x.org>\nCc: c@x.org\n"
               "Subject: Printer broken\nMessage-ID: <m1@x.org>\nIn-Reply-To: <m0@x.org>\n"
               "References: <r1@x.org> <m0@x.org>\nDate: Mon, 23 Nov 2026 10:00:00 +0300\n")
    req = parse_email(raw)
    assert req.channel == "email"
    assert req.sender is not None and req.sender.name == "Ann Lee"
    assert [a.address for a in req.to] == ["a@x.org", "b@x.org"]
    assert [a.address for a in req.cc] == ["c@x.org"]
    assert (req.message_id, req.in_reply_to) == ("m1@x.org", "m0@x.org")
    assert req.references == ["r1@x.org", "m0@x.org"]
    assert req.date == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    assert req.text.strip() == "Hello" and req.defects == []


def test_rfc2047_subject_and_name() -> None:
    """Encoded words in Subject and display names are decoded, folding removed."""
    raw = _msg("From: =?koi8-r?B?6dfBzg==?= <ivan@example.ru>\n"
               "Subject: =?utf-8?B?0J/RgNC40L3RgtC10YA=?=\n"
               " =?utf-8?Q?_=D1=81=D0=BB=D0=BE=D0=BC?=\n")
    req = parse_email(raw)
    assert req.sender is not None and req.sender.name == "Иван"
    assert req.subject == "Принтер слом"


def test_header_values_have_no_crlf() -> None:
    """Decoded header values never contain CR or LF (they feed outgoing headers)."""
    raw = _msg("From: a@x.org\nSubject: =?utf-8?Q?a=0D=0Ab?=\n tail\nX-Note: one\n two\n")
    req = parse_email(raw)
    for values in req.headers.values():
        assert all("\r" not in v and "\n" not in v for v in values)
    assert req.headers["x-note"] == ["one two"]


def test_koi8r_body() -> None:
    """A KOI8-R declared body decodes to Russian text."""
    body = "Привет, не работает почта".encode("koi8-r")
    raw = _msg("From: a@x.org\nContent-Type: text/plain; charset=koi8-r\n"
               "Content-Transfer-Encoding: 8bit\n", body)
    assert parse_email(raw).text.startswith("Привет, не работает почта")


def test_cp1251_body() -> None:
    """A Windows-1251 declared body decodes to Russian text without defects."""
    body = "Срочно: сервер недоступен".encode("cp1251")
    raw = _msg("From: a@x.org\nContent-Type: text/plain; charset=windows-1251\n", body)
    req = parse_email(raw)
    assert req.text.startswith("Срочно: сервер недоступен") and req.defects == []


def test_mislabelled_utf8_that_is_cp1251() -> None:
    """A body declared UTF-8 but written in cp1251 is detected and the guess is reported."""
    body = "Добрый день, не открывается отчёт".encode("cp1251")
    raw = _msg("From: a@x.org\nContent-Type: text/plain; charset=utf-8\n", body)
    req = parse_email(raw)
    assert req.text.startswith("Добрый день, не открывается отчёт")
    assert any("decoded as cp1251" in d for d in req.defects)


def test_koi8r_labelled_cp1251() -> None:
    """KOI8-R bytes labelled windows-1251 are recognised by their letter case pattern."""
    body = "Добрый день, у нас не работает принтер в офисе".encode("koi8-r")
    raw = _msg("From: a@x.org\nContent-Type: text/plain; charset=windows-1251\n", body)
    req = parse_email(raw)
    assert "не работает принтер" in req.text
    assert any("koi8_r" in d for d in req.defects)


def test_unknown_charset_reported() -> None:
    """An unknown charset label is decoded by guessing and named in a precise defect."""
    body = "Ошибка при входе в систему".encode("cp1251")
    raw = _msg("From: a@x.org\nContent-Type: text/plain; charset=x-unknown\n", body)
    req = parse_email(raw)
    assert "Ошибка при входе" in req.text
    assert "body part 1: undecodable charset 'x-unknown', decoded as cp1251" in req.defects


def test_html_only_rendered() -> None:
    """An HTML-only message yields readable text without tags."""
    html = b"<html><body><p>Hello <b>team</b></p><p>Line&nbsp;two</p></body></html>"
    raw = _msg("From: a@x.org\nContent-Type: text/html; charset=utf-8\n", html)
    text = parse_email(raw).text
    assert "Hello team" in text and "Line" in text and "<" not in text


def test_broken_html_does_not_raise() -> None:
    """html_to_text copes with unclosed tags, XML declarations and empty input."""
    assert "x" in html_to_text("<?xml version='1.0' encoding='utf-8'?><div><p>x<table><td>")
    assert html_to_text("") == ""


def test_attachment_rfc2231_filename() -> None:
    """RFC 2231 and RFC 2047 filenames are decoded; size is the decoded byte count."""
    payload = base64.b64encode(b"12345").decode()
    raw = _msg(
        'From: a@x.org\nContent-Type: multipart/mixed; boundary="b"\n',
        ("--b\r\nContent-Type: text/plain\r\n\r\nsee file\r\n--b\r\n"
         "Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
         "Content-Disposition: attachment; filename*=utf-8''%D0%BE%D1%82%D1%87%D1%91%D1%82.pdf\r\n"
         f"\r\n{payload}\r\n--b\r\n"
         "Content-Type: text/csv; name=\"=?utf-8?B?0YHRh9GR0YIuY3N2?=\"\r\n"
         "Content-Disposition: attachment\r\n\r\na,b\r\n--b--\r\n").encode())
    req = parse_email(raw)
    first = req.attachments[0]
    assert (first.filename, first.content_type, first.size) == ("отчёт.pdf", "application/pdf", 5)
    assert req.attachments[1].filename == "счёт.csv"
    assert req.text.strip() == "see file"


def test_reply_text_and_priority_filled() -> None:
    """reply_text drops the quote and declared_priority reads the subject marker."""
    raw = _msg("From: a@x.org\nSubject: [URGENT] VPN down\n",
               b"It is down again.\r\n\r\nOn Mon, 1 Jan 2026, Bob <b@x.org> wrote:\r\n> old\r\n")
    req = parse_email(raw)
    assert req.reply_text == "It is down again."
    assert req.declared_priority == "high"


def test_empty_input() -> None:
    """0-byte input returns an empty Request with a defect."""
    req = parse_email(b"")
    assert req.subject is None and req.text == "" and "empty input: 0 bytes" in req.defects


def test_nul_bytes() -> None:
    """NUL bytes are reported and stripped from the text."""
    req = parse_email(b"From: a@x.org\r\nSubject: x\x00y\r\n\r\nbo\x00dy\r\n")
    assert "input contains NUL bytes" in req.defects and "\x00" not in req.text


def test_outlook_msg_binary() -> None:
    """A binary Outlook .msg (OLE2) gives no text and an explanatory defect."""
    raw = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + random.Random(1).randbytes(4096)
    req = parse_email(raw)
    assert req.text == "" and any("OLE2" in d for d in req.defects)


def test_random_bytes_and_missing_headers() -> None:
    """Random bytes and header-less text parse without raising."""
    # A fixed seed: about 1 in 75 random blocks happens to begin with a header-like line.
    assert "no header fields found" in parse_email(random.Random(2).randbytes(2000)).defects
    req = parse_email(b"just a line of text\nand another")
    assert req.sender is None and req.date is None and "just a line" in req.text


def test_malformed_mime_falls_back() -> None:
    """A multipart without its boundary still yields the body through the fallback parser."""
    raw = _msg('From: a@x.org\nContent-Type: multipart/mixed; boundary="nope"\n',
               b"--other\r\nContent-Type: text/plain\r\n\r\nbody text\r\n")
    req = parse_email(raw)
    assert "body text" in req.text


def test_broken_base64_and_bad_date() -> None:
    """Broken base64 and an unparseable Date do not raise; the date becomes None."""
    raw = _msg("From: a@x.org\nDate: someday soon\nContent-Transfer-Encoding: base64\n",
               b"SGVsbG8gd29y!!bGQ")
    req = parse_email(raw)
    assert req.date is None and any("Date" in d for d in req.defects)


def test_huge_message() -> None:
    """A 30 MB message parses in a few seconds and reports its attachment size."""
    line = b"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\r\n"
    raw = _msg('From: a@x.org\nContent-Type: multipart/mixed; boundary="b"\n',
               b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n"
               b"Content-Type: application/zip; name=a.zip\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n" + line * 400_000 + b"--b--\r\n")
    req = parse_email(raw)
    assert req.attachments[0].size == 57 * 400_000 and req.text.strip() == "hi"


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000))
def test_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    """Any byte string parses to a JSON-serialisable Request without raising."""
    prefix = b"From: a@x.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
    for data in (raw, prefix + raw):
        json.dumps(parse_email(data).as_json(), ensure_ascii=False)
