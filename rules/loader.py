"""Read a rules file: TOML `[[rule]]` tables, validated with file, line and problem."""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from parsers.model import PRIORITIES
from rules.conditions import (
    All,
    AnyOf,
    Attachment,
    Condition,
    Contains,
    FactIs,
    Flag,
    Header,
    Not,
    OneOf,
    Regex,
    WordCount,
    Words,
)
from rules.config_errors import ConfigError, ConfigProblem, dotted, syntax_problem
from rules.engine import DECLARED, REQUEST_TYPES, Actions, Rule, RuleSet
from rules.text import normalise, phrase_terms
from rules.triage.facts import SCOPES, SEVERITIES, WORKAROUNDS
from rules.triage.lexicon import Lexicon, with_additions
from rules.triage.table import Row, parse_table

DEFAULT_RULES = "default_rules.toml"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
CHANNELS = ("email", "phone", "web", "chat")
TIERS = ("8/5", "24/7", "premium")


# A rules file's problems are configuration problems: the same `file:line: key: problem`.
RuleProblem = ConfigProblem


class RulesError(ConfigError):
    """A rules file that cannot be used; whoever loaded the previous one keeps it."""


class _Bad(Exception):
    """One problem at a key path inside one rule."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class _Bads(Exception):
    """Every problem found in one rule."""

    def __init__(self, bads: list[_Bad]) -> None:
        super().__init__("; ".join(bad.message for bad in bads))
        self.bads = bads


CONDITION_KEYS = (
    "all", "any", "not", "channel", "customer", "tier", "sender", "sender_domain",
    "known_customer", "declared_priority", "priority", "type",
    "subject_contains", "body_contains", "text_contains", "subject_words", "body_words",
    "text_words", "subject_regex", "body_regex", "text_regex", "header", "attachment_type",
    "attachment_name", "has_attachments", "word_count_below", "word_count_at_least",
    "working_hours", "scope", "function", "affected", "severity", "workaround", "detail", "impact",
)
# What a rules file holds besides [[rule]]: the seed's table and phrases added to the lexicon.
TOP_LEVEL_KEYS = ("rule", "priority_table", "lexicon")
_FACT_VALUES = {"scope": SCOPES, "severity": SEVERITIES, "workaround": WORKAROUNDS,
                "detail": ("enough", "none"), "impact": ("none", "users_fine", "slight", "unknown")}
ACTION_KEYS = ("type", "priority", "at_least", "at_most", "tags", "assign_engineer",
               "copy_manager", "suppress_ack", "hold", "stop", "wait_for_customer", "reason")
RULE_KEYS = ("name", "description", "when", "then")


def _strings(value: object, path: tuple[str | int, ...]) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(
            isinstance(i, str) and i.strip() for i in items):
        raise _Bad(path, "expected a non-empty string or a list of non-empty strings")
    return tuple(items)


def _choice(value: object, path: tuple[str | int, ...],
            allowed: tuple[str, ...]) -> tuple[str, ...]:
    values = tuple(v.lower() for v in _strings(value, path))
    for v in values:
        if v not in allowed:
            raise _Bad(path, f"unknown value {v!r}; expected {', '.join(allowed)}")
    return values


def _bool(value: object, path: tuple[str | int, ...]) -> bool:
    if not isinstance(value, bool):
        raise _Bad(path, "expected true or false")
    return value


def _count(value: object, path: tuple[str | int, ...]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Bad(path, "expected a whole number, 0 or more")
    return value


def _regex(pattern: str, path: tuple[str | int, ...]) -> re.Pattern[str]:
    try:
        # Patterns see normalised text (case-folded, ё = е), so they are normalised too.
        return re.compile(normalise(pattern))
    except re.error as error:
        raise _Bad(path, f"regex does not compile: {error}") from None


def condition(table: object, path: tuple[str | int, ...]) -> Condition:
    """A condition table; several keys in one table must all hold."""
    if not isinstance(table, dict):
        raise _Bad(path, "expected a table of conditions")
    parts: list[Condition] = []
    for key, value in table.items():
        at = (*path, key)
        parts.append(_one_condition(key, value, at))
    if not parts:
        raise _Bad(path, "empty condition table")
    return parts[0] if len(parts) == 1 else All(tuple(parts))


def _list_of_conditions(value: object, at: tuple[str | int, ...]) -> tuple[Condition, ...]:
    if not isinstance(value, list) or not value:
        raise _Bad(at, "expected a non-empty list of condition tables")
    return tuple(condition(item, (*at, i)) for i, item in enumerate(value))


def _one_condition(key: str, value: object, at: tuple[str | int, ...]) -> Condition:
    if key == "all":
        return All(_list_of_conditions(value, at))
    if key == "any":
        return AnyOf(_list_of_conditions(value, at))
    if key == "not":
        return Not(condition(value, at))
    if key == "channel":
        return OneOf("channel", _choice(value, at, CHANNELS))
    if key == "tier":
        return OneOf("tier", _choice(value, at, TIERS))
    if key in ("declared_priority", "priority"):
        return OneOf(key, _choice(value, at, (*PRIORITIES, "none")))  # type: ignore[arg-type]
    if key == "type":
        return OneOf("type", _choice(value, at, (*REQUEST_TYPES, "none")))
    if key in ("customer", "sender", "sender_domain"):
        return OneOf(key, tuple(v.lower() for v in _strings(value, at)))  # type: ignore[arg-type]
    if key in ("known_customer", "has_attachments", "working_hours"):
        return Flag(key, _bool(value, at))  # type: ignore[arg-type]
    if key in ("attachment_type", "attachment_name"):
        globs = tuple(v.lower() for v in _strings(value, at))
        return Attachment("type" if key == "attachment_type" else "name", globs)
    if key in _FACT_VALUES:
        return FactIs(key, _choice(value, at, _FACT_VALUES[key]))
    if key in ("function", "affected"):
        return FactIs(key, tuple(v.lower() for v in _strings(value, at)))
    if key == "word_count_below":
        return WordCount(below=_count(value, at))
    if key == "word_count_at_least":
        return WordCount(at_least=_count(value, at))
    if key == "header":
        return _header(value, at)
    field, _, test = key.partition("_")
    if field in ("subject", "body", "text") and test in ("contains", "words", "regex"):
        strings = _strings(value, at)
        if test == "contains":
            return Contains(field, tuple(normalise(s) for s in strings))  # type: ignore[arg-type]
        if test == "regex":
            return Regex(field, tuple(_regex(s, (*at, i)) for i, s in enumerate(strings)))  # type: ignore[arg-type]
        phrases = tuple(phrase_terms(s) for s in strings)
        if not all(phrases):
            raise _Bad(at, "a phrase has no words")
        return Words(field, phrases, strings)  # type: ignore[arg-type]
    raise _Bad(at, f"unknown condition {key!r}; known: {', '.join(CONDITION_KEYS)}")


def _header(value: object, at: tuple[str | int, ...]) -> Header:
    if not isinstance(value, dict):
        raise _Bad(at, 'expected a table like {name = "X-Mailer", contains = "..."}')
    unknown = set(value) - {"name", "contains", "glob", "regex"}
    if unknown:
        raise _Bad((*at, sorted(unknown)[0]), "unknown header test; expected name and one of "
                   "contains, glob, regex")
    name = value.get("name")
    if not isinstance(name, str) or not name:
        raise _Bad((*at, "name"), "expected the header's name")
    tests = [k for k in ("contains", "glob", "regex") if k in value]
    if len(tests) != 1:
        raise _Bad(at, "expected exactly one of contains, glob, regex")
    test = tests[0]
    text = _strings(value[test], (*at, test))[0]
    if test == "regex":
        return Header(name.lower(), regex=_regex(text, (*at, test)))
    if test == "glob":
        return Header(name.lower(), glob=normalise(text))
    return Header(name.lower(), contains=normalise(text))


def actions(table: object, path: tuple[str | int, ...]) -> tuple[Actions, str]:
    if not isinstance(table, dict) or not table:
        raise _Bad(path, "expected a non-empty table of actions")
    for key in table:
        if key not in ACTION_KEYS:
            raise _Bad((*path, key), f"unknown action {key!r}; known: {', '.join(ACTION_KEYS)}")
    found: dict[str, Any] = {}
    for key in ("priority", "at_least", "at_most"):
        if key in table:
            allowed = (*PRIORITIES, DECLARED) if key == "priority" else PRIORITIES
            found[key] = _choice(table[key], (*path, key), allowed)[0]
            if not isinstance(table[key], str):
                raise _Bad((*path, key), "expected one priority")
    if "type" in table:
        found["request_type"] = _choice(table["type"], (*path, "type"), REQUEST_TYPES)[0]
    if "tags" in table:
        found["tags"] = _strings(table["tags"], (*path, "tags"))
    for key in ("assign_engineer", "copy_manager", "suppress_ack", "hold", "stop",
                "wait_for_customer"):
        if key in table:
            found[key] = _bool(table[key], (*path, key))
    reason = table.get("reason", "")
    if not isinstance(reason, str):
        raise _Bad((*path, "reason"), "expected a sentence")
    return Actions(**found), reason


def _rule(table: object, index: int) -> Rule:
    """One [[rule]]; _Bads with a problem for each of its parts that is wrong (its keys, name,
    description, conditions and actions), so one run of `rules check` shows them all."""
    path: tuple[str | int, ...] = ("rule", index)
    if not isinstance(table, dict):
        raise _Bads([_Bad(path, "expected a table")])
    bads = [_Bad((*path, key), f"unknown key {key!r}; a rule has name, description, when, then")
            for key in table if key not in RULE_KEYS]
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        bads.append(_Bad((*path, "name"), "expected a name: letters, digits, '-', '_', '.'"))
    description = table.get("description", "")
    if not isinstance(description, str):
        bads.append(_Bad((*path, "description"), "expected a string"))
    when: Condition = All(())
    if "when" in table:
        try:
            when = condition(table["when"], (*path, "when"))
        except _Bad as bad:
            bads.append(bad)
    then, reason = Actions(), ""
    if "then" not in table:
        bads.append(_Bad((*path, "name"), "a rule needs a [rule.then] table of actions"))
    else:
        try:
            then, reason = actions(table["then"], (*path, "then"))
        except _Bad as bad:
            bads.append(bad)
    if bads:
        raise _Bads(bads)
    assert isinstance(name, str) and isinstance(description, str)
    return Rule(name, description, when, then, reason)


def parse_rules(text: str, source: str) -> RuleSet:
    """Validate a rules file's text; raise RulesError with every problem found."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RulesError([syntax_problem(source, error)]) from None
    lines = _Lines(text)
    problems = [RuleProblem(source, lines.find((k,)), k,
                            "unknown top-level key; a rules file holds [[rule]] tables, "
                            "[[priority_table]] rows and a [lexicon]")
                for k in data if k not in TOP_LEVEL_KEYS]
    seed_table, lexicon = _triage(data, source, lines, problems)
    tables = data.get("rule", [])
    if not isinstance(tables, list) or not (tables or "priority_table" in data):
        problems.append(RuleProblem(source, 1, "", "no rules: expected at least one [[rule]]"))
        raise RulesError(problems)
    rules: list[Rule] = []
    first_seen: dict[str, int] = {}
    for index, table in enumerate(tables):
        try:
            rule = _rule(table, index)
        except _Bads as bads:
            problems += [RuleProblem(source, lines.find(bad.path), dotted(bad.path), bad.message)
                         for bad in bads.bads]
            continue
        line = lines.rule_start(index)
        if rule.name in first_seen:
            problems.append(RuleProblem(source, lines.find(("rule", index, "name")),
                                        dotted(("rule", index, "name")),
                                        f"duplicate rule name {rule.name!r} "
                                        f"(first at line {first_seen[rule.name]})"))
            continue
        first_seen[rule.name] = line
        rules.append(Rule(rule.name, rule.description, rule.when, rule.then, rule.reason, line))
    if problems:
        raise RulesError(problems)
    return RuleSet(tuple(rules), source, seed_table, lexicon)


def _triage(data: dict[str, Any], source: str, lines: _Lines,
            problems: list[RuleProblem]) -> tuple[tuple[Row, ...], Lexicon | None]:
    """The file's [[priority_table]] (else the shipped seed table) and its [lexicon] additions
    (else the shipped lexicon); problems are added to PROBLEMS."""
    table: tuple[Row, ...] = ()
    if "priority_table" in data:
        try:
            table = parse_table(data["priority_table"], source, lines.table_row)
        except ValueError as error:
            problems.append(RuleProblem(source, lines.find(("priority_table",)), "priority_table",
                                        str(error).removeprefix(f"{source}: ")))
    lexicon = None
    if "lexicon" in data:
        try:
            lexicon = with_additions(data["lexicon"])
        except ValueError as error:
            problems.append(RuleProblem(source, lines.find(("lexicon",)), "lexicon",
                                        str(error).removeprefix(f"{source}: ")))
    return table, lexicon


@lru_cache(maxsize=1)
def builtin_rules() -> RuleSet:
    """The shipped default rule set, parsed once per process."""
    return load_rules(None)


def load_rules(path: Path | None) -> RuleSet:
    """The rules file at PATH, or the built-in default rule set when PATH is None."""
    if path is None:
        text = resources.files("rules").joinpath(DEFAULT_RULES).read_text(encoding="utf-8")
        return parse_rules(text, f"<built-in {DEFAULT_RULES}>")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RulesError([RuleProblem(str(path), 0, "", f"cannot read: {error}")]) from None
    return parse_rules(text, str(path))


class _Lines:
    """Finds the line of a key inside the N-th `[[rule]]`: its own span, then the key."""

    _HEADER = re.compile(r"^\s*\[\[\s*rule\s*\]\]")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.starts = [n for n, line in enumerate(self.lines, 1) if self._HEADER.match(line)]

    def table_row(self, index: int) -> int:
        """The line of the INDEX-th `[[priority_table]]` row."""
        rows = [n for n, line in enumerate(self.lines, 1)
                if re.match(r"^\s*\[\[\s*priority_table\s*\]\]", line)]
        return rows[index] if index < len(rows) else 1

    def rule_start(self, index: int) -> int:
        return self.starts[index] if index < len(self.starts) else 1

    def find(self, path: tuple[str | int, ...]) -> int:
        if len(path) < 2 or path[0] != "rule" or not isinstance(path[1], int):
            key = str(path[0]) if path else ""
            return next((n for n, line in enumerate(self.lines, 1)
                         if re.match(rf"^\s*\[?\s*{re.escape(key)}\b", line)), 1)
        start = self.rule_start(path[1])
        end = self.starts[path[1] + 1] if path[1] + 1 < len(self.starts) else len(self.lines) + 1
        line = start
        # Walk down the path: each string key is looked for after the previous one's line.
        for part in path[2:]:
            if isinstance(part, int):
                continue
            pattern = re.compile(rf"(^|[\s{{,.\[])\"?{re.escape(part)}\"?\s*(=|\]|\.)")
            found = next((n for n in range(line, end) if pattern.search(self.lines[n - 1])), None)
            if found is None:
                break
            line = found
        return line
