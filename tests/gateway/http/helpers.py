"""Signed requests to a running gateway over loopback, as a call centre would send them."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

SECRET = "call-centre-secret-1"
ADMIN_TOKEN = "admin-token-for-tests"
CUSTOMERS = """
[[customer]]
id = "acme"
name = "Acme"
tier = "24/7"
language = "en"
emails = ["ivan@acme.example"]
domains = ["acme.example"]
phones = ["8 (495) 123-45-67", "+7 812 555/01/02"]

[[customer]]
id = "globex"
name = "Globex"
tier = "8/5"
phones = ["[903] 111 22 33"]
"""


def hook_config(tmp_path: Path, hooks: str = "", customers: str = CUSTOMERS,
                files: str = "") -> tuple[str, str]:
    """(extra, http) config pieces: customers, a generic hook, the admin token; FILES adds
    lines to the `[files]` table (a rules or policy file)."""
    (tmp_path / "customers.toml").write_text(customers, encoding="utf-8")
    (tmp_path / "callcenter.secret").write_text(SECRET + "\n", encoding="utf-8")
    (tmp_path / "admin.token").write_text(ADMIN_TOKEN, encoding="utf-8")
    extra = (f'[files]\ncustomers = "{tmp_path / "customers.toml"}"\n{files}\n'
             f'[[webhooks]]\nname = "callcenter"\nprovider = "generic"\n'
             f'secret_file = "{tmp_path / "callcenter.secret"}"\n\n{hooks}')
    http = f'admin_token_file = "{tmp_path / "admin.token"}"\n'
    return extra, http


def secret_file(tmp_path: Path, name: str, value: str) -> str:
    """VALUE written to a file in TMP_PATH, as a hook's `secret_file = ...` line."""
    path = tmp_path / f"{name}.secret"
    path.write_text(value, encoding="utf-8")
    return f'secret_file = "{path}"\n'


def signed_headers(body: bytes, at: datetime, secret: str = SECRET) -> dict[str, str]:
    timestamp = str(int(at.timestamp()))
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return {"X-Timestamp": timestamp, "X-Signature": f"sha256={digest.hexdigest()}",
            "Content-Type": "application/json"}


def call(call_id: str = "c-8841", **fields: Any) -> bytes:
    payload: dict[str, Any] = {
        "call_id": call_id, "caller": "+7 495 123-45-67", "agent": "operator-7",
        "subject": "Calls drop after 10 seconds",
        "description": "Every outgoing call of our office drops after about ten seconds "
                       "since this morning.",
        "declared_priority": "high", "started_at": "2026-11-25T07:00:00Z", "duration_s": 130}
    payload.update(fields)
    return json.dumps({k: v for k, v in payload.items() if v is not None}).encode()


def post_call(base: str, body: bytes, at: datetime, hook: str = "callcenter",
              headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{base}/hooks/{hook}", content=body,
                      headers=headers if headers is not None else signed_headers(body, at),
                      timeout=30)


def admin(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
