"""Strip quoted history and signatures from a reply, leaving what the sender just wrote."""

from __future__ import annotations


def strip_reply(text: str) -> str:
    """The new text of a reply."""
    return text
