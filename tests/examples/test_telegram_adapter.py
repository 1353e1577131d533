"""The Telegram adapter of examples/ between a stand-in of the Bot API and the running gateway,
all on loopback: updates become tickets, our replies become sendMessage calls."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlmodel import select
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from examples.telegram_bot.adapter import Settings, make_app
from gateway.http.tokens import create_token
from gateway.store.db import read_transaction
from gateway.store.models import Input, OutboxItem
from tests.conftest import START, RunningGateway, free_port
from tests.gateway.http.chat_platform import PLATFORM_SECRET, platform_config
from tests.gateway.http.helpers import admin, hook_config

BOT_TOKEN = "123456:TEST-token"
UPDATE_SECRET = "telegram-update-secret"
LOG_FILE = b"2026-11-25 09:40 ERROR queue stalled\n"


@dataclass
class BotApi:
    """What the stand-in was asked, and how it answers sendMessage ("ok" or "blocked")."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    send_answer: str = "ok"

    def app(self) -> Starlette:
        async def method(request: Request) -> Response:
            token, name = request.path_params["token"], request.path_params["method"]
            if token != BOT_TOKEN:
                return JSONResponse({"ok": False, "error_code": 401,
                                     "description": "Unauthorized"}, status_code=401)
            payload = await request.json()
            if name == "getFile":
                return JSONResponse({"ok": True, "result": {
                    "file_id": payload["file_id"], "file_unique_id": "u1",
                    "file_size": len(LOG_FILE), "file_path": "documents/file_7.txt"}})
            if name == "sendMessage":
                if self.send_answer == "blocked":
                    return JSONResponse({"ok": False, "error_code": 403, "description":
                                         "Forbidden: bot was blocked by the user"},
                                        status_code=403)
                self.sent.append(payload)
                return JSONResponse({"ok": True, "result": {
                    "message_id": 1000 + len(self.sent), "chat": {"id": payload["chat_id"]},
                    "date": int(time.time()), "text": payload["text"]}})
            return JSONResponse({"ok": False, "error_code": 404, "description": "Not Found"},
                                status_code=404)

        async def file(request: Request) -> Response:
            if (request.path_params["token"] != BOT_TOKEN
                    or request.path_params["path"] != "documents/file_7.txt"):
                return Response(status_code=404)
            return Response(LOG_FILE, media_type="application/octet-stream")

        return Starlette(routes=[
            Route("/bot{token}/{method}", method, methods=["POST"]),
            Route("/file/bot{token}/{path:path}", file, methods=["GET"])])


@dataclass
class Served:
    server: uvicorn.Server
    thread: threading.Thread
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def serve(app: Starlette, port: int | None = None) -> Served:
    """APP under uvicorn on loopback in a thread (its lifespan run: the adapter closes its
    client at shutdown), once it listens."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                           lifespan="on", ws="none", loop="asyncio"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    return Served(server, thread, port)


@pytest.fixture
def servers() -> Iterator[list[Served]]:
    running: list[Served] = []
    yield running
    for served in running:
        served.server.should_exit = True
        served.thread.join(10)


def update(update_id: int, message_id: int, **fields: Any) -> dict[str, Any]:
    return {"update_id": update_id, "message": {
        "message_id": message_id, "date": int(START.timestamp()),
        "chat": {"id": 555001, "type": "private", "first_name": "Ivan"},
        "from": {"id": 555001, "is_bot": False, "first_name": "Ivan", "last_name": "Petrov"},
        **fields}}


def test_telegram_updates_become_tickets_and_replies_become_messages(
        make_gateway: Callable[..., RunningGateway], tmp_path: Path,
        servers: list[Served]) -> None:
    """A shared contact finds the customer by phone; a text registers a ticket (a retried
    update once); the acknowledgement is sendMessage answering it; a document arrives as an
    attachment; a forged update is 401; a reply delivered twice is sent once; a user who
    blocked the bot is 410, and the gateway stops trying."""
    bot_api = BotApi()
    servers.append(telegram := serve(bot_api.app()))
    adapter_port = free_port()
    extra, http = hook_config(tmp_path)
    running = make_gateway(extra=extra + platform_config(
        tmp_path, f"http://127.0.0.1:{adapter_port}/replies"), http=http)
    token = create_token(running.gateway.db.engine, "telegram", "intake", START)
    adapter_app = make_app(Settings(running.http_url, token, BOT_TOKEN, UPDATE_SECRET,
                                    PLATFORM_SECRET, telegram_api=telegram.url))
    servers.append(adapter := serve(adapter_app, adapter_port))

    def deliver(body: dict[str, Any], secret: str = UPDATE_SECRET) -> httpx.Response:
        return httpx.post(f"{adapter.url}/telegram", json=body, timeout=30,
                          headers={"X-Telegram-Bot-Api-Secret-Token": secret})

    shared = deliver(update(1, 9, contact={"phone_number": "+74951234567", "first_name": "Ivan",
                                           "user_id": 555001}))
    assert shared.status_code == 200
    text = update(2, 10, text="Since this morning messages are not delivered to any user.")
    assert deliver(text).status_code == 200
    assert deliver(text).status_code == 200  # Telegram retrying the same update
    assert deliver(update(3, 11), secret="guessed").status_code == 401
    running.settle()
    ticket = httpx.get(f"{running.http_url}/api/v1/tickets/SUP-000001", headers=admin(),
                       timeout=30).json()
    assert ticket["channel"] == "chat" and ticket["customer"] == "acme"
    assert ticket["requester"] == {"name": "Ivan Petrov", "email": None,
                                   "phone": "+74951234567"}
    [ack] = bot_api.sent
    assert ack["chat_id"] == "555001"
    assert ack["reply_parameters"] == {"message_id": 10, "allow_sending_without_reply": True}
    assert "SUP-000001" in ack["text"]

    document = update(4, 12, caption="The log from the server",
                      document={"file_id": "F7", "file_unique_id": "u7", "file_name": "queue.log",
                                "mime_type": "text/plain"})
    assert deliver(document).status_code == 200
    running.settle()
    ticket = httpx.get(f"{running.http_url}/api/v1/tickets/SUP-000001", headers=admin(),
                       timeout=30).json()
    last = ticket["messages"][-1]
    assert last["kind"] == "reply" and last["text"] == "The log from the server"
    [attached] = last["attachments"]
    fetched = httpx.get(f"{running.http_url}/api/v1/tickets/SUP-000001/attachments/"
                        f"{attached['id']}", headers=admin(), timeout=30)
    assert (attached["filename"], fetched.content) == ("queue.log", LOG_FILE)
    with read_transaction(running.gateway.db.engine) as session:
        assert len(session.exec(select(Input)).all()) == 2  # the retry and the forgery: none

    # The gateway retrying a reply whose 200 was lost: sent to the chat once.
    body = json.dumps({"type": "chat.reply", "timestamp": "2026-11-25T08:00:00Z", "data": {
        "id": "r1@example.com", "conversation": "555001", "text": "Once only",
        "in_reply_to": None}}).encode()
    now = datetime.now(UTC)
    headers = {"webhook-id": "msg_r1@example.com", "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": Webhook(PLATFORM_SECRET).sign("msg_r1@example.com", now,
                                                                  body),
               "content-type": "application/json"}
    for _ in range(2):
        assert httpx.post(f"{adapter.url}/replies", content=body, headers=headers,
                          timeout=30).status_code == 200
    forged = dict(headers, **{"webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()})
    assert httpx.post(f"{adapter.url}/replies", content=body, headers=forged,
                      timeout=30).status_code == 401
    assert [m["text"] for m in bot_api.sent].count("Once only") == 1

    bot_api.send_answer = "blocked"
    raised = httpx.post(f"{running.http_url}/api/v1/tickets/SUP-000001/events", headers=admin(),
                        json={"type": "priority_proposed", "priority": "high",
                              "reason": "the web client delivers meanwhile"}, timeout=30)
    assert raised.status_code == 200, raised.text
    running.settle()
    with read_transaction(running.gateway.db.engine) as session:
        notice = session.exec(select(OutboxItem).where(OutboxItem.kind == "notice")).one()
    assert notice.status == "failed" and notice.attempts == 1
    assert "HTTP 410" in (notice.last_error or "") and "blocked" in (notice.last_error or "")
