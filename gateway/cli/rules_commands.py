"""`intake-gateway rules check | explain | test`: what admins run before they reload rules."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config.settings import load_settings

if TYPE_CHECKING:
    from rules.engine import RuleSet

# The rules packages are imported by the commands that use them, not when the command line
# is built: they import structlog, and the daemon (`intake-gateway run`) must configure
# logging before anything does (see gateway.logs.configure_process_logging).

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _ruleset(args: argparse.Namespace) -> RuleSet:
    """--rules FILE, else the configuration's rules file, else the built-in rules."""
    from gateway.config.rules_file import load_rules_file
    from rules.loader import load_rules

    if getattr(args, "rules", None):
        return load_rules(Path(args.rules))
    return load_rules_file(load_settings(args.config).settings.files.rules)


def cmd_check(args: argparse.Namespace) -> int:
    from rules.loader import RulesError, load_rules

    try:
        ruleset = load_rules(Path(args.file)) if args.file else _ruleset(args)
    except RulesError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    print(f"{ruleset.source}: OK, {len(ruleset.rules)} rules")
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from gateway.config.customers import load_customers
    from rules.corpus import read_request
    from rules.explain import explain
    from rules.facts import Sender

    ruleset = _ruleset(args)
    try:
        request, customer_id = read_request(Path(args.path))
    except (OSError, ValueError) as error:
        print(f"intake-gateway: {args.path}: {error}", file=sys.stderr)
        return EXIT_USAGE
    directory = load_customers(load_settings(args.config).settings.files.customers)
    customer = directory.get(customer_id) if customer_id else directory.match_email(
        request.sender.address if request.sender else None)
    sender = Sender(customer.id, customer.tier) if customer else None
    result = explain(request, ruleset, sender)
    if args.json:
        json.dump(result, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    decision = result["decision"]
    print(f"{args.path}: {decision['priority']} / {decision['request_type']}"
          f"   (rules: {result['source']})")
    facts = decision.get("facts")
    if facts:
        print("  facts:")
        for name in ("scope", "affected", "severity", "workaround", "detail", "declared", "type"):
            fact = facts[name]
            words = ", ".join(f'"{w}"' for w in fact["words"])
            print(f"    {name:<11} {fact['value']:<16} {words}")
        for failure in facts["failures"]:
            print(f"    fails:      {failure['affected']} ({failure['severity']}, "
                  f"{failure['scope']}): {', '.join(failure['words'][:4])}")
        print(f"  table row: {decision['table_row']}")
    for reason in decision["reasons"]:
        print(f"  because {reason}")
    if decision["customer_notice"]:
        print(f"  customer is told: {decision['customer_notice']}")
    print()
    for rule in result["rules"]:
        mark = "HIT " if rule["fired"] else "ERR " if rule["error"] else "miss"
        detail = rule["error"] or rule["when"]
        detail = detail if len(detail) <= 90 else detail[:87] + "..."
        print(f"  {mark} {rule['rule']} (line {rule['line']}): {detail}")
    return EXIT_OK


def cmd_test(args: argparse.Namespace) -> int:
    from gateway.config.customers import load_customers
    from rules.corpus import score

    ruleset = _ruleset(args)
    directory = load_customers(load_settings(args.config).settings.files.customers)
    tiers = {c.id: c.tier for c in directory.customers}

    def match_sender(address: str | None) -> tuple[str, str] | None:
        # As the daemon does: the sender's address or domain names the customer.
        customer = directory.match_email(address)
        return (customer.id, customer.tier) if customer else None

    results = []
    for folder in args.dir:
        try:
            results.append(score(Path(folder), ruleset, tiers, match_sender))
        except (OSError, ValueError) as error:
            print(f"intake-gateway: {error}", file=sys.stderr)
            return EXIT_USAGE
    below = False
    for folder, result in zip(args.dir, results, strict=True):
        if args.json:
            json.dump({"corpus": folder, **result.as_json()}, sys.stdout, ensure_ascii=False,
                      indent=2)
            sys.stdout.write("\n")
        else:
            print(f"== {folder}")
            _print_score(result.as_json())
            print()
        below = below or (args.min_accuracy is not None
                          and result.priority_accuracy < args.min_accuracy)
    return EXIT_FAILURE if below else EXIT_OK


def _print_score(data: dict[str, object]) -> None:
    print(f"{data['total']} requests: priority accuracy {data['priority_accuracy']:.1%}, "
          f"type accuracy {data['type_accuracy']:.1%}, "
          f"critical decided below high: {data['critical_below_high']}")
    for title, key in (("priority", "priority_confusion"), ("type", "type_confusion")):
        matrix = data[key]
        assert isinstance(matrix, dict)
        names = list(matrix)
        print(f"\n{title}: expected (rows) x decided (columns)")
        print(" " * 16 + "".join(f"{n[:12]:>13}" for n in names))
        for expected in names:
            print(f"{expected[:15]:<16}" + "".join(f"{matrix[expected][g]:>13}" for g in names))
    hits = data["rule_hits"]
    assert isinstance(hits, dict)
    print("\nrule hits:")
    for name, count in hits.items():
        print(f"  {count:>5}  {name}")
    misses = data["misses"]
    assert isinstance(misses, list)
    if misses:
        print("\nmisses:")
        for miss in misses:
            print(f"  {miss['file']}: expected {miss['expected']}, got {miss['got']}"
                  f" [{miss['fired']}]")
            print(f"      {miss['facts']}")


def add_rules_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The `rules` command group, added to the main parser."""
    rules = commands.add_parser("rules", help="check, explain and test classification rules")
    sub = rules.add_subparsers(dest="rules_command", required=True)
    check = sub.add_parser("check", help="validate a rules file (default: the configured one)")
    check.add_argument("file", nargs="?")
    check.set_defaults(handler=cmd_check)
    explain_parser = sub.add_parser("explain", help="which rules fire on an .eml or payload JSON")
    explain_parser.add_argument("path")
    explain_parser.add_argument("--rules", help="rules file (default: the configured one)")
    explain_parser.add_argument("--json", action="store_true")
    explain_parser.set_defaults(handler=cmd_explain)
    test = sub.add_parser("test", help="score the rules on labelled corpora (folders with "
                          "labels.csv, or requests.jsonl)")
    test.add_argument("dir", nargs="+")
    test.add_argument("--rules", help="rules file (default: the configured one)")
    test.add_argument("--min-accuracy", type=float, help="exit 1 when priority accuracy is lower")
    test.add_argument("--json", action="store_true")
    test.set_defaults(handler=cmd_test)
