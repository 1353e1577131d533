"""What a ticket says: each message's sender, text and attachments, by CLI and API."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path

import httpx

from tests.conftest import RunningGateway, make_mail
from tests.gateway.http.helpers import admin, hook_config
from tests.gateway.outbox.test_outbox import submit

LOG = b"2026-11-25 07:00:01 ERROR queue stalled\n" * 50
PICTURE = bytes(range(256)) * 8


def mail_with_files(subject: str = "Queue stalled") -> bytes:
    message = EmailMessage()
    message["From"] = "Ivan Petrov <ivan@acme.example>"
    message["To"] = "support@example.com"
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@acme.example>"
    message.set_content("Since this morning messages are not delivered to most users.\n\n"
                        "> an old quoted line\n\n-- \nIvan Petrov, Acme")
    message.add_attachment(LOG, maintype="text", subtype="plain", filename="server.log")
    message.add_attachment(PICTURE, maintype="image", subtype="png", filename="экран.png")
    return message.as_bytes(policy=policy.SMTP)


def cli(running: RunningGateway, *args: str) -> subprocess.CompletedProcess[bytes]:
    config = running.state.parent / "config0.toml"
    return subprocess.run([sys.executable, "-m", "gateway", "--config", str(config), *args],
                          capture_output=True, timeout=120)


def started(make_gateway: Callable[..., RunningGateway], tmp_path: Path) -> RunningGateway:
    extra, http = hook_config(tmp_path)
    running = make_gateway(extra=extra, http=http)
    submit(running, mail_with_files())
    submit(running, make_mail("Another one"))
    running.settle()
    return running


def test_api_shows_text_sender_attachments_and_serves_bytes(make_gateway,
                                                             tmp_path: Path) -> None:
    """GET /tickets/N carries the new text, sender and files; full=true the original; each
    attachment's bytes come back with its content type; another ticket's id is 404."""
    running = started(make_gateway, tmp_path)
    base = running.http_url
    shown = httpx.get(f"{base}/api/v1/tickets/SUP-000001", headers=admin(), timeout=30).json()
    request = shown["messages"][0]
    assert request["from"] == {"name": "Ivan Petrov", "address": "ivan@acme.example",
                               "phone": None}
    assert request["text"].startswith("Since this morning messages are not delivered")
    assert "old quoted line" not in request["text"] and "full_text" not in request
    files = request["attachments"]
    assert [(f["filename"], f["content_type"], f["size"]) for f in files] == [
        ("server.log", "text/plain", len(LOG)), ("экран.png", "image/png", len(PICTURE))]
    # Our acknowledgement is a message of the ticket too, with what we wrote.
    ack = shown["messages"][1]
    assert ack["kind"] == "acknowledgement" and "SUP-000001" in ack["text"]

    full = httpx.get(f"{base}/api/v1/tickets/SUP-000001?full=true", headers=admin(),
                     timeout=30).json()
    assert "old quoted line" in full["messages"][0]["full_text"]

    log = httpx.get(f"{base}/api/v1/tickets/SUP-000001/attachments/{files[0]['id']}",
                    headers=admin(), timeout=30)
    assert log.status_code == 200 and log.content == LOG
    assert log.headers["content-type"].startswith("text/plain")
    picture = httpx.get(f"{base}/api/v1/tickets/SUP-000001/attachments/{files[1]['id']}",
                        headers=admin(), timeout=30)
    assert (picture.content, picture.headers["content-type"]) == (PICTURE, "image/png")
    assert "filename*=UTF-8''%D1%8D" in picture.headers["content-disposition"]

    # The same id asked under another ticket, an unknown id, no token.
    for number, attachment_id, status in (("SUP-000002", files[0]["id"], 404),
                                          ("SUP-000001", "99999.1", 404),
                                          ("SUP-000001", "junk", 404)):
        answer = httpx.get(f"{base}/api/v1/tickets/{number}/attachments/{attachment_id}",
                           headers=admin(), timeout=30)
        assert answer.status_code == status, (number, attachment_id)
    assert httpx.get(f"{base}/api/v1/tickets/SUP-000001/attachments/{files[0]['id']}",
                     timeout=30).status_code == 401


def test_cli_show_has_headers_local_time_and_saves_attachments(make_gateway,
                                                               tmp_path: Path) -> None:
    """`tickets show` prints headers, Moscow time (or --tz), the text and the files, no Python
    reprs; `--json` matches the API; `tickets attachment --out` writes the bytes."""
    running = started(make_gateway, tmp_path)
    text = cli(running, "tickets", "show", "SUP-000001")
    assert text.returncode == 0, text.stderr
    out = text.stdout.decode()
    assert out.startswith("SUP-000001  Queue stalled")
    assert "Received at:      2026-11-25 11:00 MSK" in out
    assert "From:             Ivan Petrov <ivan@acme.example>" in out
    assert "server.log  text/plain" in out and "Since this morning messages" in out
    assert "{'" not in out and "['" not in out and "None" not in out

    utc = cli(running, "tickets", "show", "SUP-000001", "--tz", "UTC").stdout.decode()
    assert "Received at:      2026-11-25 08:00 UTC" in utc
    bad_zone = cli(running, "tickets", "show", "SUP-000001", "--tz", "Mars/Olympus")
    assert bad_zone.returncode == 2 and b"unknown time zone" in bad_zone.stderr

    as_json = json.loads(cli(running, "tickets", "show", "SUP-000001", "--json").stdout)
    attachment_id = as_json["messages"][0]["attachments"][0]["id"]
    target = tmp_path / "saved.log"
    saved = cli(running, "tickets", "attachment", "SUP-000001", attachment_id,
                "--out", str(target))
    assert saved.returncode == 0, saved.stderr
    assert target.read_bytes() == LOG
    other = cli(running, "tickets", "attachment", "SUP-000002", attachment_id,
                "--out", str(tmp_path / "x"))
    assert other.returncode == 1 and b"no attachment" in other.stderr
    assert not (tmp_path / "x").exists()
