"""Parsing survives what real clients send: our own examples of each class of failure."""

from __future__ import annotations

import pytest

from parsers.email import parse_email
from parsers.html import enriched_to_text, html_to_text

HEAD = (b"From: Ivan Petrov <ivan@acme.example>\r\nTo: support@example.com\r\n"
        b"Subject: Help\r\nMessage-ID: <m1@acme.example>\r\nMIME-Version: 1.0\r\n")


def test_one_invalid_byte_in_utf8_keeps_the_text_and_notes_the_defect() -> None:
    body = "Сервер упал ".encode() + b"\xff" + " с утра, помогите".encode()
    request = parse_email(HEAD + b"Content-Type: text/plain; charset=utf-8\r\n"
                          b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body + b"\r\n")
    assert request.text.strip() == "Сервер упал \ufffd с утра, помогите"
    assert any("invalid UTF-8" in d for d in request.defects)
    undeclared = parse_email(HEAD + b"\r\n" + body + b"\r\n")
    assert "с утра, помогите" in undeclared.text


@pytest.mark.parametrize("blanks", [b"  ", b"\t", b" \t "])
def test_boundary_lines_with_trailing_white_space(blanks: bytes) -> None:
    raw = (HEAD + b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\npreamble\r\n'
           b"--XX" + blanks + b"\r\nContent-Type: text/plain\r\n\r\nThe export fails.\r\n--XX\t\r\n"
           b'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="a.pdf"'
           b"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--XX-- \r\n")
    request = parse_email(raw)
    assert request.text.strip() == "The export fails."
    assert [(a.filename, a.content_type, a.size) for a in request.attachments] == [
        ("a.pdf", "application/pdf", 9)]


@pytest.mark.parametrize("digest", [b"multipart/digest", b"Multipart/DIGEST"])
def test_digest_members_are_messages_with_their_text_and_attachments(digest: bytes) -> None:
    raw = (HEAD + b"Content-Type: " + digest + b'; boundary="D"\r\n\r\n--D\r\n\r\n'
           b"From: b@x.example\r\nSubject: one\r\n\r\nfirst digest message\r\n--D\r\n\r\n"
           b'From: c@x.example\r\nSubject: two\r\nContent-Type: multipart/mixed; boundary="E"'
           b"\r\n\r\n--E\r\nContent-Type: text/plain\r\n\r\nsecond message text\r\n--E\r\n"
           b'Content-Type: image/png\r\nContent-Disposition: attachment; filename="p.png"\r\n'
           b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--E--\r\n--D--\r\n")
    request = parse_email(raw)
    assert "first digest message" in request.text and "second message text" in request.text
    assert "Content-Type" not in request.text and "iVBOR" not in request.text
    assert ("p.png", "image/png") in [(a.filename, a.content_type) for a in request.attachments]


def test_broken_nesting_keeps_text_and_attachment() -> None:
    raw = (HEAD + b'Content-Type: multipart/mixed; boundary="A"\r\n\r\n--A\r\n'
           b'Content-Type: multipart/alternative; boundary="B"\r\n\r\n--B\r\n'
           b"Content-Type: text/plain\r\n\r\ninner text here\r\n--A\r\n"
           b'Content-Type: application/octet-stream\r\nContent-Disposition: attachment; '
           b'filename="f.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--A--\r\n')
    request = parse_email(raw)
    assert request.text.strip() == "inner text here"
    assert [a.filename for a in request.attachments] == ["f.bin"]


def test_undeclared_8bit_header_with_one_western_accent_is_not_cyrillic() -> None:
    request = parse_email(b"From: Caf\xe9 Owner <o@x.example>\r\nTo: s@example.com\r\n"
                          b"Subject: Caf\xe9 ordering broken\r\n\r\nbody\r\n")
    assert request.subject == "Café ordering broken"
    assert request.sender is not None and request.sender.name == "Café Owner"
    russian = parse_email(b"From: a@x.example\r\nSubject: " + "Не работает почта".encode("cp1251")
                          + b"\r\n\r\nbody\r\n")
    assert russian.subject == "Не работает почта"


def test_html_spans_do_not_break_words() -> None:
    assert html_to_text('<p>The ser<span style="color:red">ver</span> is do<span>wn</span>'
                        "</p>") == "The server is down"


def test_display_names_with_pipes_and_brackets() -> None:
    request = parse_email(b"From: Ivan Petrov | Acme <ivan@acme.example>\r\n"
                          b'To: [EXT] Support <support@example.com>, Team [Ops] <ops@x.example>, '
                          b'"[Quoted] Name" <q@x.example>\r\nSubject: s\r\n\r\nbody\r\n')
    assert request.sender is not None
    assert (request.sender.name, request.sender.address) == ("Ivan Petrov | Acme",
                                                             "ivan@acme.example")
    assert [a.address for a in request.to] == ["support@example.com", "ops@x.example",
                                               "q@x.example"]
    assert [a.name for a in request.to] == ["[EXT] Support", "Team [Ops]", "[Quoted] Name"]


def test_text_enriched_becomes_text() -> None:
    request = parse_email(HEAD + b"Content-Type: text/enriched\r\n\r\n"
                          b"<bold>Server</bold> is down\r\nsince morning.\r\n\r\n"
                          b"Use <<ctrl> key.\r\n")
    assert request.text == "Server is down since morning.\nUse <ctrl> key."
    assert enriched_to_text("<param>red</param><color>x</color>") == "x"


def test_message_partial_is_kept_as_an_attachment_with_a_defect() -> None:
    raw = (HEAD + b'Content-Type: multipart/mixed; boundary="Q"\r\n\r\n--Q\r\n'
           b"Content-Type: text/plain\r\n\r\nsee the part\r\n--Q\r\n"
           b'Content-Type: message/partial; id="abc@x"; number=1; total=2\r\n\r\n'
           b"From: z@x.example\r\nSubject: big\r\n\r\nfirst half\r\n--Q--\r\n")
    for message in (raw, HEAD + b'Content-Type: message/partial; id="abc@x"; number=1; '
                    b"total=2\r\n\r\nFrom: z@x.example\r\n\r\nfirst half\r\n"):
        request = parse_email(message)
        assert [a.content_type for a in request.attachments] == ["message/partial"]
        assert request.attachments[0].size > 0
        assert any("message/partial" in d for d in request.defects)
