"""Priority the sender declared, from headers and subject markers: critical|high|medium|low|None.

Mapping (explicit words beat numeric header hints; the first rule that matches wins):

1. Subject markers (bracketed or leading tags, case-insensitive, English and Russian):
   - critical: "[CRITICAL]", "[P1]", "[SEV1]", "[BLOCKER]", "КРИТИЧНО"/"Критично", "АВАРИЯ",
     "priority: critical"
   - high: "[URGENT]", "URGENT:", "[P2]", "[SEV2]", "СРОЧНО"/"Срочно", "priority: high",
     "приоритет: высокий"
   - medium: "[P3]", "priority: medium|normal", "приоритет: средний"
   - low: "[P4]", "[P5]", "priority: low", "приоритет: низкий"
2. `Priority:` header (RFC 2156): "urgent" -> high, "non-urgent" -> low, "normal" -> None.
3. `Importance:` header: "high" -> high, "low" -> low, "normal" -> None.
4. `X-Priority:` (and `X-MSMail-Priority:`): 1 "Highest" and 2 "High" -> high, 4 and 5 -> low,
   3 "Normal" -> None.

A header never yields "critical": mail clients set "high" with one click, so only explicit words
in the subject escalate to critical. "Normal" markers in headers are no declaration (None), since
clients send them by default; an explicit medium subject marker is a declaration.
"""

from __future__ import annotations

import re

from parsers.model import Priority

_SUBJECT_RULES: tuple[tuple[Priority, re.Pattern[str]], ...] = (
    ("critical", re.compile(
        r"\[\s*(?:critical|crit|p1|sev\s*-?1|blocker|критично|критичн\w*|авария)\s*\]"
        r"|^\s*(?:critical|критично|авария)\s*[:!]"
        r"|\b(?:критично|авария)\b"
        r"|\bpriority\s*[:=]\s*(?:critical|p1)\b"
        r"|\bприоритет\s*[:=]?\s*(?:критический|p1)\b",
        re.IGNORECASE)),
    ("high", re.compile(
        r"\[\s*(?:urgent|p2|sev\s*-?2|high|срочно|высокий)\s*\]"
        r"|^\s*(?:urgent|срочно)\s*[:!]"
        r"|\bсрочно\b|\burgent\b"
        r"|\bpriority\s*[:=]\s*(?:high|p2|urgent)\b"
        r"|\bприоритет\s*[:=]?\s*(?:высокий|p2)\b",
        re.IGNORECASE)),
    ("medium", re.compile(
        r"\[\s*(?:p3|sev\s*-?3)\s*\]"
        r"|\bpriority\s*[:=]\s*(?:medium|normal|p3)\b"
        r"|\bприоритет\s*[:=]?\s*(?:средний|обычный|p3)\b",
        re.IGNORECASE)),
    ("low", re.compile(
        r"\[\s*(?:p4|p5|sev\s*-?[45])\s*\]"
        r"|\bpriority\s*[:=]\s*(?:low|p4|p5)\b"
        r"|\bприоритет\s*[:=]?\s*(?:низкий|p4|p5)\b",
        re.IGNORECASE)),
)


def subject_priority(subject: str | None) -> Priority | None:
    """Priority declared by a marker in the subject, or None."""
    if not subject:
        return None
    for level, pattern in _SUBJECT_RULES:
        if pattern.search(subject):
            return level
    return None


def _first(headers: dict[str, list[str]], name: str) -> str:
    values = headers.get(name)
    return values[0].strip().lower() if values else ""


def header_priority(headers: dict[str, list[str]]) -> Priority | None:
    """Priority declared by Priority / Importance / X-Priority headers, or None."""
    prio = _first(headers, "priority")
    if prio.startswith("urgent"):
        return "high"
    if prio.startswith("non-urgent"):
        return "low"
    importance = _first(headers, "importance")
    if importance.startswith("high"):
        return "high"
    if importance.startswith("low"):
        return "low"
    x_prio = _first(headers, "x-priority") or _first(headers, "x-msmail-priority")
    m = re.match(r"\s*([1-5])", x_prio)
    if m:
        number = int(m.group(1))
        return "high" if number <= 2 else ("low" if number >= 4 else None)
    if x_prio.startswith(("highest", "high", "urgent")):
        return "high"
    if x_prio.startswith(("lowest", "low")):
        return "low"
    return None


def declared_priority(headers: dict[str, list[str]], subject: str | None) -> Priority | None:
    """The sender's declared priority: subject markers first, then headers (see module doc)."""
    return subject_priority(subject) or header_priority(headers)
