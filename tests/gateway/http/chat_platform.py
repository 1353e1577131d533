"""A chat platform's reply endpoint on loopback: records every signed reply as it arrived and
answers as scripted ("ok", "500", "410"), so tests see retries and what was taken."""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PLATFORM_SECRET = "whsec_" + base64.b64encode(b"chat-platform-key-0123456789").decode()


@dataclass(frozen=True)
class Arrived:
    headers: dict[str, str]
    body: bytes
    answered: str

    @property
    def reply(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Platform:
    """ThreadingHTTPServer on 127.0.0.1:PORT taking POST /replies."""

    port: int
    script: list[str] = field(default_factory=list)
    log: list[Arrived] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/replies"

    def start(self) -> None:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with platform.arrived:
                    answer = platform.script.pop(0) if platform.script else "ok"
                    platform.log.append(Arrived(
                        {k.lower(): v for k, v in self.headers.items()}, body, answer))
                    platform.arrived.notify_all()
                self.send_response({"ok": 200, "500": 500, "410": 410}[answer])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def taken(self) -> list[Arrived]:
        """The replies answered 2xx."""
        with self.arrived:
            return [a for a in self.log if a.answered == "ok"]

    def wait_for(self, count: int, timeout: float = 60.0) -> list[Arrived]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len([a for a in self.log if a.answered == "ok"]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"platform: {count} replies not taken in {timeout} s:"
                                         f" {[a.answered for a in self.log]}")
                self.arrived.wait(min(left, 0.5))
        return self.taken()


def platform_config(tmp_path: Path, url: str, name: str = "telegram") -> str:
    secret = tmp_path / f"{name}.secret"
    secret.write_text(PLATFORM_SECRET + "\n", encoding="utf-8")
    return (f'[[chat_platforms]]\nname = "{name}"\nreply_url = "{url}"\n'
            f'secret_file = "{secret}"\ntimeout_s = 2\n\n')
