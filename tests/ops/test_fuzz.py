"""Fuzzing: hostile bytes through the e-mail parser, the webhook parsers and the rule loader.

Each parser either returns a result or refuses with its own precise error; nothing else may
escape, and no single input may take long. `make test` runs a short budget; `make fuzz` sets
FUZZ_EXAMPLES for a long one. A crash found here is kept below as an explicit example.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from parsers.email import parse_email
from parsers.telephony import PayloadError, read_event
from rules.loader import RulesError, parse_rules
from tests.conftest import CORPORA, make_mail

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
# Per input, on a shared and loaded CI machine; a hang or a quadratic blow-up exceeds it.
TIME_BOUND_S = 10.0
# Memory: how far above the resident size before it one input may take the process (a fixed
# allowance plus a multiple of the input's size); a blow-up (a part copied per header, a
# quadratic decode) exceeds it. Linux: the peak is reset before each input (clear_refs).
MEMORY_BASE_BYTES = 64 * 2**20
MEMORY_PER_INPUT_BYTE = 200
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get(
    "FUZZ_EXAMPLES"), suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _seeds() -> list[bytes]:
    """Corpus messages when ../shared/corpora is there, built ones otherwise."""
    found = sorted((CORPORA / "parse").rglob("*.eml"))[:60] if CORPORA.is_dir() else []
    built = [make_mail("Не работает почта", body="Письма не доходят.\n" * 20),
             make_mail("Re: [SUP-000001] x", headers={"Auto-Submitted": "auto-replied"})]
    return [p.read_bytes() for p in found] + built


SEEDS = _seeds()


_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    assert match, f"no {field} in {_STATUS}"
    return int(match.group(1)) * 1024


def _reset_peak() -> bool:
    """Reset the peak resident size (VmHWM) to the current one; False where impossible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def bounded(function: Callable[[], Any], size: int) -> Any:
    """FUNCTION's result, asserting it took bounded time and memory for an input of SIZE."""
    measured = _reset_peak()
    before = _status_bytes("VmRSS") if measured else 0
    started = time.monotonic()
    result = function()
    elapsed = time.monotonic() - started
    assert elapsed < TIME_BOUND_S, f"one input took {elapsed:.1f} s"
    if measured:
        grown = _status_bytes("VmHWM") - before
        limit = MEMORY_BASE_BYTES + MEMORY_PER_INPUT_BYTE * size
        assert grown <= limit, f"one input of {size} bytes took {grown} bytes more at its peak"
    return result


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    """A corpus message with bytes flipped, cut, duplicated or spliced with hostile pieces."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    hostile = st.sampled_from([
        b"\r\n\r\n", b"--", b"boundary=\"", b"Content-Type: multipart/mixed; boundary=x\r\n",
        b"Content-Transfer-Encoding: base64\r\n", b"=?utf-8?b?", b"=?koi8-r?q?=FF=", b"\x00",
        b"\xff\xfe", b"charset=\"unknown-8bit\"", b"Content-Type: message/rfc822\r\n\r\n",
        b"=\r\n", b"<" * 50, b"\t" * 100, b"From: \"\\\r\n"])
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "dup", "splice"]))
        if action == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del data[at:at + draw(st.integers(1, 200))]
        elif action == "dup":
            data[at:at] = data[at:at + draw(st.integers(1, 300))] * draw(st.integers(1, 5))
        else:
            data[at:at] = draw(hostile)
    return bytes(data)


@FUZZ
@given(mutated_messages())
def test_email_parser_survives_mutated_corpus(raw: bytes) -> None:
    request = bounded(lambda: parse_email(raw), len(raw))
    json.dumps(request.as_json(), ensure_ascii=False)


@FUZZ
@given(st.binary(max_size=5000))
@example(b"Content-Type: multipart/mixed; boundary=a\r\n\r\n" + b"--a\r\n" * 2000)
def test_email_parser_survives_raw_bytes(raw: bytes) -> None:
    json.dumps(bounded(lambda: parse_email(raw), len(raw)).as_json(), ensure_ascii=False)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=60),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4), max_leaves=12)
FIELDS = ["call_id", "caller", "customer", "contact_email", "agent", "subject", "description",
          "declared_priority", "started_at", "duration_s", "event", "from", "to", "user",
          "direction", "callId", "pbx_call_id", "caller_id", "call_start", "CallSid", "From",
          "CallStatus", "Timestamp", "name", "email", "phone", "message", "priority"]
payloads = st.dictionaries(st.sampled_from(FIELDS), _json, max_size=12)
PROVIDERS = ["generic", "web", "zammad-cti", "zadarma", "twilio", "mapped"]


@FUZZ
@given(st.sampled_from(PROVIDERS), payloads,
       st.sampled_from(["application/json", "application/x-www-form-urlencoded"]))
def test_webhook_parsers_refuse_precisely(provider: str, payload: dict[str, Any],
                                          content_type: str) -> None:
    """Field-shaped garbage: an event, or PayloadError naming a field; nothing else."""
    if content_type == "application/json":
        body = json.dumps(payload).encode()
    else:
        body = urlencode({k: json.dumps(v) if not isinstance(v, str) else v
                          for k, v in payload.items()}).encode()
    _read(provider, content_type, body)


@FUZZ
@given(st.sampled_from(PROVIDERS), st.binary(max_size=2000),
       st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain",
                        "application/json; charset=koi8-r", ""]))
def test_webhook_parsers_survive_raw_bodies(provider: str, body: bytes,
                                            content_type: str) -> None:
    _read(provider, content_type, body)


def _read(provider: str, content_type: str, body: bytes) -> None:
    mapping = {"call_id": "id", "caller": "from", "subject": "topic"}
    try:
        bounded(lambda: read_event(provider, "fuzz", content_type, body, mapping), len(body))
    except PayloadError as error:
        assert error.problem


@FUZZ
@given(st.text(max_size=800) | st.builds(
    lambda name, key, value: f'[[rule]]\nname = "{name}"\n[rule.when]\n{key} = {value}\n'
                             '[rule.then]\npriority = "high"\n',
    st.text(max_size=20), st.sampled_from(["subject", "body", "from", "any", "x", "subject.any"]),
    st.sampled_from(['"x"', "[]", '["a", 1]', "1", "{}", '"(("', '"\\\\d{99999}"', "true"])))
def test_rule_loader_refuses_precisely(text: str) -> None:
    try:
        bounded(lambda: parse_rules(text, "fuzz.toml"), len(text.encode()))
    except RulesError as error:
        assert str(error)


def test_memory_bound_catches_a_blow_up() -> None:
    """The bound is not vacuous: 300 MiB touched for a 1 MiB input exceeds it."""
    if not _reset_peak():
        pytest.skip("the peak resident size cannot be reset here (Linux /proc/self/clear_refs)")
    with pytest.raises(AssertionError, match="at its peak"):
        bounded(lambda: _fresh_pages(300 * 2**20), 2**20)


def _fresh_pages(size: int) -> mmap.mmap:
    """SIZE bytes of new resident memory. A fresh mapping, not malloc: earlier tests leave
    freed heap pages resident, and copies made there would not raise the peak at all."""
    block = mmap.mmap(-1, size)
    for offset in range(0, size, mmap.PAGESIZE):
        block[offset] = 1
    return block


@pytest.mark.skipif(not SEEDS, reason="no seed messages")
def test_seeds_parse() -> None:
    """The unmutated seeds themselves parse (so the mutations start from real mail)."""
    for raw in SEEDS:
        parse_email(raw)
