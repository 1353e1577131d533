"""Corpus scores: the shared scorers' comparison logic applied in process to our parsers."""

from __future__ import annotations

import collections
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from parsers.email import parse_file_json
from parsers.quotes import reply_text_of_file

PROJECT = Path(__file__).resolve().parents[2]
CORPORA = PROJECT.parent / "shared" / "corpora"

pytestmark = pytest.mark.skipif(
    not (CORPORA / "score").is_dir(),
    reason=f"shared corpora not found at {CORPORA} (../shared/corpora from the project root)",
)


def _scorer(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, CORPORA / "score" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parse_corpus_accuracy() -> None:
    """check_parse's field comparison gives at least 98.5% correct (stdlib baseline 96.8%)."""
    scorer = _scorer("check_parse")
    ok = total = 0
    for _src, stem in scorer.find_cases(str(CORPORA)):
        expected = json.loads(Path(stem + ".json").read_text(encoding="utf-8"))
        got = parse_file_json(stem + ".eml")
        for field, good in scorer.compare(expected, got):
            if not field.endswith("(info)"):
                ok += good
                total += 1
    assert total > 1000
    assert ok / total >= 0.985, f"parse accuracy {ok / total:.1%}"


def test_quotes_corpus_accuracy() -> None:
    """check_quotes' comparison gives at least 80% exact (achieved 86.9%, baseline 13.1%)."""
    scorer = _scorer("check_quotes")
    exact = count = 0
    for manifest in sorted((CORPORA / "quotes").glob("*/manifest.json")):
        for case in json.loads(manifest.read_text(encoding="utf-8")).values():
            got = reply_text_of_file(manifest.parent / case["input"])
            want = (manifest.parent / case["expected"]).read_bytes().decode("utf-8")
            if case.get("compare", "strip") == "nowhitespace":
                exact += scorer.nows(got) == scorer.nows(want)
            else:
                exact += scorer.norm(got) == scorer.norm(want)
            count += 1
    assert count == 61
    assert exact / count >= 0.80, f"quotes exact {exact / count:.1%}"


def test_classify_corpus_accuracy() -> None:
    """Kinds are ≥99% correct, every kind's recall ≥95%, and no normal mail is misclassified."""
    confusion: collections.Counter[tuple[str, str]] = collections.Counter()
    for labels_file in sorted((CORPORA / "classify").glob("*/labels.json")):
        for name, label in json.loads(labels_file.read_text(encoding="utf-8")).items():
            got = parse_file_json(labels_file.parent / name)["kind"]
            confusion[(label["kind"], got)] += 1
    total = sum(confusion.values())
    correct = sum(v for (want, got), v in confusion.items() if want == got)
    assert correct / total >= 0.99, f"classify {correct / total:.1%}"
    for kind in {want for want, _ in confusion}:
        row = sum(v for (want, _), v in confusion.items() if want == kind)
        assert confusion[(kind, kind)] / row >= 0.95, f"recall {kind}"
    assert all(got == "normal" for (want, got), v in confusion.items() if want == "normal" and v)


def test_cli_json_on_corpus_files() -> None:
    """`python -m parsers FILE --json` prints one JSON object per file and exits 0."""
    files = sorted((CORPORA / "parse" / "mail-parser").glob("*.eml"))[:4]
    for file in files:
        out = subprocess.run([sys.executable, "-m", "parsers", str(file), "--json"],
                             cwd=PROJECT, capture_output=True, timeout=60, check=True)
        assert isinstance(json.loads(out.stdout), dict)
        assert b"unreachable" not in out.stderr
