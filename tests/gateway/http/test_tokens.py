"""Scoped API tokens from the CLI against a running gateway; web forms with files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from gateway.store.db import read_transaction
from gateway.store.models import ApiToken
from tests.conftest import RunningGateway
from tests.gateway.http.helpers import ADMIN_TOKEN, admin, hook_config

FORM = {"subject": "Export fails", "description": "The export page answers 500 for all of us.",
        "contact_email": "ivan@acme.example", "request_id": "form-1"}


def cli(running: RunningGateway, *args: str) -> subprocess.CompletedProcess[str]:
    config = running.state.parent / "config0.toml"
    return subprocess.run([sys.executable, "-m", "gateway", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def running(make_gateway, tmp_path: Path) -> RunningGateway:
    extra, http = hook_config(tmp_path)
    gateway: RunningGateway = make_gateway(extra=extra, http=http)
    return gateway


def create(running: RunningGateway, scope: str, name: str) -> str:
    made = cli(running, "tokens", "create", "--scope", scope, "--name", name)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("igw_") and len(token) > 40
    return token


def test_scopes_allow_what_they_name_and_403_names_the_missing_one(running) -> None:
    """intake submits only; read reads tickets and events only; admin does all; the
    configured admin token keeps working; only the token's hash is stored."""
    base = running.http_url
    intake, read, full = (create(running, s, f"{s}-1") for s in ("intake", "read", "admin"))
    with read_transaction(running.gateway.db.engine) as session:
        stored = {t.name: t.token_sha256 for t in session.exec(select(ApiToken))}
    assert not any(token in str(stored) for token in (intake, read, full))

    submitted = httpx.post(f"{base}/api/v1/requests", json=FORM, headers=admin(intake),
                           timeout=30)
    assert submitted.status_code == 202, submitted.text
    running.settle()
    for path in ("/api/v1/tickets", "/api/v1/tickets/SUP-000001", "/api/v1/events"):
        denied = httpx.get(f"{base}{path}", headers=admin(intake), timeout=30)
        assert denied.status_code == 403
        assert denied.json() == {"error": "token intake-1 has scope intake; this needs scope "
                                          "read", "field": "scope"}
        for token in (read, full, ADMIN_TOKEN):
            assert httpx.get(f"{base}{path}", headers=admin(token),
                             timeout=30).status_code == 200
    refused = httpx.post(f"{base}/api/v1/requests", json={**FORM, "request_id": "form-2"},
                         headers=admin(read), timeout=30)
    assert (refused.status_code, refused.json()["field"]) == (403, "scope")
    change = {"type": "priority_changed", "priority": "critical", "reason": "all users"}
    for token, status in ((read, 403), (intake, 403), (full, 200)):
        answer = httpx.post(f"{base}/api/v1/tickets/SUP-000001/events", json=change,
                            headers=admin(token), timeout=30)
        assert answer.status_code == status, answer.text
    assert "needs scope admin" in httpx.post(
        f"{base}/api/v1/tickets/SUP-000001/events", json=change, headers=admin(read),
        timeout=30).json()["error"]


def test_list_revoke_and_bad_tokens(running) -> None:
    """A revoked token is refused at once (401, named); listing shows scope and state, never
    the token; names are unique; unknown tokens are 401."""
    base = running.http_url
    token = create(running, "read", "dashboard")
    assert httpx.get(f"{base}/api/v1/events", headers=admin(token), timeout=30).status_code == 200
    again = cli(running, "tokens", "create", "--scope", "read", "--name", "dashboard")
    assert again.returncode == 1 and "exists already" in again.stderr
    revoked = cli(running, "tokens", "revoke", "dashboard")
    assert revoked.returncode == 0, revoked.stderr
    answer = httpx.get(f"{base}/api/v1/events", headers=admin(token), timeout=30)
    assert (answer.status_code, answer.json()["error"]) == (401, "token dashboard was revoked")
    listing = cli(running, "tokens", "list").stdout
    assert "dashboard" in listing and "revoked" in listing and token not in listing
    assert cli(running, "tokens", "revoke", "dashboard").returncode == 1
    for bad in ("igw_" + "x" * 43, "nonsense"):
        assert httpx.get(f"{base}/api/v1/events", headers=admin(bad),
                         timeout=30).status_code == 401
    bad_scope = cli(running, "tokens", "create", "--scope", "everything")
    assert bad_scope.returncode == 2


def test_web_form_with_files(running) -> None:
    """A multipart form with a binary file and a log becomes a ticket whose attachments come
    back byte for byte; too many files or a broken body is 422, nothing stored."""
    base = running.http_url
    intake = create(running, "intake", "site-form")
    binary = bytes(range(256)) * 40
    files = {"screenshot": ("screen.png", binary, "image/png"),
             "log": ("app.log", b"ERROR export failed\n" * 100, "text/plain")}
    answer = httpx.post(f"{base}/api/v1/requests", data=FORM, files=files,
                        headers=admin(intake), timeout=30)
    assert answer.status_code == 202, answer.text
    running.settle()
    ticket = httpx.get(f"{base}/api/v1/tickets/SUP-000001", headers=admin(), timeout=30).json()
    assert ticket["subject"] == "Export fails" and ticket["channel"] == "web"
    request = ticket["messages"][0]
    assert request["text"].startswith("The export page answers 500")
    attached = {a["filename"]: a for a in request["attachments"]}
    assert attached["screen.png"]["size"] == len(binary)
    image = httpx.get(f"{base}/api/v1/tickets/SUP-000001/attachments/"
                      f"{attached['screen.png']['id']}", headers=admin(), timeout=30)
    assert (image.content, image.headers["content-type"]) == (binary, "image/png")

    many = {f"f{i}": (f"{i}.txt", b"x", "text/plain") for i in range(101)}
    too_many = httpx.post(f"{base}/api/v1/requests", data={**FORM, "request_id": "form-3"},
                          files=many, headers=admin(intake), timeout=30)
    assert (too_many.status_code, too_many.json()["field"]) == (422, "attachments")
    broken = httpx.post(f"{base}/api/v1/requests", content=b"--xyz\r\nnot a part",
                        headers={**admin(intake),
                                 "Content-Type": "multipart/form-data; boundary=xyz"},
                        timeout=30)
    assert broken.status_code == 422, broken.text
    running.settle()
    assert len(httpx.get(f"{base}/api/v1/tickets", headers=admin(),
                         timeout=30).json()) == 1
