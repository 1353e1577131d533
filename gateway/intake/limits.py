"""Structural limits on a raw message, checked by a fast scan before anything parses it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.config.settings import LimitSettings

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_CONTENT_TYPE = re.compile(rb"^content-type[ \t]*:[ \t]*([^\s;]*)", re.I)
_BOUNDARY = re.compile(rb';\s*boundary\s*=\s*(?:"([^"\r\n]*)"|([^;\s]+))', re.I)
# Bytes one regex call may search: about a millisecond of C time that holds the interpreter
# lock, so the event loop beside a scanning thread waits no longer than that.
_WINDOW = 1 << 20
# A part's header block is looked at this far at most. Its end is the first line that is
# not a field (as the e-mail package's parser has it), found by a regex in C: a Python step
# per line made 500 parts without blank lines cost seconds each.
_PART_HEADER_BYTES = 64 << 10
_FIELD_LINES = re.compile(rb"(?:[^\s:]+[ \t]*:[^\n]*\n(?:[ \t][^\n]*\n)*)*")
_PART_CONTENT_TYPE = re.compile(
    rb"^content-type[ \t]*:[ \t]*([^\s;]*)([^\n]*(?:\n[ \t][^\n]*)*)", re.I | re.M)


@dataclass
class Structure:
    """What the scan counted; parts and depth stop growing once past their limit."""

    header_count: int = 0
    longest_header: int = 0
    parts: int = 1
    depth: int = 0


class LimitExceeded(Exception):
    """A refusal: NAME is the limit's key in [limits], VALUE what the input has."""

    def __init__(self, name: str, value: int, maximum: int) -> None:
        super().__init__(f"{name} {value} exceeds the maximum {maximum}")
        self.name, self.value, self.maximum = name, value, maximum


def _header_block(raw: bytes, start: int) -> tuple[list[bytes], int]:
    """Unfolded header fields from START up to the blank line, and where the body begins."""
    if raw.startswith(b"\n", start) or raw.startswith(b"\r\n", start):
        return [], raw.index(b"\n", start) + 1
    match = _HEADER_END.search(raw, start)
    end, body = (match.start(), match.end()) if match else (len(raw), len(raw))
    fields: list[bytes] = []
    for line in raw[start:end].split(b"\n"):
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line  # a folded continuation belongs to the field before it
        elif line:
            fields.append(line)
    return fields, body


def _media(fields: list[bytes]) -> tuple[bytes, bytes | None]:
    """The Content-Type's type/subtype (lowercase) and its boundary, if any."""
    for field in fields:
        if match := _CONTENT_TYPE.match(field):
            boundary = _BOUNDARY.search(field)
            value = (boundary.group(1) if boundary.group(1) is not None
                     else boundary.group(2)) if boundary else None
            return match.group(1).lower(), value
    return b"text/plain", None


def _delimiters(stack: list[tuple[bytes, int]]) -> re.Pattern[bytes]:
    """A delimiter line of any open multipart: group 1 the boundary, group 2 "--" if it closes.

    Longest boundaries first, so one that is another's prefix cannot shadow it; the regex
    runs in C and only lines that begin with "--" and an open boundary cost anything."""
    names = sorted({boundary for boundary, _ in stack}, key=len, reverse=True)
    return re.compile(rb"\n--(" + b"|".join(map(re.escape, names))
                      + rb")(--)?[ \t\r]*(?=\n|\Z)")


def _next_delimiter(raw: bytes, pattern: re.Pattern[bytes], position: int,
                    longest: int) -> re.Match[bytes] | None:
    """The first delimiter line at or after POSITION, searched a window at a time so that no
    single C call holds the interpreter lock for long (the scan runs in a thread beside the
    event loop). A window's end looks like the end of the input to the regex, so a match
    that ends there is searched again in a wider window."""
    size = len(raw)
    start = position
    while start < size:
        end = min(size, start + _WINDOW)
        match = pattern.search(raw, start, end)
        while match is not None and match.end() == end < size:
            end = min(size, end + _WINDOW)
            match = pattern.search(raw, match.start(), end)
        if match is not None:
            return match
        if end >= size:
            return None
        # A delimiter cut by the window's end begins again in the next one.
        start = max(start + 1, end - longest - 8)
    return None


def _part_header(raw: bytes, start: int) -> tuple[bytes, bytes | None, int]:
    """A part's (or attached message's) Content-Type as `_media` gives it, and where its body
    begins: after the blank line, or at the first line that is not a header field."""
    if raw.startswith(b"\n", start) or raw.startswith(b"\r\n", start):
        return b"text/plain", None, raw.index(b"\n", start) + 1
    end = _FIELD_LINES.match(raw, start, start + _PART_HEADER_BYTES)
    assert end is not None  # the pattern matches the empty string
    stop = body = end.end()
    if raw.startswith(b"\r\n", stop):
        body += 2
    elif raw.startswith(b"\n", stop):
        body += 1
    field = _PART_CONTENT_TYPE.search(raw, start, stop)
    if field is None:
        return b"text/plain", None, body
    boundary = _BOUNDARY.search(re.sub(rb"\r?\n", b"", field.group(2)))
    value = (boundary.group(1) if boundary.group(1) is not None
             else boundary.group(2)) if boundary else None
    return field.group(1).lower(), value, body


def scan(raw: bytes, limits: LimitSettings) -> Structure:
    """Count top-level header fields and MIME parts and nesting without decoding anything.

    Only delimiter lines and part headers are looked at (regex scans in C), so a large
    base64 attachment costs one pass of a regex; the full parse comes later, in processing.
    """
    found = Structure()
    fields, position = _header_block(raw, 0)
    found.header_count = len(fields)
    found.longest_header = max((len(f) for f in fields), default=0)
    # Open multiparts: boundary -> depth of their parts, innermost last.
    stack: list[tuple[bytes, int]] = []

    def enter(media: bytes, boundary: bytes | None, depth: int, position: int) -> int:
        """Note a header block at DEPTH; returns where scanning continues."""
        while True:
            found.depth = max(found.depth, depth)
            if media.startswith(b"multipart/") and boundary:
                stack.append((boundary, depth + 1))
                return position
            if media != b"message/rfc822" or depth > limits.mime_depth:
                return position
            # An attached message: its own header block opens the next level.
            media, boundary, position = _part_header(raw, position)
            depth += 1

    position = enter(*_media(fields), 0, position)
    # Only delimiter lines of open multiparts are looked at, by one regex in C per window:
    # the scan is linear in the message's size whatever its lines look like (a Python step
    # per "--" line took 53 s for 25 MB of them under 19 nested multiparts).
    while stack and found.parts <= limits.mime_parts and found.depth <= limits.mime_depth:
        longest = max(len(boundary) for boundary, _ in stack)
        match = _next_delimiter(raw, _delimiters(stack), max(position - 1, 0), longest)
        if match is None:
            break
        position = match.end()
        # A delimiter line: "--" boundary, optionally "--" (the close), trailing blanks.
        text = match.group(1) + (match.group(2) or b"")
        level = next(i for i in range(len(stack) - 1, -1, -1)
                     if text in (stack[i][0], stack[i][0] + b"--"))
        boundary, depth = stack[level]
        del stack[level + 1:]  # inner multiparts left unclosed end here
        if text != boundary:
            stack.pop()  # the close delimiter
            continue
        found.parts += 1
        media, inner, position = _part_header(raw, min(position + 1, len(raw)))
        position = enter(media, inner, depth, position)
    return found


def check_attachments(count: int, limits: LimitSettings) -> None:
    """Raise LimitExceeded when a parsed message has more attachments than allowed."""
    if count > limits.attachments:
        raise LimitExceeded("attachments", count, limits.attachments)


def check_structure(raw: bytes, limits: LimitSettings) -> None:
    """Raise LimitExceeded for the first limit RAW is over."""
    found = scan(raw, limits)
    for name, value in (("header_count", found.header_count),
                        ("header_line_bytes", found.longest_header),
                        ("mime_parts", found.parts), ("mime_depth", found.depth)):
        maximum: int = getattr(limits, name)
        if value > maximum:
            raise LimitExceeded(name, value, maximum)
