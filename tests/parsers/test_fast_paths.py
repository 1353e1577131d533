"""The parser's shortcuts give exactly what the plain computations they replace give."""

from __future__ import annotations

import io
import random
import re
from pathlib import Path
from typing import Any

import pytest
import regex
from flanker.mime.message import part, scanner

from parsers import charsets, flanker_scan, headers, mime, quote_rules, quotes
from parsers import email as email_parser
from parsers.email import parse_email

CORPORA = Path(__file__).resolve().parents[3] / "shared" / "corpora"

_TRICKY_MESSAGES = [
    "",
    "\n",
    "\r\n\r\n",
    "--",
    "Content-Type: text/plain\n\nbody",
    "content-type: multipart/mixed; boundary=x\n\n--x\nCONTENT-TYPE: text/plain\n\na\n--x--\n",
    "Content-Type: multipart/mixed;\n boundary=\"b\"\n\npre\n--b\r\nContent-Type: text/html\r\n"
    "\r\n<p>x</p>\r\n--b\n\n--b--\r\n\r\nepilogue\n--notours\n",
    "Subject: x\nContent-type:text/plain\n\n--\n-- \nc\nC\n\r\r\n\n\ncontent-type: x/y\n",
    "Content-Type: multipart/alternative; boundary=q\n\n--q\nContent-Type: text/plain\n"
    " ; charset=utf-8\n\nx\n--q--",
]


def _token_key(tokens: Any) -> list[str]:
    return [repr(t) for t in tokens]


def _corpus_messages() -> list[str]:
    if not CORPORA.is_dir():
        return []
    return [p.read_bytes().decode("latin-1") for p in sorted(CORPORA.rglob("*.eml"))]


def test_content_type_letters_fold_in_ascii_only() -> None:
    """Under the tokenizer's flags the letters of "content-type" match only their ASCII cases."""
    letters = regex.compile(r"[conteyp\-]", regex.IGNORECASE | regex.MULTILINE | regex.VERBOSE)
    folded = {chr(c) for c in range(0x110000) if letters.match(chr(c))}
    assert folded == set("conteyp-CONTEYP")


def test_flanker_tokens_match_flanker_tokenizer() -> None:
    """Trying flanker's tokenizer regex at candidate line starts only finds the same tokens."""
    assert flanker_scan.FAST_SCAN, "flanker internals changed: the fast scan is off"
    rng = random.Random(7)
    pieces = ["Content-Type: text/plain", "content-type: multipart/mixed; boundary=b", "--b",
              "--b--", "", "\r", " folded", "text", "c", "-", "--", "\t", "cONTENT-tYPE: a/b",
              "Content-Type:", "Content-Type: \x85x", "--b\x85\u2028\x0b\x0c", "\r\r", "--\r"]
    samples = list(_TRICKY_MESSAGES) + _corpus_messages()
    for _ in range(2000):
        samples.append("".join(rng.choice(pieces) + rng.choice(["\n", "\r\n", "\r", ""])
                               for _ in range(rng.randrange(1, 30))))
    for text in samples:
        expected = _token_key(scanner.tokenize(text))
        assert _token_key(flanker_scan.flanker_tokens(text)) == expected, text[:200]


@pytest.mark.parametrize("line", [
    "On Mon, 1 Jan 2024, Bob <b@x.org> wrote:", "  2013/7/20 sam <info@example.org>",
    "Le 3 mai 2020 à 10:00, Jean a écrit :", "В пн, 3 мая 2021 г. в 10:00, Иван написал(а):",
    "-----Original Message-----", "Begin forwarded message:", "________________________________",
    "Thu, 26 Jun 2014 14:00 +0400 от Alexander <a@example.com>:", "Bob WROTE THE FOLLOWING：",
    "1 x ſcrive", "just text:", "a@b.c", "-- ", "_", "wrote", "", "\twrote \t: \t",
])
def test_embedded_marker_shortcut(line: str) -> None:
    """The guarded embedded-marker test agrees with trying every pattern."""
    expected = any(r.match(line) for r in quote_rules._EMBEDDED)
    assert quote_rules._is_embedded_marker(line) == expected
    assert quote_rules._is_embedded_marker(line + "\n") == any(
        r.match(line + "\n") for r in quote_rules._EMBEDDED)


def test_cyrillic_score_bound() -> None:
    """No single-byte Cyrillic decoding of the same bytes scores above the bound."""
    rng = random.Random(3)
    alphabet = "Добрый день ОШИБКА «тест» — № Lьtke ёЁ abc 123\n"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 400)))
        data = text.encode(rng.choice(["cp1251", "koi8_r", "cp866"]), "replace")
        for codec in ("cp1251", "koi8_r", "koi8_u", "iso8859_5", "cp866", "mac_cyrillic"):
            decoded = data.decode(codec, "replace")
            bound = charsets._best_possible_score(decoded)
            for other in ("cp1251", "koi8_r", "iso8859_5", "cp866"):
                assert charsets._cyrillic_score(data.decode(other, "replace")) <= bound


def test_mislabelled_koi8_still_detected() -> None:
    """KOI8-R text labelled windows-1251 is still decoded as KOI8-R."""
    data = "Добрый день, не работает вход в систему.".encode("koi8_r")
    text, defects = charsets.decode_bytes(data, "windows-1251", "body part 1")
    assert text.startswith("Добрый день") and defects


def _message(subject: str, sender: str, body: str) -> bytes:
    return (f"From: {sender}\r\nTo: support@x.org\r\nSubject: {subject}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()


def test_bounce_wording_far_into_text() -> None:
    """Bounce wording counts within the first 20000 characters, only with a bounce subject."""
    filler = "A long line of ordinary customer prose, nothing special here.\r\n" * 250
    phrase = "\r\nThis message could not be delivered to one or more recipients.\r\n"
    body = filler + phrase
    assert len(filler) < 20000
    subject = "Returned mail: see transcript"
    assert parse_email(_message(subject, "a@x.org", body)).kind == "bounce"
    assert parse_email(_message("Question", "a@x.org", body)).kind == "normal"
    far = filler * 2 + phrase
    assert parse_email(_message(subject, "a@x.org", far)).kind == "normal"


def _flanker_head(string: str, start: int) -> tuple[Any, ...]:
    container = part.Stream(None, start, len(string) - 1, string, io.StringIO(string))
    whole = part.MimePart(container)
    try:
        container.read_body()
    except Exception as exc:
        return ("raises", type(exc), str(exc))
    return (container._body_start, whole.content_encoding.value, whole.content_disposition[0],
            "Content-Id" in whole.headers)


def _our_head(string: str, start: int) -> tuple[Any, ...] | None:
    try:
        head = flanker_scan.part_head(string, start)
    except Exception as exc:
        return ("raises", type(exc), str(exc))
    if head is None:
        return None
    encoding = head.encoding.value if head.encoding is not None else "7bit"
    disposition = head.disposition[0] if head.disposition is not None else None
    return (head.body_start, encoding, disposition, head.has_content_id)


def test_part_head_matches_flanker_headers() -> None:
    """Reading a part's header block for the leaf gives what flanker's header parse gives."""
    rng = random.Random(11)
    fields = ["Content-Type: text/plain; charset=utf-8", "content-transfer-encoding: BASE64",
              "Content-Transfer-Encoding: quoted-printable", "Content-Transfer-Encoding:",
              "CONTENT-DISPOSITION: Attachment; filename=\"a b.pdf\"", "Content-Disposition: ",
              "Content-Disposition: inline;\r\n filename*0*=utf-8''%D0%B0", "Content-ID: <x@y>",
              "content-id:", "From me@x.org Mon", "From: a@b.c", " folded tail", "\tmore",
              "X-Long: a\r\n b\r\n\tc", "Content-Disposition: \xe4ttachment; x=1",
              "Subject: \xd0\xbf\xd1\x80", "Content-Transfer-Encoding: \xe48bit", "not a header",
              "Content-Type : text/html", "Content-Disposition: attachment; filename=\"x",
              "Content-Type: text/plain; name*=bad'%ZZ", "Content-Id\t: <z>"]
    samples = _corpus_messages() + list(_TRICKY_MESSAGES)
    for _ in range(3000):
        lines = [rng.choice(fields) for _ in range(rng.randrange(0, 8))]
        ends = [rng.choice(["\r\n", "\n", "\r"]) for _ in lines]
        gap = rng.choice(["\r\n", "\n", "\r", "", "\r\n\r\n"])
        samples.append("".join(x + e for x, e in zip(lines, ends, strict=True)) + gap + "body")
    covered = 0
    for text in samples:
        starts = {0, *(m.end() for m in re.finditer("\n", text[:20000]))}
        for start in sorted(starts)[:40]:
            ours = _our_head(text, start)
            if ours is not None:
                covered += 1
                assert ours == _flanker_head(text, start), (text[start:start + 300], start)
    assert covered > 10000


def test_decoded_size_is_the_decoded_length() -> None:
    """decoded_size gives len(transfer_decode(...)), broken and odd base64 included."""
    rng = random.Random(5)
    pieces = [b"QUJD", b"RA==", b"RQ=", b"Rg", b"=", b"\r\n", b"\n", b" ", b"!", b"\xff", b"A",
              b"=x=", b"ab+/", b"-_", b"\x00"]
    samples = [b"", b"=", b"A", b"AB", b"ABC", b"ABCD", b"A===", b"====", rng.randbytes(3000)]
    samples += [b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 40)))
                for _ in range(3000)]
    for data in samples:
        for encoding in ("base64", " BASE64 ", "quoted-printable", "7bit", None):
            expected_defects: list[str] = []
            expected = len(mime.transfer_decode(data, encoding, "x", expected_defects))
            defects: list[str] = []
            assert mime.decoded_size(data, encoding, "x", defects) == expected, data
            assert defects == expected_defects == []


_ALL_CHARS = "".join(map(chr, range(0x110000)))


def test_first_char_classes_fold_like_literals() -> None:
    """A class of first letters matches every character that any of those letters matches."""
    for test in (quote_rules._MOBILE_FIRST, quote_rules._WROTE_LAST):
        in_class = set(test.letters.findall(_ALL_CHARS))
        for letter in test.letters.pattern.strip("[]").replace("\\", ""):
            assert set(re.findall(re.escape(letter), _ALL_CHARS, re.IGNORECASE)) <= in_class


def test_ascii_text_folds_only_onto_ascii_letters() -> None:
    """Under IGNORECASE an ASCII character matches a verb's letter only as its ASCII case."""
    for letter in set("".join(quote_rules._WROTE_WORDS)):
        matched = {chr(c) for c in range(128)
                   if re.match(re.escape(letter), chr(c), re.IGNORECASE)}
        expected = {letter.lower(), letter.upper()} if letter.isascii() else set()
        assert matched == expected, letter


def _reference_class(line: str) -> str:
    """classify_line as the regexes alone decide it."""
    if not line.strip():
        return "e"
    if len(line) > 1000:
        return "t"
    if quote_rules._QUOTE.match(line):
        return "q"
    if any(r.match(line) for r in quote_rules._EMBEDDED):
        return "b"
    if quote_rules._DELIMITER.match(line):
        return "d"
    if quote_rules._MOBILE_SIGNATURE.match(line):
        return "s"
    if quote_rules._HEADER.match(line):
        return "h"
    return "t"


def _reference_join(text: str) -> str:
    def _join(m: re.Match[str]) -> str:
        block = m.group(0)
        return block if block.count("\n") > 4 else re.sub(r"\n[ \t]*", " ", block)

    if re.search(r"[:：][ \t]*$", text, re.MULTILINE):
        for regex in quote_rules.EMBEDDED_MULTILINE:
            text = regex.sub(_join, text)
    return text


def _quote_texts() -> list[str]:
    if not CORPORA.is_dir():
        return []
    quote_cases = CORPORA / "quotes"
    files = sorted(quote_cases.rglob("*.txt")) + sorted(quote_cases.rglob("*.html"))
    return [p.read_bytes().decode("utf-8", "replace") for p in files]


def test_line_classes_match_the_regexes() -> None:
    """classify_line's shortcuts and the multi-line join give what the plain regexes give."""
    rng = random.Random(13)
    pieces = ["ſent from my phone", "İnviato da iPhone", "ᲂтправлено с iPad", "Sent via x", "> q",
              " \t>", "On Mon, 1 Jan, Bob <b@x.org> wrote:", "WROTE :", "napisał(a):", "—–",
              "ᐧᐧ", "-- ", "___", "=+~#*", "a - b", "Le 3 mai, Jean a écrit :", "2013/7/20 sam <",
              "info@example.org>:", "В пн, 3 мая", "Иван написал(а):", "text", "x:", "：", "\t",
              "From: a", "Sent: b", "Кому: c", "```", "schrieb", "ScHrIeB:", "wrote\tthe following"]
    texts = _quote_texts()
    texts += [parse_email(p.read_bytes()).text for p in sorted(CORPORA.rglob("*.eml"))][:400]
    for _ in range(3000):
        texts.append("\n".join(" ".join(rng.choice(pieces) for _ in range(rng.randrange(1, 4)))
                               for _ in range(rng.randrange(1, 12))))
    for text in texts:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        assert quotes._join_multiline_markers(text) == _reference_join(text), text[:300]
        for line in text.split("\n"):
            assert quote_rules.classify_line(line) == _reference_class(line), line


def test_control_characters_are_unprintable() -> None:
    """_looks_binary's isprintable shortcut: no counted control character is printable."""
    counted = email_parser._CONTROL_CHAR.findall(_ALL_CHARS)
    assert counted and not any(char.isprintable() for char in counted)
    rng = random.Random(17)
    alphabet = "ab \t\n\x0c\x00\x0b\r\x1f\x7f\x9f\xa0\xad\u2028я"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        sample = text[:4000]
        controls = len(email_parser._CONTROL_CHAR.findall(sample))
        assert email_parser._looks_binary(text) == (len(sample) >= 16
                                                     and controls * 10 > len(sample))


def test_clean_without_line_breaks_is_identity() -> None:
    """clean() leaves a value without CR, LF or NUL as it is, as its substitutions would."""
    for value in ["", "a b", "x\ty", "\u2028", "=?utf-8?q?a?=", " lead ", "a\r\n b", "a\x00b"]:
        assert headers.clean(value) == headers._CRLF.sub(" ", headers._FOLD.sub("", value))
