"""Chat messages: every body is a message or a refusal naming its field, never a crash; the
stored envelope reads back as the same message."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.chat import chat_envelope, chat_request, parse_stored_chat, read_chat, stored_chat
from parsers.telephony import PayloadError

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                  max_size=3),
    max_leaves=10)
FIELDS = st.sampled_from(["platform", "message_id", "author", "text", "subject", "sent_at",
                          "declared_priority", "attachments", "metadata", "name", "email"])


@settings(max_examples=400, deadline=None)
@given(body=st.dictionaries(FIELDS, JSONISH, max_size=6),
       conversation=st.text(min_size=0, max_size=12))
def test_any_body_is_a_message_or_a_refusal_with_its_field(body: dict[str, Any],
                                                           conversation: str) -> None:
    """Generated fields of generated types: a ChatMessage whose Request can be made, or a
    PayloadError naming a field (by its path) and the problem."""
    raw = json.dumps(body).encode()
    try:
        message = read_chat(conversation, raw)
    except PayloadError as error:
        assert error.field and error.problem
        return
    request = chat_request(conversation, message)
    assert request.channel == "chat" and request.text
    assert parse_stored_chat(chat_envelope(conversation, raw)).message_id == request.message_id


@pytest.mark.parametrize(("body", "field", "problem"), [
    (b"\xff\xfe", "body", "not UTF-8"),
    (b"null", "body", "expected a JSON object"),
    (b'{"platform": "t", "message_id": 1, "author": {"email": 5}}', "author.email",
     "not an e-mail address"),
    (b'{"platform": "t", "message_id": 1, "text": "x", "sent_at": "yesterday"}', "sent_at",
     "Input should be a valid datetime"),
    (b'{"platform": "t", "message_id": 1, "text": "x", "attachments": [{}]}',
     "attachments[0].content_base64", "Field required"),
    (b'{"platform": "t", "message_id": "a\\u0000b", "text": "x"}', "message_id",
     "contains NUL"),
])
def test_refusals_name_the_field(body: bytes, field: str, problem: str) -> None:
    """The field by its path, and the problem in words (pydantic's own, where it has them)."""
    with pytest.raises(PayloadError) as refused:
        read_chat("c-1", body)
    assert refused.value.field == field
    assert refused.value.problem.startswith(problem), refused.value.problem


def test_a_stored_message_reads_back_equal() -> None:
    """Numbers as ids, Unix seconds, bidirectional controls stripped, files decoded; the
    envelope gives back the same conversation and message (replays are compared so)."""
    raw = json.dumps({"platform": "telegram", "message_id": 5521, "sent_at": 1764057600,
                      "author": {"name": "Ivan\u202e Petrov", "user_id": 777001,
                                 "phone": "8 (495) 123-45-67"},
                      "text": "", "attachments": [{"filename": "a.txt",
                                                   "content_base64": "aGVsbG8="}]}).encode()
    message = read_chat("-100123", raw)
    assert message.message_id == "5521" and message.author.user_id == "777001"
    assert message.author.name == "Ivan Petrov"
    assert message.attachments[0].content_base64 == b"hello"
    assert stored_chat(chat_envelope("-100123", raw)) == ("-100123", message)
    request = chat_request("-100123", message)
    assert request.text == "(a.txt)" and request.phone == "+74951234567"
    assert request.date is not None and request.date.isoformat() == "2025-11-25T08:00:00+00:00"
