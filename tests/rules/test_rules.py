"""The rule language, the engine, the default rule set on the labelled corpus, the commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.config.rules_file import RulesWatcher
from parsers.model import Attachment, Request
from rules.conditions import OneOf
from rules.corpus import score
from rules.engine import Actions, Rule, RuleSet, evaluate
from rules.explain import explain
from rules.facts import Sender
from rules.loader import RulesError, builtin_rules, parse_rules

CORPUS = Path(__file__).resolve().parent.parent / "data" / "requests"


def request(body: str, subject: str = "", **kw: object) -> Request:
    return Request(channel="email", subject=subject, text=body, reply_text=body, **kw)  # type: ignore[arg-type]


def rules(text: str) -> RuleSet:
    return parse_rules(text, "rules.toml")


def problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        rules(text)
    return [str(p) for p in caught.value.problems]


def test_words_are_stemmed_case_folded_and_yo_insensitive() -> None:
    """"не работает" finds "НЕ РАБОТАЮТ"; "ё" and "е" are the same letter; `word*` is a prefix."""
    ruleset = rules('[[rule]]\nname = "a"\n[rule.when]\ntext_words = ["не работает"]\n'
                    '[rule.then]\npriority = "high"\n\n'
                    '[[rule]]\nname = "b"\n[rule.when]\nbody_contains = "ещё"\n'
                    '[rule.then]\ntags = ["yo"]\n\n'
                    '[[rule]]\nname = "c"\n[rule.when]\nbody_words = "перестал* работать"\n'
                    '[rule.then]\ntags = ["stopped"]\n')
    decision = evaluate(request("Звонки у нас ЕЩЕ НЕ РАБОТАЮТ, перестали работать вчера"),
                        ruleset)
    assert decision.priority == "high"
    assert decision.tags == ["yo", "stopped"]
    assert decision.fired == ["a", "b", "c"]
    assert "a: text has the words 'не работает' -> high" in decision.reasons


def test_order_raise_cap_stop_and_declared_priority() -> None:
    """Later rules override; at_least raises, at_most caps; stop ends evaluation."""
    ruleset = rules('''
[[rule]]
name = "set"
[rule.then]
priority = "low"
[[rule]]
name = "raise"
[rule.when]
text_words = "calls drop"
[rule.then]
at_least = "high"
[[rule]]
name = "cap"
[rule.when]
text_words = "one user"
[rule.then]
at_most = "medium"
stop = true
[[rule]]
name = "never"
[rule.then]
priority = "critical"
''')
    assert evaluate(request("calls drop all day"), ruleset).priority == "critical"
    capped = evaluate(request("calls drop for one user", declared_priority="critical"), ruleset)
    assert (capped.priority, capped.fired) == ("medium", ["set", "raise", "cap"])
    assert capped.declared_outcome == "corrected"
    assert capped.customer_notice is not None and "medium" in capped.customer_notice
    assert capped.trace[-1].rule == "never" and not capped.trace[-1].fired


def test_conditions_on_sender_headers_attachments_and_counts() -> None:
    """Globs on sender and attachments, header tests, word counts, all/any/not, tier."""
    ruleset = rules('''
[[rule]]
name = "vip"
[rule.when]
sender_domain = "*.acme.example"
tier = "premium"
header = { name = "X-Mailer", contains = "outlook" }
attachment_name = "*.log"
word_count_at_least = 3
any = [ { channel = "phone" }, { not = { declared_priority = "none" } } ]
[rule.then]
assign_engineer = true
copy_manager = true
suppress_ack = true
hold = true
''')
    from parsers.model import Address
    mail = request("calls drop for everyone", sender=Address(None, "a@mail.acme.example"),
                   headers={"x-mailer": ["Microsoft Outlook 16"]}, declared_priority="high",
                   attachments=[Attachment("trace.LOG", "text/plain", 10)])
    decision = evaluate(mail, ruleset, Sender("acme", "premium"))
    assert decision.fired == ["vip"]
    assert (decision.assign_engineer, decision.copy_manager, decision.suppress_ack,
            decision.hold) == (True, True, True, True)
    assert evaluate(mail, ruleset, Sender("acme", "8/5")).fired == []


def test_a_rule_that_errors_is_a_logged_miss() -> None:
    """An exception inside a condition never stops evaluation: the rule just misses."""

    class Broken(OneOf):
        def check(self, facts: object) -> bool:
            raise RuntimeError("boom")

    ruleset = RuleSet((Rule("broken", "", Broken("channel", ("email",)), Actions(priority="low")),
                       Rule("fine", "", OneOf("channel", ("email",)), Actions(priority="high"))))
    decision = evaluate(request("x"), ruleset)
    assert decision.priority == "high"
    assert decision.trace[0].error == "RuntimeError: boom"


@pytest.mark.parametrize(("text", "expected"), [
    ("", "rules.toml:1: no rules: expected at least one [[rule]]"),
    ('[[rule]]\nname = "a"\n[rule.when]\ntxt_words = "x"\n[rule.then]\npriority = "low"\n',
     "rules.toml:4: rule[0].when.txt_words: unknown condition 'txt_words'"),
    ('[[rule]]\nname = "a"\n[rule.then]\nraise = "low"\n',
     "rules.toml:4: rule[0].then.raise: unknown action 'raise'"),
    ('[[rule]]\nname = "a"\n[rule.then]\npriority = "urgent"\n',
     "rules.toml:4: rule[0].then.priority: unknown value 'urgent'"),
    ('[[rule]]\nname = "a"\n[rule.when]\nword_count_below = "8"\n[rule.then]\nstop = true\n',
     "rules.toml:4: rule[0].when.word_count_below: expected a whole number"),
    ('[[rule]]\nname = "a"\n[rule.when]\nbody_regex = "(unclosed"\n[rule.then]\nstop = true\n',
     "rules.toml:4: rule[0].when.body_regex[0]: regex does not compile"),
    ('[[rule]]\nname = "a"\n[rule.then]\nstop = true\n\n[[rule]]\nname = "a"\n'
     '[rule.then]\nstop = true\n', "rules.toml:7: rule[1].name: duplicate rule name 'a' "
     "(first at line 1)"),
    ("[[rule]\n", "rules.toml:1: TOML syntax"),
])
def test_bad_rules_files_name_file_line_and_problem(text: str, expected: str) -> None:
    """Each kind of mistake is reported with the file, the line and what is wrong."""
    assert any(p.startswith(expected) for p in problems(text)), problems(text)


def test_default_rules_meet_the_accuracy_floor_on_the_labelled_corpus() -> None:
    """At least 90% of the 120+ labelled requests get the labelled priority (type reported)."""
    result = score(CORPUS, builtin_rules())
    assert result.total >= 120
    print(f"priority accuracy {result.priority_accuracy:.1%}, "
          f"type accuracy {result.type_accuracy:.1%}")
    assert result.priority_accuracy >= 0.90, result.misses
    assert result.type_accuracy >= 0.80, result.misses


def test_explain_lists_every_rule_with_its_line() -> None:
    """explain() gives the decision and a hit or miss per rule, as JSON-able data."""
    data = explain(request("Уже час сообщения не доходят до получателей у всего отдела продаж"),
                   builtin_rules())
    json.dumps(data)
    assert data["decision"]["priority"] == "high"
    assert data["decision"]["table_row"] == "high-function-down"
    assert data["decision"]["facts"]["scope"]["value"] == "many"
    assert len(data["rules"]) == len(builtin_rules().rules)
    assert all(r["line"] > 0 and not r["fired"] for r in data["rules"])


def test_commands_check_explain_and_test(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`rules check` exits 2 on a bad file; `rules test` exits 1 under --min-accuracy."""
    bad = tmp_path / "rules.toml"
    bad.write_text('[[rule]]\nname = "a"\n[rule.then]\npriority = "urgent"\n', encoding="utf-8")
    assert main(["rules", "check", str(bad)]) == 2
    assert f"{bad}:4: rule[0].then.priority" in capsys.readouterr().err
    assert main(["rules", "check"]) == 0
    assert main(["rules", "explain", str(CORPUS / "c03.json")]) == 0
    assert "critical / incident" in capsys.readouterr().out
    assert main(["rules", "test", str(CORPUS), "--min-accuracy", "0.9"]) == 0
    assert "priority accuracy" in capsys.readouterr().out
    assert main(["rules", "test", str(CORPUS), "--min-accuracy", "1.01"]) == 1


def test_watcher_reloads_on_change(tmp_path: Path) -> None:
    """A changed rules file triggers a reload; an unchanged one does not."""
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nname = "a"\n[rule.then]\nstop = true\n', encoding="utf-8")
    calls: list[int] = []
    watcher = RulesWatcher(path, lambda: calls.append(1))
    assert not watcher.check()
    path.write_text('[[rule]]\nname = "b"\n[rule.then]\nstop = true\n\n', encoding="utf-8")
    assert watcher.check() and calls == [1]


def test_rules_test_matches_senders_to_customers_and_reads_jsonl(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`rules test` finds the customer by the sender's address, as the daemon does, so a
    customer's own rule fires there; a requests.jsonl corpus is read like labels.csv; several
    corpora are scored in one run, each with its facts for every miss."""
    (tmp_path / "customers.toml").write_text(
        '[[customer]]\nid = "acme"\nname = "ACME"\ntier = "premium"\ndomains = ["acme.example"]\n',
        encoding="utf-8")
    (tmp_path / "rules.toml").write_text(
        '[[rule]]\nname = "acme-calls-critical"\n[rule.when]\ncustomer = "acme"\n'
        'function = "calls"\n[rule.then]\npriority = "critical"\n', encoding="utf-8")
    (tmp_path / "config.toml").write_text(
        '[files]\ncustomers = "customers.toml"\nrules = "rules.toml"\n', encoding="utf-8")
    corpus = tmp_path / "labelled"
    corpus.mkdir()
    rows = [
        {"id": "r1", "subject": "Звонки", "sender": "ivan@acme.example", "priority": "critical",
         "type": "incident", "body": "Звонки обрываются через минуту у всех сотрудников."},
        {"id": "r2", "subject": "Calls", "sender": "bob@other.example", "priority": "high",
         "type": "incident", "body": "Calls drop after a minute for everyone in the company."},
    ]
    (corpus / "requests.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    config = str(tmp_path / "config.toml")
    assert main(["--config", config, "rules", "test", str(corpus), str(CORPUS), "--json"]) == 0
    out = capsys.readouterr().out
    first = json.loads(out[:out.index("\n}\n") + 2])
    assert first["total"] == 2 and first["priority_accuracy"] == 1.0
    assert first["rule_hits"]["acme-calls-critical"] == 1
    assert out.count('"corpus"') == 2
