"""The seed's priority definitions as a table over facts: the first row that holds decides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rules.triage.facts import Failure, TriageFacts

# What a row may test, and where the value comes from: the failure the row is tried on, or the
# request as a whole.
FAILURE_KEYS = ("kind", "affected", "severity", "scope")
REQUEST_KEYS = ("workaround", "detail", "type", "impact", "failure", "overall_scope")
KEYS = FAILURE_KEYS + REQUEST_KEYS


@dataclass(frozen=True)
class Row:
    """`priority` when every condition holds; `reason` says why, in the seed's words."""

    priority: str
    reason: str
    when: Mapping[str, tuple[str, ...]]
    name: str = ""
    line: int = 0
    # The reason in Russian, for Russian customers (`reason_ru`).
    reason_ru: str = ""

    def holds(self, facts: TriageFacts, failure: Failure | None) -> bool:
        return self.holds_for(values_of(facts, failure))

    def holds_for(self, values: Mapping[str, str]) -> bool:
        """Whether every condition holds for VALUES (see values_of)."""
        return all(values[key] in allowed for key, allowed in self.when.items())

    def describe(self) -> str:
        return " and ".join(f"{k} = {'|'.join(v)}" for k, v in self.when.items()) or "always"


def values_of(facts: TriageFacts, failure: Failure | None) -> dict[str, str]:
    """What each of KEYS is for FAILURE (None: the request as a whole) of FACTS."""
    return {
        "kind": failure.kind if failure else "none",
        "affected": failure.affected if failure else facts.affected.value,
        "severity": failure.severity if failure else "none",
        "scope": failure.scope if failure else facts.scope.value,
        "workaround": facts.workaround.value, "detail": facts.detail.value,
        "type": facts.request_type.value, "impact": facts.impact.value,
        "failure": "yes" if failure else "no", "overall_scope": facts.scope.value,
    }


@dataclass(frozen=True)
class Verdict:
    """The row that decided, and the failure it was tried on (None: the request as a whole)."""

    row: Row
    failure: Failure | None


def decide(table: tuple[Row, ...], facts: TriageFacts) -> Verdict | None:
    """The most urgent verdict over the request's failures (each tried against the table top
    down), or the request as a whole when nothing fails."""
    from rules.engine import rank

    verdicts: list[Verdict] = []
    # Failures that differ only in their words meet the same row: try each kind once.
    distinct = {(f.affected, f.severity, f.scope): f for f in facts.failures}
    tried: list[Failure | None] = [*distinct.values()] or [None]
    for failure in tried:
        values = values_of(facts, failure)
        for row in table:
            if row.holds_for(values):
                verdicts.append(Verdict(row, failure))
                break
    if not verdicts:
        return None
    return min(verdicts, key=lambda v: rank(v.row.priority))


def parse_table(rows: object, source: str, line_of: object = None) -> tuple[Row, ...]:
    """`[[priority_table]]` rows: priority, reason, optional name, and conditions over KEYS
    (a value or a list of values); raises ValueError naming the row and key."""
    from parsers.model import PRIORITIES

    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{source}: priority_table must be a non-empty list of rows")
    table = []
    for index, row in enumerate(rows):
        where = f"{source}: priority_table[{index}]"
        if not isinstance(row, dict):
            raise ValueError(f"{where}: a row is a table")
        priority = row.get("priority")
        if priority not in PRIORITIES:
            raise ValueError(f"{where}: priority: must be one of {', '.join(PRIORITIES)}")
        when: dict[str, tuple[str, ...]] = {}
        for key, value in row.items():
            if key in ("priority", "reason", "name", "reason_ru"):
                continue
            if key not in KEYS:
                raise ValueError(f"{where}: {key}: unknown fact (known: {', '.join(KEYS)})")
            values = (value,) if isinstance(value, str) else value
            if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
                raise ValueError(f"{where}: {key}: a string or a list of strings")
            when[key] = tuple(values)
        line = line_of(index) if callable(line_of) else 0
        table.append(Row(str(priority), str(row.get("reason", "")), when,
                         str(row.get("name", f"row-{index + 1}")), int(line),
                         str(row.get("reason_ru", ""))))
    return tuple(table)
