"""flanker's scanner and part-header parse, computed faster with flanker's own results."""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

# flanker builds its ply address grammars at import and logs "Symbol ... is unreachable"
# warnings through logging's last-resort stderr handler; that noise would pollute CLI output.
_PLY_LOGGER = logging.getLogger("flanker.addresslib._parser.parser")
_saved_level = _PLY_LOGGER.level
_PLY_LOGGER.setLevel(logging.CRITICAL + 1)
try:
    with contextlib.redirect_stderr(io.StringIO()):
        from flanker import mime as flanker_mime
        from flanker.mime.message import scanner as flanker_scanner
        from flanker.mime.message.errors import DecodingError
        from flanker.mime.message.headers import parsing as flanker_parsing
finally:
    _PLY_LOGGER.setLevel(_saved_level)
# flanker logs parse trouble itself; we report it as defects instead, so keep it off stderr
# unless the application configures logging.
logging.getLogger("flanker").addHandler(logging.NullHandler())


# flanker's tokenizer tries its regex at every character of the message, most of the parse time.
# Its three alternatives match only at a line start: a Content-Type field ("content-type:" in
# ASCII letters of either case, which is all its IGNORECASE admits for them), a boundary
# candidate ("--" and the rest of the line) or an empty line ("\r\n" or "\n"). So only such
# line starts are visited, and the last two tokens, whose extent is the line or the line break,
# are built without the regex. Nothing else of flanker's scanner is replaced.
_TOKEN_LINE = re.compile(r"\n(?=--|\r?\n|[cC][oO][nN][tT][eE][nN][tT]-[tT][yY][pP][eE]:)")
_SCANNER_PARTS = ("parsing", "_RE_TOKENIZER", "_EMPTY_LINE", "Boundary", "_grab_newline",
                  "_filter_false_tokens", "default_content_type", "traverse", "Start",
                  "TokensIterator")
# A flanker release without these internals is parsed by its own, slower, scanner.
FAST_SCAN = all(hasattr(flanker_scanner, name) for name in _SCANNER_PARTS)


def flanker_tokens(string: str) -> Any:
    """What flanker's scanner.tokenize(string) returns, trying its regex only where it can match."""
    sc = flanker_scanner
    tokenizer = sc._RE_TOKENIZER
    tokens: deque[Any] = deque()
    end = 0
    for start in itertools.chain((0,), (m.end() for m in _TOKEN_LINE.finditer(string))):
        if start < end:  # inside the previous token (a folded Content-Type)
            continue
        if string.startswith("--", start):
            end = string.find("\n", start)
            end = len(string) if end < 0 else end
            token = sc.Boundary(string[start:end].strip("\t\r\n"),
                                sc._grab_newline(start, string, -1),
                                sc._grab_newline(end, string, 1))
        elif string.startswith(("\r\n", "\n"), start):
            end = start + (1 if string[start] == "\n" else 2)
            token = sc._EMPTY_LINE
        else:
            m = tokenizer.match(string, start)
            if m is None:
                continue
            end = m.end()
            if m.group("ctype"):
                token = sc.parsing.parse_header(m.group("ctype"))[1]
            elif m.group("boundary"):
                token = sc.Boundary(m.group("boundary").strip("\t\r\n"),
                                    sc._grab_newline(m.start(), string, -1),
                                    sc._grab_newline(m.end(), string, 1))
            else:
                token = sc._EMPTY_LINE
        tokens.append(token)
    return sc._filter_false_tokens(tokens)


def scan(string: str) -> Any:
    """flanker.mime.from_string(string) (its scanner.scan), with the tokenizer above."""
    if not FAST_SCAN:
        return flanker_mime.from_string(string)
    sc = flanker_scanner
    tokens = flanker_tokens(string)
    if not tokens:
        tokens = [sc.default_content_type()]
    try:
        return sc.traverse(sc.Start(), sc.TokensIterator(tokens, string))
    except DecodingError:
        raise
    except Exception as cause:
        raise DecodingError("Malformed MIME message") from cause


@dataclass
class PartHead:
    """What the leaf needs of flanker's parse of a part's header block (Stream._load_headers)."""

    body_start: int
    encoding: Any
    disposition: Any
    has_content_id: bool


# The header names flanker parses into values with parameters; only they can make its
# header parse raise, and two of them are all a leaf reads (Content-Type comes from the scan).
_PARAMETRIZED = ("content-type", "content-disposition", "content-transfer-encoding")


def part_head(string: str, start: int) -> PartHead | None:
    """flanker's header parse of the part at `start`, computing only what a leaf reads.

    Lines are read and unfolded as flanker's parsing.parse_stream does; flanker's own
    parse_header runs on the parametrized fields (in order, so it raises where flanker
    would), the others cannot fail there and are not parsed. None: a case not covered.
    """
    is_header = flanker_parsing._RE_HEADER.match
    lines: list[str] = []
    pos, size = start, len(string)
    while pos < size:
        newline = string.find("\n", pos)
        stop = size if newline < 0 else newline + 1
        line = string[pos:stop]
        if line in ("\r\n", "\r", "\n"):
            pos = stop
            break
        if not is_header(line):
            break
        lines.append(line)
        pos = stop
    fields: list[str] = []
    for line in lines:
        if line.startswith("From "):
            continue
        if line[0] in " \t":
            if fields:
                fields[-1] += line
            continue
        fields.append(line)
    encoding: Any = None
    disposition: Any = None
    has_content_id = False
    for raw_field in fields:
        field_text = raw_field.rstrip("\r\n")
        name, colon, _ = field_text.partition(":")
        if not colon:
            return None
        key = name.rstrip().lower()
        if key in _PARAMETRIZED:
            value = flanker_parsing.parse_header(field_text)[1]
            # flanker's headers are a MultiDict whose get() answers the last value.
            if key == "content-transfer-encoding":
                encoding = value
            elif key == "content-disposition":
                disposition = value
        elif key == "content-id":
            has_content_id = True
    return PartHead(pos, encoding, disposition, has_content_id)
