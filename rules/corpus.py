"""Labelled corpora: read requests (.eml, payload .json) and score a rule set against labels."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from parsers.model import PRIORITIES, Address, Request
from rules.engine import REQUEST_TYPES, RuleSet, describe_facts, evaluate
from rules.facts import Sender

LABELS_FILE = "labels.csv"
# A labelled set as JSON lines: id, subject, body, priority, type (shared/corpora/requests).
JSONL_FILE = "requests.jsonl"


def request_from_payload(payload: dict[str, Any]) -> Request:
    """A phone or web ticket in CONTRACT.md's generic JSON as a Request."""
    if not isinstance(payload, dict):
        raise ValueError("a payload is a JSON object")
    description = str(payload.get("description") or "")
    email = payload.get("contact_email")
    declared = payload.get("declared_priority")
    started = payload.get("started_at")
    return Request(
        channel="web" if payload.get("channel") == "web" else "phone",
        subject=str(payload.get("subject") or "") or None,
        text=description, reply_text=description,
        sender=Address(None, str(email)) if email else None,
        phone=str(payload["caller"]) if payload.get("caller") else None,
        declared_priority=declared if declared in PRIORITIES else None,
        date=datetime.fromisoformat(str(started).replace("Z", "+00:00")) if started else None,
    )


def read_request(path: Path) -> tuple[Request, str | None]:
    """The request in an .eml or payload .json file, and the payload's customer id if any."""
    if path.suffix.lower() == ".json":
        payload = json.loads(path.read_text(encoding="utf-8"))
        request = request_from_payload(payload)
        customer = payload.get("customer") if isinstance(payload, dict) else None
        return request, str(customer) if customer else None
    from parsers.email import parse_email  # only the gateway's parser reads mail

    return parse_email(path.read_bytes()), None


@dataclass(frozen=True)
class Label:
    file: str
    priority: str
    request_type: str


def read_labels(directory: Path) -> list[Label]:
    """`labels.csv`: file,priority,type per line; bad rows raise ValueError naming the line."""
    path = directory / LABELS_FILE
    labels = []
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            priority, request_type = row.get("priority"), row.get("type")
            known = priority in PRIORITIES and request_type in REQUEST_TYPES
            if not row.get("file") or not known:
                raise ValueError(f"{path}:{number}: expected file,priority,type with a known "
                                 "priority and type")
            labels.append(Label(str(row["file"]), str(priority), str(request_type)))
    return labels


@dataclass
class Score:
    total: int = 0
    priority_right: int = 0
    type_right: int = 0
    # (expected, got) -> count
    priority_matrix: Counter[tuple[str, str]] = field(default_factory=Counter)
    type_matrix: Counter[tuple[str, str]] = field(default_factory=Counter)
    rule_hits: Counter[str] = field(default_factory=Counter)
    misses: list[dict[str, str]] = field(default_factory=list)
    # Requests labelled critical that were decided medium or low: the costliest miss.
    critical_below_high: int = 0

    @property
    def priority_accuracy(self) -> float:
        return self.priority_right / self.total if self.total else 0.0

    @property
    def type_accuracy(self) -> float:
        return self.type_right / self.total if self.total else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "priority_accuracy": round(self.priority_accuracy, 4),
            "type_accuracy": round(self.type_accuracy, 4),
            "priority_confusion": _matrix(self.priority_matrix, PRIORITIES),
            "type_confusion": _matrix(self.type_matrix, REQUEST_TYPES),
            "critical_below_high": self.critical_below_high,
            "rule_hits": dict(self.rule_hits),
            "misses": self.misses,
        }


def _matrix(counts: Counter[tuple[str, str]], names: tuple[str, ...]) -> dict[str, dict[str, int]]:
    return {expected: {got: counts[(expected, got)] for got in names} for expected in names}


def read_jsonl(path: Path) -> list[tuple[Label, Request, str | None]]:
    """A JSON-lines set: each line {id, subject, body, priority, type[, sender, customer]};
    the body is a mail's text, so quoted history and signature are stripped as for mail."""
    from parsers.quotes import strip_reply  # the same stripping as the e-mail parser's

    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            label = Label(str(item["id"]), str(item["priority"]), str(item["type"]))
            body = str(item.get("body") or "")
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number}: not a labelled request: {error}") from None
        if label.priority not in PRIORITIES or label.request_type not in REQUEST_TYPES:
            raise ValueError(f"{path}:{number}: unknown priority or type")
        sender = item.get("sender")
        request = Request(channel="email", subject=item.get("subject") or None, text=body,
                          reply_text=strip_reply(body),
                          sender=Address(None, str(sender)) if sender else None)
        rows.append((label, request, item.get("customer")))
    return rows


def labelled(directory: Path) -> list[tuple[Label, Request, str | None]]:
    """Every labelled request of DIRECTORY (labels.csv with its files, or requests.jsonl), or
    of a .jsonl file given itself."""
    if directory.suffix == ".jsonl":
        return read_jsonl(directory)
    if not (directory / LABELS_FILE).exists() and (directory / JSONL_FILE).exists():
        return read_jsonl(directory / JSONL_FILE)
    return [(label, *read_request(directory / label.file)) for label in read_labels(directory)]


def score(directory: Path, ruleset: RuleSet, tiers: dict[str, str] | None = None,
          match_sender: Callable[[str | None], tuple[str, str] | None] | None = None) -> Score:
    """Evaluate every labelled request in DIRECTORY; TIERS maps customer ids to tiers and
    MATCH_SENDER finds a sender's (customer, tier) as the daemon does."""
    result = Score()
    for rule in ruleset.rules:
        result.rule_hits[rule.name] = 0
    for label, request, customer in labelled(directory):
        matched = match_sender(request.sender.address if request.sender else None) if (
            customer is None and match_sender) else None
        sender = (Sender(*matched) if matched
                  else Sender(customer, (tiers or {}).get(customer or "")))
        decision = evaluate(request, ruleset, sender)
        result.total += 1
        result.priority_right += decision.priority == label.priority
        result.type_right += decision.request_type == label.request_type
        result.priority_matrix[(label.priority, decision.priority)] += 1
        result.type_matrix[(label.request_type, decision.request_type)] += 1
        result.rule_hits.update(decision.fired)
        if decision.priority != label.priority or decision.request_type != label.request_type:
            result.misses.append({"file": label.file,
                                  "expected": f"{label.priority}/{label.request_type}",
                                  "got": f"{decision.priority}/{decision.request_type}",
                                  "fired": ", ".join([decision.row or "", *decision.fired]),
                                  "facts": describe_facts(decision.facts)
                                  if decision.facts else ""})
        result.critical_below_high += (label.priority == "critical"
                                       and decision.priority in ("medium", "low"))
    return result
