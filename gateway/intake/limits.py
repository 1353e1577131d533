"""Structural limits on a raw message, checked by a fast scan before anything parses it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.config.settings import LimitSettings

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_CONTENT_TYPE = re.compile(rb"^content-type[ \t]*:[ \t]*([^\s;]*)", re.I)
_BOUNDARY = re.compile(rb';\s*boundary\s*=\s*(?:"([^"\r\n]*)"|([^;\s]+))', re.I)


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

    def enter(fields: list[bytes], depth: int, position: int) -> int:
        """Note a header block at DEPTH; returns where scanning continues."""
        while True:
            found.depth = max(found.depth, depth)
            media, boundary = _media(fields)
            if media.startswith(b"multipart/") and boundary:
                stack.append((boundary, depth + 1))
                return position
            if media != b"message/rfc822" or depth > limits.mime_depth:
                return position
            # An attached message: its own header block opens the next level.
            fields, position = _header_block(raw, position)
            depth += 1

    position = enter(fields, 0, position)
    while stack and found.parts <= limits.mime_parts and found.depth <= limits.mime_depth:
        # bytes.find, not a regex: a 25 MB base64 attachment is skipped in milliseconds.
        start = raw.find(b"\n--", max(position - 1, 0))
        if start < 0:
            break
        line_end = raw.find(b"\n", start + 1)
        line_end = len(raw) if line_end < 0 else line_end
        # A delimiter line: "--" boundary, optionally "--" (the close), trailing blanks.
        text = raw[start + 3:line_end].rstrip(b"\r \t")
        position = line_end
        level = next((i for i in range(len(stack) - 1, -1, -1)
                      if text in (stack[i][0], stack[i][0] + b"--")), None)
        if level is None:
            continue  # a body line that only looks like a delimiter
        boundary, depth = stack[level]
        del stack[level + 1:]  # inner multiparts left unclosed end here
        if text != boundary:
            stack.pop()  # the close delimiter
            continue
        found.parts += 1
        fields, position = _header_block(raw, min(position + 1, len(raw)))
        position = enter(fields, depth, position)
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
