"""Render HTML mail bodies as readable plain text (inscriptis), whatever state the HTML is in."""

from __future__ import annotations

import functools
import html as html_lib
import re
from typing import Any

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


@functools.cache
def _config() -> Any:
    """inscriptis' relaxed profile, but a <span> is inline text without spaces around it:
    mailers split words into spans ("ser<span>ver</span>"), and the spaces broke them."""
    from inscriptis.css_profiles import CSS_PROFILES
    from inscriptis.model.config import ParserConfig

    css = dict(CSS_PROFILES["relaxed"])
    css.pop("span", None)  # the strict profile has no entry: a plain inline element
    return ParserConfig(css=css)


def html_to_text(markup: str) -> str:
    """Plain text of an HTML document or fragment; never raises."""
    if not markup or not markup.strip():
        return ""
    # lxml rejects str input that still carries an encoding declaration.
    markup = _XML_DECL.sub("", markup).replace("\x00", "")
    try:
        from inscriptis import get_text

        text = str(get_text(markup, _config()))
    except Exception:
        text = _crude(markup)
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip("\n")


_ENRICHED_PARAM = re.compile(r"<param>.*?</param>", re.IGNORECASE | re.DOTALL)
_ENRICHED_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]{0,59}>")
_ENRICHED_BREAKS = re.compile(r"\n(\n*)")


def enriched_to_text(markup: str) -> str:
    """Plain text of a text/enriched (RFC 1896) or text/richtext (RFC 1341) body: formatting
    commands dropped, a lone line break is a space, N breaks are N-1, "<<" is "<"."""
    text = _ENRICHED_PARAM.sub("", markup.replace("\r\n", "\n").replace("<<", "\x00"))
    text = _ENRICHED_BREAKS.sub(lambda m: m.group(1) or " ", text)
    text = re.sub(r"<nl>", "\n", text, flags=re.IGNORECASE)  # richtext's explicit break
    return _ENRICHED_TAG.sub("", text).replace("\x00", "<").strip()
