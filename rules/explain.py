"""`explain`: the decision on one request and every rule's hit or miss, as JSON-able data."""

from __future__ import annotations

from typing import Any

from parsers.model import Request
from rules.engine import RuleSet, evaluate
from rules.facts import Sender


def explain(request: Request, ruleset: RuleSet, sender: Sender | None = None,
            in_working_hours: bool | None = None) -> dict[str, Any]:
    """What `rules explain` prints and `POST /api/v1/rules/explain` returns."""
    decision = evaluate(request, ruleset, sender, in_working_hours)
    by_name = {rule.name: rule for rule in ruleset.rules}
    return {
        "source": ruleset.source,
        "decision": {k: v for k, v in decision.as_json().items() if k != "trace"},
        "rules": [{"rule": hit.rule, "line": by_name[hit.rule].line, "fired": hit.fired,
                   "error": hit.error, "when": by_name[hit.rule].when.describe(),
                   "then": by_name[hit.rule].then.effects()}
                  for hit in decision.trace],
    }
