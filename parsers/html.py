"""Render HTML mail bodies as readable plain text (inscriptis), whatever state the HTML is in."""

from __future__ import annotations

import html as html_lib
import re

_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_DROP = re.compile(r"<(script|style|head|title)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BREAK = re.compile(r"<\s*(br|/p|/div|/tr|/li|/h[1-6]|/blockquote|p|div|tr|li)\b[^>]*>",
                    re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_BLANKS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def _crude(markup: str) -> str:
    """Tag stripper used only when inscriptis/lxml give up."""
    text = _DROP.sub("", markup)
    text = _BREAK.sub("\n", text)
    text = html_lib.unescape(_TAG.sub("", text))
    return _BLANKS.sub("\n\n", text)


def html_to_text(markup: str) -> str:
    """Plain text of an HTML document or fragment; never raises."""
    if not markup or not markup.strip():
        return ""
    # lxml rejects str input that still carries an encoding declaration.
    markup = _XML_DECL.sub("", markup).replace("\x00", "")
    try:
        from inscriptis import get_text

        text = str(get_text(markup))
    except Exception:
        text = _crude(markup)
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip("\n")
