"""Unit tests of the declared priority mapping."""

from __future__ import annotations

from parsers.priority import declared_priority


def test_subject_markers() -> None:
    """Subject markers map to critical/high/medium/low in English and Russian."""
    assert declared_priority({}, "[CRITICAL] DB down") == "critical"
    assert declared_priority({}, "Критично: не работает касса") == "critical"
    assert declared_priority({}, "[P1] outage") == "critical"
    assert declared_priority({}, "[URGENT] VPN") == "high"
    assert declared_priority({}, "СРОЧНО не работает почта") == "high"
    assert declared_priority({}, "[P2] slow") == "high"
    assert declared_priority({}, "[P3] question") == "medium"
    assert declared_priority({}, "[P4] typo") == "low"
    assert declared_priority({}, "Report, priority: high") == "high"


def test_headers() -> None:
    """Importance, X-Priority and Priority headers give high or low, never critical."""
    assert declared_priority({"importance": ["High"]}, "x") == "high"
    assert declared_priority({"x-priority": ["1 (Highest)"]}, "x") == "high"
    assert declared_priority({"x-priority": ["2"]}, "x") == "high"
    assert declared_priority({"x-priority": ["5 (Lowest)"]}, "x") == "low"
    assert declared_priority({"priority": ["urgent"]}, "x") == "high"
    assert declared_priority({"importance": ["low"]}, None) == "low"


def test_no_declaration() -> None:
    """Normal markers and plain subjects declare nothing."""
    assert declared_priority({"x-priority": ["3 (Normal)"], "importance": ["normal"]}, "Hi") is None
    assert declared_priority({}, None) is None


def test_subject_beats_header() -> None:
    """An explicit subject marker wins over a header hint."""
    assert declared_priority({"importance": ["low"]}, "[CRITICAL] x") == "critical"
