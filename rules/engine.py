"""Classify a request and set its priority, recording every reason (the seed's default rule).

Until the rule language lands this applies the one seed rule that needs no classifier:
a request without a detailed description is low priority by default; anything else is medium.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from parsers.model import Priority, Request

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Decision:
    request_type: str
    priority: Priority
    reasons: list[str] = field(default_factory=list)


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def evaluate(request: Request, detailed_description_words: int = 8) -> Decision:
    """The request type and priority for REQUEST, with a human sentence per rule that fired."""
    body = request.reply_text or request.text
    words = word_count(body)
    if words < detailed_description_words:
        return Decision("incident", "low", [
            f"no-detailed-description: {words} words in the description "
            f"(fewer than {detailed_description_words}) -> low"])
    return Decision("incident", "medium", ["default: no rule matched -> medium"])
