"""`check-config` and `rules check` report every problem of every file in one run."""

from __future__ import annotations

from pathlib import Path

from tests.gateway.cli.test_cli import cli

CUSTOMERS = '''[[customer]]
id = "acme"
tier = "premium"
emails = ["ivan@acme.example", "boss@acme,example", "noat.example", "anna@почта.рф"]
phones = ["+7 495 123-45-67", "call me", "8 (812) 555-01-02", "1234"]

[[customer]]
id = "acme"
tier = "silver"
'''
RULES = '''[[rule]]
name = "bad name!"
colour = "red"
[rule.when]
channel = "pigeon"
[rule.then]
priority = "urgent"

[[rule]]
name = "fine"
[rule.then]
priority = "high"

[[rule]]
name = "no-actions"
'''


def test_every_problem_of_every_file_in_one_run(tmp_path: Path) -> None:
    """The config's own problem, the customers file's (bad addresses and phone numbers named,
    an unknown tier, a duplicate id) and the rules file's (several in one rule) all come out
    of one check-config, exit 2; `rules check` lists the rules file's alone."""
    config = tmp_path / "config.toml"
    config.write_text('[files]\ncustomers = "customers.toml"\nrules = "rules.toml"\n\n'
                      '[intake]\nunknown_customer_tier = "gold"\n', encoding="utf-8")
    (tmp_path / "customers.toml").write_text(CUSTOMERS, encoding="utf-8")
    (tmp_path / "rules.toml").write_text(RULES, encoding="utf-8")
    customers, rules = tmp_path / "customers.toml", tmp_path / "rules.toml"
    result = cli("check-config", config=config, check=False)
    assert result.returncode == 2 and result.stdout == ""
    rules_lines = [
        f"{rules}:3: rule[0].colour: unknown key 'colour'; a rule has name, description, "
        "when, then",
        f"{rules}:2: rule[0].name: expected a name: letters, digits, '-', '_', '.'",
        f"{rules}:5: rule[0].when.channel: unknown value 'pigeon'; "
        "expected email, phone, web, chat",
        f"{rules}:7: rule[0].then.priority: unknown value 'urgent'; expected critical, high, "
        "medium, low, declared",
        f"{rules}:15: rule[2].name: a rule needs a [rule.then] table of actions"]
    assert result.stderr.splitlines() == [
        f"{config}:6: intake.unknown_customer_tier: unknown tier 'gold'; the policy defines "
        "8/5, 24/7, premium",
        f"{customers}:4: customer[0].emails: not an e-mail address: 'boss@acme,example' (The "
        "part after the @-sign contains invalid characters: ','); 'noat.example' (An email "
        "address must have an @-sign)",
        f"{customers}:5: customer[0].phones: not a phone number: 'call me' (expected digits, "
        "spaces, dashes, brackets, an optional leading +)",
        f"{customers}:9: customer[1].tier: unknown tier 'silver'; expected one of 8/5, 24/7, "
        "premium",
        f"{customers}:8: customer[1].id: duplicate id 'acme'",
        *rules_lines]
    checked = cli("rules", "check", str(rules), check=False)
    assert checked.returncode == 2 and checked.stderr.splitlines() == rules_lines
