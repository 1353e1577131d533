"""Precise `file:line: key: problem` errors for the TOML files admins edit."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        key = f" {self.key}:" if self.key else ""
        return f"{self.file}:{self.line}:{key} {self.message}"


class ConfigError(Exception):
    """One or more problems in a configuration file; the daemon keeps what it had."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def syntax_problem(file: str, error: Exception) -> ConfigProblem:
    """A TOML syntax error as a problem at the line tomllib names (1 when it names none)."""
    line = re.search(r"line (\d+)", str(error))
    return ConfigProblem(file, int(line.group(1)) if line else 1, "", f"TOML syntax: {error}")


def dotted(loc: tuple[str | int, ...]) -> str:
    """("mailboxes", 0, "port") -> "mailboxes[0].port"."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def problem_of(file: str, text: str, loc: tuple[str | int, ...], message: str) -> ConfigProblem:
    """A problem at LOC of a TOML document, located to its line; pydantic's prefix dropped."""
    return ConfigProblem(file, locate_key(text, loc), dotted(loc),
                         message.removeprefix("Value error, "))


_TABLE = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_ARRAY_TABLE = re.compile(r"^\s*\[\[\s*([^\[\]]+?)\s*\]\]\s*(#.*)?$")
_SIMPLE_KEY = r"""(?:"[^"]*"|[A-Za-z0-9_\-]+)"""
_KEY = re.compile(rf"""^\s*({_SIMPLE_KEY}(?:\s*\.\s*{_SIMPLE_KEY})*)\s*=""")
_KEY_PART = re.compile(r"""\s*(?:"([^"]*)"|([A-Za-z0-9_\-]+))\s*(?:\.|$)""")


def split_key(dotted_key: str) -> list[str]:
    """`tiers."8/5".reaction` -> ["tiers", "8/5", "reaction"] (TOML dotted keys, quotes)."""
    return [quoted or bare for quoted, bare in _KEY_PART.findall(dotted_key)]


def locate_key(text: str, loc: tuple[str | int, ...]) -> int:
    """The 1-based line where the key at LOC is written, or the nearest table header.

    Handles `[table]`, `[[array]]` (LOC carries the array index) and `key = value`;
    good enough for the flat files we document, and 1 when nothing better is found.
    """
    path: list[str | int] = []
    array_counts: dict[str, int] = {}
    best_line, best_depth = 1, -1
    for number, line in enumerate(text.splitlines(), start=1):
        if m := _ARRAY_TABLE.match(line):
            name = m.group(1)
            index = array_counts.get(name, -1) + 1
            array_counts[name] = index
            path = [*split_key(name), index]
        elif m := _TABLE.match(line):
            path = list(split_key(m.group(1)))
        elif m := _KEY.match(line):
            full = [*path, *split_key(m.group(1))]
            depth = _common_prefix(full, loc)
            if depth == len(full) and depth > best_depth:
                best_line, best_depth = number, depth
            continue
        else:
            continue
        depth = _common_prefix(path, loc)
        if depth == len(path) and depth > best_depth:
            best_line, best_depth = number, depth
    return best_line


def _common_prefix(a: list[str | int], b: tuple[str | int, ...]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count
