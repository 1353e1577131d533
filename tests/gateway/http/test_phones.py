"""Caller numbers however written match the customer's numbers however stored."""

from __future__ import annotations

import pytest

from gateway.config.customers import CustomerEntry, Directory
from gateway.tickets.phone_calls import match_phone
from parsers.phones import to_e164

SAME_NUMBER = ["+7 495 123-45-67", "8 (495) 123-45-67", "84951234567", "74951234567",
               "+7(495)1234567", "495/123/45/67", "[495] 123 45 67", "8-495-123-45-67",
               "+7.495.123.45.67", " +74951234567 "]


@pytest.mark.parametrize("written", SAME_NUMBER)
def test_forms_of_one_number(written: str) -> None:
    assert to_e164(written) == "+74951234567"


@pytest.mark.parametrize("text", ["", "call me", "+", "12-ab", "1" * 40])
def test_not_numbers(text: str) -> None:
    assert to_e164(text) is None


def test_foreign_and_extension_numbers() -> None:
    """Other countries keep their code; a short extension matches only itself."""
    assert to_e164("+1 (202) 555-0143") == "+12025550143"
    assert to_e164("101") == "101"


@pytest.mark.parametrize("stored", SAME_NUMBER)
def test_directory_match(stored: str) -> None:
    directory = Directory.of([CustomerEntry(id="acme", phones=[stored])])
    for caller in SAME_NUMBER:
        found = match_phone(directory, caller)
        assert found is not None and found.id == "acme"
    assert match_phone(directory, "+7 495 123-45-68") is None
    assert match_phone(directory, None) is None
