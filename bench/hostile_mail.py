"""Pathological but legal mail for the adversarial tests and the stall bench."""

from __future__ import annotations


def nested_boundaries(filler_bytes: int, depth: int = 19, line: bytes = b"--",
                      message_id: str = "<nested-boundaries@hostile.example>") -> bytes:
    """DEPTH nested multipart/mixed parts, never closed, then FILLER_BYTES of LINE lines:
    within every default limit, and the shape that held the event loop for 53 s."""
    head = [b"From: Hostile Sender <hostile@hostile.example>\r\nTo: support@example.com\r\n"
            b"Subject: nested boundaries\r\nMessage-ID: " + message_id.encode() + b"\r\n"]
    for level in range(depth):
        head.append(b'Content-Type: multipart/mixed; boundary="level%d"\r\n\r\n--level%d\r\n'
                    % (level, level))
    head.append(b"Content-Type: text/plain\r\n\r\n")
    return b"".join(head) + (line + b"\r\n") * (filler_bytes // (len(line) + 2))


def bare_lf(body_bytes: int = 4000, message_id: str = "<bare-lf@hostile.example>") -> bytes:
    """A message with LF line ends only, as Python's `as_bytes()` writes one."""
    lines = [b"From: Ivan Petrov <ivan@acme.example>", b"To: support@example.com",
             b"Subject: The printer on floor 3 does not print",
             b"Message-ID: " + message_id.encode(), b""]
    sentence = b"The printer on floor 3 does not print anything since this morning."
    lines += [sentence] * (body_bytes // len(sentence) + 1)
    return b"\n".join(lines) + b"\n"
