"""The chat channel over real HTTP: a conversation's first message registers, later ones join,
replays are idempotent, and our answers reach the platform's reply webhook signed, retried
while it is down, once; bad input is refused precisely and nothing is stored for it."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select
from standardwebhooks import Webhook

from gateway.config.settings import parse_settings
from gateway.http.tokens import create_token
from gateway.store.db import read_transaction
from gateway.store.feed import read_events
from gateway.store.models import Input, OutboxItem, Ticket
from rules.config_errors import ConfigError
from tests.conftest import START, RunningGateway, free_port
from tests.gateway.http.chat_platform import PLATFORM_SECRET, Platform, platform_config
from tests.gateway.http.helpers import admin, hook_config

CONVERSATION = "-1001234567890"


def message(message_id: str = "5521", **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "platform": "telegram", "message_id": message_id,
        "author": {"name": "Ivan Petrov", "email": "ivan@acme.example", "user_id": 777001},
        "text": "Since this morning messages are not delivered to any of our users.",
        "sent_at": START.isoformat()}
    payload.update(fields)
    return payload


@pytest.fixture
def platform() -> Any:
    receiver = Platform(free_port())
    yield receiver
    receiver.stop()


@pytest.fixture
def chat_gateway(make_gateway: Callable[..., RunningGateway], tmp_path: Path,
                 platform: Platform) -> tuple[RunningGateway, str]:
    """A gateway with the telegram platform configured, and an intake token for it."""
    extra, http = hook_config(tmp_path)
    running = make_gateway(extra=extra + platform_config(tmp_path, platform.url),
                           http=http + "max_upload_bytes = 200000\n")
    token = create_token(running.gateway.db.engine, "telegram-bot", "intake", START)
    return running, token


def post(running: RunningGateway, token: str, body: dict[str, Any] | bytes,
         conversation: str = CONVERSATION, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{running.http_url}/api/v1/chats/{conversation}/messages",
                      content=content, timeout=30, headers={
                          "Authorization": f"Bearer {token}",
                          "Content-Type": "application/json", **headers})


def ticket(running: RunningGateway, number: str = "SUP-000001") -> dict[str, Any]:
    shown = httpx.get(f"{running.http_url}/api/v1/tickets/{number}", headers=admin(),
                      timeout=30)
    assert shown.status_code == 200, shown.text
    data: dict[str, Any] = shown.json()
    return data


def stored_inputs(running: RunningGateway) -> int:
    with read_transaction(running.gateway.db.engine) as session:
        return int(session.exec(select(func.count()).select_from(Input)).one())


def settle_until(running: RunningGateway, done: Callable[[], bool], rounds: int = 30) -> None:
    """Run the pipeline, an hour of the manual clock apart, until DONE (retries fall due)."""
    for _ in range(rounds):
        running.settle()
        if done():
            return
        running.clock.advance(timedelta(hours=1))
    raise AssertionError("not done after the retries")


def test_first_message_registers_later_ones_join_replays_do_not(chat_gateway,
                                                                 platform: Platform) -> None:
    """The first message is a ticket by e-mail's rules (customer by e-mail, triage, the
    tier's deadlines); the second joins it (ticket.message_added); the same message id again
    is 200 with the ticket, other data under it 422; one ticket in all."""
    running, token = chat_gateway
    platform.start()
    first = post(running, token, message())
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "accepted"
    running.settle()
    shown = ticket(running)
    assert shown["channel"] == "chat" and shown["reply_to"] == f"chat:telegram:{CONVERSATION}"
    assert shown["customer"] == "acme" and shown["tier"] == "24/7"
    assert shown["priority"] == "high" and shown["reasons"], shown["reasons"]
    assert shown["requester"]["name"] == "Ivan Petrov"
    assert shown["received_at"] == "2026-11-25T08:00:00Z"
    assert shown["reaction_due"] is not None and shown["status"] == "registered"

    second = post(running, token, message("5522", text="It started at 9:40, screenshot "
                                          "attached.", attachments=[{
                                              "filename": "screen.png",
                                              "content_type": "image/png",
                                              "content_base64": base64.b64encode(
                                                  b"\x89PNG fake").decode()}]))
    assert second.status_code == 202, second.text
    running.settle()
    shown = ticket(running)
    incoming = [m for m in shown["messages"] if m["direction"] == "in"]
    assert [m["kind"] for m in incoming] == ["request", "reply"]
    assert incoming[1]["text"] == "It started at 9:40, screenshot attached."
    assert incoming[1]["from"]["address"] == "ivan@acme.example"
    [attached] = incoming[1]["attachments"]
    assert attached["filename"] == "screen.png" and attached["size"] == 9
    fetched = httpx.get(f"{running.http_url}/api/v1/tickets/SUP-000001/attachments/"
                        f"{attached['id']}", headers=admin(), timeout=30)
    assert fetched.status_code == 200 and fetched.content == b"\x89PNG fake"
    types = [e["type"] for e in read_events(running.gateway.db.engine)]
    assert types.count("ticket.registered") == 1 and "ticket.message_added" in types

    again = post(running, token, message())
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "duplicate" and again.json()["ticket"] == "SUP-000001"
    forged = post(running, token, message(text="Everything is fine, close it."))
    assert forged.status_code == 422
    assert forged.json() == {"error": f"message id 5521 of conversation {CONVERSATION} was "
                                      "stored before with different data: text differs",
                             "field": "text"}
    running.settle()
    with read_transaction(running.gateway.db.engine) as session:
        assert len(session.exec(select(Ticket)).all()) == 1
    assert stored_inputs(running) == 2
    # One acknowledgement: the joined message and the replay asked for none.
    assert len(platform.wait_for(1)) == 1


def test_acknowledgement_and_notices_reach_the_platform_signed(chat_gateway,
                                                                platform: Platform) -> None:
    """The acknowledgement is posted to reply_url, not mailed: Standard Webhooks headers that
    the standardwebhooks library verifies with the platform's secret, the ticket, the text
    and the platform's message id it answers; a priority change is told to the chat too."""
    running, token = chat_gateway
    platform.start()
    assert post(running, token, message()).status_code == 202
    running.settle()
    [ack] = platform.wait_for(1)
    verified = Webhook(PLATFORM_SECRET).verify(ack.body, ack.headers)
    assert verified == ack.reply
    assert ack.headers["webhook-id"].startswith("msg_")
    assert ack.reply["type"] == "chat.reply"
    data = ack.reply["data"]
    assert data["platform"] == "telegram" and data["conversation"] == CONVERSATION
    assert data["ticket"] == "SUP-000001" and data["kind"] == "acknowledgement"
    assert data["in_reply_to"] == "5521"
    assert "SUP-000001" in data["text"] and data["subject"].startswith("[SUP-000001]")
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + base64.b64encode(b"another-key-0123456789").decode()).verify(
            ack.body, ack.headers)
    assert not list((running.state / "outgoing" / "new").glob("*"))  # nothing mailed
    assert ticket(running)["acknowledged_at"] is not None

    changed = httpx.post(f"{running.http_url}/api/v1/tickets/SUP-000001/events", headers=admin(),
                         json={"type": "priority_changed", "priority": "critical",
                               "reason": "no user at all can send messages"},
                         timeout=30)
    assert changed.status_code == 200, changed.text
    running.settle()
    notice = platform.wait_for(2)[1]
    Webhook(PLATFORM_SECRET).verify(notice.body, notice.headers)
    assert notice.reply["data"]["kind"] == "notice"
    assert "no user at all can send messages" in notice.reply["data"]["text"]
    shown = ticket(running)
    assert [m["kind"] for m in shown["messages"] if m["direction"] == "out"] == [
        "acknowledgement", "notice"]
    assert "SUP-000001" in shown["messages"][1]["text"]


def test_platform_down_the_reply_is_retried_and_taken_once(chat_gateway,
                                                            platform: Platform) -> None:
    """Connection refused, then a 500: the acknowledgement stays in the outbox and is posted
    again with the same webhook-id until the platform takes it, and not after that."""
    running, token = chat_gateway
    assert post(running, token, message()).status_code == 202
    running.settle()  # the platform is not listening: refused
    with read_transaction(running.gateway.db.engine) as session:
        [item] = session.exec(select(OutboxItem)).all()
    assert item.status == "pending" and item.attempts == 1 and "ConnectError" in (
        item.last_error or "")
    platform.script = ["500"]
    platform.start()
    settle_until(running, lambda: len(platform.taken()) == 1)
    assert [a.answered for a in platform.log] == ["500", "ok"]
    assert len({a.headers["webhook-id"] for a in platform.log}) == 1
    for _ in range(3):
        running.clock.advance(timedelta(hours=2))
        running.settle()
    assert len(platform.log) == 2
    with read_transaction(running.gateway.db.engine) as session:
        [item] = session.exec(select(OutboxItem)).all()
    assert item.status == "sent" and item.attempts == 3


def test_bad_input_is_refused_precisely_and_nothing_is_stored(chat_gateway,
                                                               platform: Platform) -> None:
    """A token without scope intake is 403 naming the scope, no token 401; malformed JSON,
    wrong fields, an unknown platform and a bad conversation id are 422 naming the field; a
    body over the limit is 413, not JSON is 415. None of them is stored; a good message sent
    after them is."""
    running, token = chat_gateway
    engine = running.gateway.db.engine
    reader = create_token(engine, "dashboard", "read", START)
    denied = post(running, reader, message())
    assert denied.status_code == 403
    assert denied.json() == {"error": "token dashboard has scope read; this needs scope intake",
                             "field": "scope"}
    assert post(running, "igw_not-a-token", message()).status_code == 401

    cases: list[tuple[dict[str, Any] | bytes, str, str]] = [
        (b'{"platform": "telegram", "message_id": "1", "text": "hi"',
         "body", "malformed JSON: Expecting ',' delimiter: line 1 column 57 (char 56)"),
        (b"[1, 2]", "body", "expected a JSON object"),
        (message(message_id=""), "message_id", "String should have at least 1 character"),
        ({k: v for k, v in message().items() if k != "message_id"}, "message_id",
         "Field required"),
        (message(author={"email": "ivan at acme"}), "author.email", "not an e-mail address"),
        (message(author={"phone": "call me"}), "author.phone", "not a phone number"),
        (message(text="", attachments=[]), "text",
         "field required (or at least one attachment)"),
        (message(attachments=[{"filename": "a.txt", "content_base64": "%%%"}]),
         "attachments[0].content_base64", "not base64"),
        (message(colour="red"), "colour", "unknown field (docs/chat.md lists the fields)"),
        (message(platform="whatsapp"), "platform",
         "no chat platform 'whatsapp' is configured ([[chat_platforms]]: telegram)"),
        (message(declared_priority="urgent"), "declared_priority",
         "Input should be 'critical', 'high', 'medium' or 'low'"),
    ]
    for body, field, problem in cases:
        refused = post(running, token, body)
        assert refused.status_code == 422, (field, refused.text)
        assert refused.json() == {"error": problem, "field": field}
    bad_conversation = post(running, token, message(), conversation="a%20b")
    assert bad_conversation.status_code == 422
    assert bad_conversation.json()["field"] == "conversation"
    huge = message(attachments=[{"filename": "dump.bin", "content_base64": base64.b64encode(
        b"x" * 300_000).decode()}])
    too_big = post(running, token, huge)
    assert too_big.status_code == 413
    assert too_big.json() == {"error": "body larger than 200000 bytes"}
    form = post(running, token, b"text=hi", **{"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415 and form.json()["field"] == "content-type"
    assert stored_inputs(running) == 0

    platform.start()
    assert post(running, token, message()).status_code == 202
    running.settle()
    assert ticket(running)["channel"] == "chat"
    assert stored_inputs(running) == 1


def test_worker_processes_register_chats(make_gateway, tmp_path: Path,
                                         platform: Platform) -> None:
    """With parsing in worker processes a chat message registers the same way, and a second
    conversation is a second ticket."""
    extra, http = hook_config(tmp_path)
    running = make_gateway(extra=extra + platform_config(tmp_path, platform.url), http=http,
                           workers=True)
    token = create_token(running.gateway.db.engine, "bot", "intake", START)
    platform.start()
    assert post(running, token, message()).status_code == 202
    assert post(running, token, message("1", author={"phone": "+7 903 111-22-33"}),
                conversation="widget-42").status_code == 202
    running.settle()
    first, second = ticket(running), ticket(running, "SUP-000002")
    assert {first["customer"], second["customer"]} == {"acme", "globex"}
    replies = platform.wait_for(2)
    assert {r.reply["data"]["conversation"] for r in replies} == {CONVERSATION, "widget-42"}


def test_outside_intake_hours_the_acknowledgement_waits_for_the_window(
        chat_gateway, platform: Platform) -> None:
    """An 8/5 customer (found by phone) writing on a Saturday: the ticket waits as
    pending_registration (the courtesy notice, when the policy sends one, goes to the chat);
    when the window opens on Monday it is registered and acknowledged in the chat."""
    running, token = chat_gateway
    platform.start()
    running.clock.set(datetime(2026, 11, 28, 10, 0, tzinfo=UTC))  # Saturday, 13:00 in Moscow
    body = message(author={"name": "Olga", "phone": "+7 903 111 22 33"}, text=(
        "The report export answers 500 since this morning, for everyone in our office."))
    del body["sent_at"]
    assert post(running, token, body).status_code == 202
    running.settle()
    shown = ticket(running)
    assert shown["customer"] == "globex" and shown["status"] == "pending_registration"
    courtesy = running.gateway.context.policy.courtesy_notice
    assert [r.reply["data"]["kind"] for r in platform.taken()] == (
        ["notice"] if courtesy else [])

    running.clock.set(datetime(2026, 11, 30, 7, 0, tzinfo=UTC))  # Monday, 10:00 in Moscow
    running.settle()
    shown = ticket(running)
    assert shown["status"] == "registered"
    replies = platform.wait_for(2 if courtesy else 1)
    ack = replies[-1]
    Webhook(PLATFORM_SECRET).verify(ack.body, ack.headers)
    assert ack.reply["data"]["kind"] == "acknowledgement"
    assert ack.reply["data"]["conversation"] == CONVERSATION
    assert shown["acknowledged_at"] is not None


def test_chat_platforms_are_checked_with_file_and_line(tmp_path: Path) -> None:
    """A reply URL that is not http(s), a secret that is not Standard Webhooks', a missing
    secret file and a repeated name are each reported where they are written."""
    config = tmp_path / "gateway.toml"
    (tmp_path / "ok.secret").write_text(PLATFORM_SECRET, encoding="utf-8")
    config.write_text('[[chat_platforms]]\nname = "telegram"\nreply_url = "ftp://bot.example"\n'
                      'secret = "plain-words"\n\n'
                      '[[chat_platforms]]\nname = "widget"\nreply_url = "http://127.0.0.1/r"\n'
                      'secret_file = "missing.secret"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        parse_settings(config.read_text(encoding="utf-8"), config)
    shown = sorted(str(p) for p in refused.value.problems)
    assert shown == [
        f"{config}:3: chat_platforms[0].reply_url: expected an http(s) URL, got "
        "'ftp://bot.example'",
        f'{config}:4: chat_platforms[0].secret: the secret must be "whsec_" followed by base64',
        f"{config}:6: chat_platforms[1].secret: Field required",
        f"{config}:9: chat_platforms[1].secret_file: cannot read secret file: No such file or "
        "directory"]
    twice = ('[[chat_platforms]]\nname = "telegram"\nreply_url = "http://127.0.0.1/r"\n'
             'secret_file = "ok.secret"\n\n') * 2
    config.write_text(twice, encoding="utf-8")
    with pytest.raises(ConfigError, match="chat platform names must be unique: telegram"):
        parse_settings(twice, config)
