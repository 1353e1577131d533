"""Strip quoted history and signatures from a reply, leaving what the sender just wrote.

Each line is classified (empty, delimiter, mobile signature, embedded-mail marker, header line,
quote, text), the classes are joined into a pattern string and a few rules on that pattern decide
where the new text ends, in the spirit of discourse's email_reply_trimmer (MIT).
"""

from __future__ import annotations

import re
from pathlib import Path

from parsers.quote_rules import (
    EMBEDDED_MULTILINE,
    classify_line,
    ends_with_wrote,
    is_signoff,
)

_SHORT_LINE = 60
# One pattern per colon: starting with a literal, re finds candidates far faster than with
# the class "[:：]".
_COLON_AT_LINE_END = (re.compile(r":[ \t]*$", re.MULTILINE), re.compile(r"：[ \t]*$", re.MULTILINE))


def _join_multiline_markers(text: str) -> str:
    """Put an "On <date>, <someone> wrote:" marker that was wrapped onto several lines on one."""

    def _join(m: re.Match[str]) -> str:
        block = m.group(0)
        return block if block.count("\n") > 4 else re.sub(r"\n[ \t]*", " ", block)

    # Every such marker ends a line with a colon, the first two right after a "wrote" verb,
    # the third after a ">"; most texts have no such line at all. Joining lines keeps each
    # block's last line, so the test on the text as it came holds for all three passes.
    wrote = address = False
    for regex in _COLON_AT_LINE_END:
        for colon in regex.finditer(text):
            core = text[text.rfind("\n", 0, colon.start()) + 1:colon.start()].rstrip(" \t")
            wrote = wrote or ends_with_wrote(core)
            address = address or core.endswith(">")
    attribution, dated, dated_address, address_below = EMBEDDED_MULTILINE
    for regex, possible in ((attribution, wrote), (dated, wrote), (dated_address, address),
                            (address_below, address)):
        if possible:
            text = regex.sub(_join, text)
    return text


def _protect_code_blocks(lines: list[str], pattern: list[str]) -> None:
    """Lines inside ``` fences are text: "####" or "> x" there is code, not a rule or quote."""
    inside = False
    for i, line in enumerate(lines):
        if line.strip().startswith("```"):
            inside = not inside
            pattern[i] = "t"
        elif inside:
            pattern[i] = "t"


def _mark_header_blocks(lines: list[str], pattern: list[str]) -> None:
    """Turn a run of 2+ mail header lines ("From:", "Sent:", "To:"...) into an embedded marker."""
    i = 0
    while i < len(lines):
        if pattern[i] != "h":
            i += 1
            continue
        j, count = i, 0
        while j < len(lines) and (pattern[j] == "h" or (pattern[j] == "e" and count < 2)):
            count += pattern[j] == "h"
            j += 1
        if count >= 2:
            pattern[i] = "b"
            start = i - 1
            # A rule ("_____" / "-----") just above the header block belongs to it.
            while start >= 0 and pattern[start] in "de":
                if pattern[start] == "d":
                    pattern[start] = "b"
                    pattern[i] = "h"
                    break
                start -= 1
        i = max(j, i + 1)


def _strip_signoff(lines: list[str]) -> list[str]:
    """Drop a closing "Best regards / С уважением" block when only a short signature follows."""
    for idx in range(len(lines) - 1, max(-1, len(lines) - 9), -1):
        if is_signoff(lines[idx]):
            tail = [x for x in lines[idx + 1:] if x.strip()]
            # A lone name under the sign-off is part of the message; a block with title,
            # phone or company is a signature.
            if (2 <= len(tail) <= 6 and all(len(x.strip()) <= _SHORT_LINE for x in tail)
                    and any(x.strip() for x in lines[:idx])):
                return lines[:idx]
            break
    return lines


def strip_reply(text: str) -> str:
    """The new text of a reply: quotes, embedded history, delimiters and signatures removed."""
    if not text or not text.strip():
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\xa0" in text or "\u202f" in text:
        # French mailers write "a\xa0écrit\xa0:"; a no-break space is a space to every rule.
        text = text.replace("\xa0", " ").replace("\u202f", " ")
    text = _join_multiline_markers(text)
    lines = text.split("\n")
    pattern = [classify_line(line) for line in lines]
    if "```" in text:
        _protect_code_blocks(lines, pattern)
    if "h" in pattern:
        _mark_header_blocks(lines, pattern)
    # Lines that look like headers but do not form a block are ordinary text.
    pattern = ["t" if p == "h" and (i == 0 or pattern[i - 1] != "b") else p
               for i, p in enumerate(pattern)]
    joined = "".join(pattern)
    # An attribution line heading the message with no quote under it (the quoted text was
    # pasted unmarked, or the reply follows): only the marker line goes.
    lead = re.match(r"e*b", joined)
    if lead and "q" not in joined and "t" in joined[lead.end():]:
        del lines[lead.end() - 1]
        joined = joined[: lead.end() - 1] + joined[lead.end():]

    # Reply written below the quote ("bottom posting"): keep the text after the quote.
    bottom = re.fullmatch(r"e*b[bqeh]*?q[qeh]*(t[et]*)", joined)
    if bottom and "q" in joined[: bottom.start(1)]:
        kept = lines[bottom.start(1):]
        kept_pattern = joined[bottom.start(1):]
    else:
        cut = len(lines)
        first_text = joined.find("t")
        for marker in ("d", "b"):
            pos = joined.find(marker, first_text if first_text >= 0 else 0)
            if first_text >= 0 and pos > first_text:
                cut = min(cut, pos)
        kept = lines[:cut]
        kept_pattern = joined[:cut]
    # Trailing quotes (top posting with a quote but no marker) and mobile signatures go.
    kept = [line for line, p in zip(kept, kept_pattern, strict=True) if p != "s"]
    kept_pattern = kept_pattern.replace("s", "")
    trailing = re.search(r"[qe]+$", kept_pattern)
    if trailing and "t" in kept_pattern[: trailing.start()]:
        kept = kept[: trailing.start()]
    kept = _strip_signoff(kept)
    result = "\n".join(line.rstrip() for line in kept).strip("\n")
    return result if result.strip() else ""


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        from parsers.charsets import decode_bytes

        return decode_bytes(data, None, str(path))[0]


def reply_text_of_file(path: str | Path) -> str:
    """Reply text of a .eml (parsed), .html (rendered) or plain-text file."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix == ".eml":
        from parsers.email import parse_email

        return parse_email(file.read_bytes()).reply_text
    if suffix in (".html", ".htm"):
        from parsers.html import html_to_text

        return strip_reply(html_to_text(_read_text(file)))
    return strip_reply(_read_text(file))
