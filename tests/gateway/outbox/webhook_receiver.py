"""A subscriber on loopback that checks Standard Webhooks signatures by the spec's own words.

Independent of the `standardwebhooks` package the gateway signs with: the signature is
base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")), prefixed "v1,", the
key being the base64 after "whsec_". Behaviours are scripted per request: answer 2xx, 500,
a redirect, stall past the sender's timeout, or hang until released.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET = "whsec_" + base64.b64encode(b"subscriber-key-0123456789abcdef").decode()


def signature_ok(secret: str, headers: dict[str, str], body: bytes,
                 tolerance_s: int = 300) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(stamp)) > tolerance_s:
        return False
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body,
                                         hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(f"v1,{expected}", given)
               for given in headers["webhook-signature"].split(" "))


@dataclass
class Received:
    webhook_id: str
    event: dict[str, Any]
    answered: str
    signed: bool


@dataclass
class Receiver:
    """ThreadingHTTPServer on 127.0.0.1:PORT; SCRIPT is consumed one answer per request,
    then `default` answers: "ok", "500", "redirect", "stall" (sleep past the timeout),
    "hang" (until `release` is set)."""

    port: int
    secret: str = SECRET
    script: list[str] = field(default_factory=list)
    default: str = "ok"
    stall_s: float = 3.0
    log: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.arrived:
                    answer = receiver.script.pop(0) if receiver.script else receiver.default
                    receiver.log.append(Received(
                        headers.get("webhook-id", ""), json.loads(body), answer,
                        signature_ok(receiver.secret, headers, body)))
                    receiver.arrived.notify_all()
                if answer == "hang":
                    receiver.release.wait(120)
                    answer = "ok"
                if answer == "stall":
                    time.sleep(receiver.stall_s)
                    answer = "ok"
                if answer == "redirect":
                    self.send_response(307)
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 500 if answer == "500" else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self.release.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/intake"

    def delivered_ids(self) -> list[int]:
        """Event ids answered 2xx (a stall counts: it was answered, after the sender left)."""
        with self.arrived:
            return [r.event["data"]["id"] for r in self.log if r.answered in ("ok", "hang")]

    def wait_for(self, predicate: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"receiver: condition not met in {timeout} s: "
                                         f"{[(r.webhook_id, r.answered) for r in self.log]}")
                self.arrived.wait(min(left, 0.5))


def subscription(name: str, url: str, secret_path: str, **extra: Any) -> str:
    lines = [f'[[subscriptions]]\nname = "{name}"\nurl = "{url}"\nsecret_file = "{secret_path}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n\n"
