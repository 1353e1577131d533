"""A gateway with the portal on, and the links it mails, for the portal's tests."""

from __future__ import annotations

import re
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from tests.conftest import RunningGateway
from tests.gateway.http.helpers import hook_config

PORTAL_SECRET = "portal-secret-for-tests-0123456789abcdef"
PORTAL_CUSTOMERS = """
[[customer]]
id = "acme"
name = "ООО Акме"
tier = "24/7"
language = "ru"
emails = ["ivan@acme.example"]
domains = ["acme.example"]

[[customer]]
id = "globex"
name = "Globex"
tier = "24/7"
language = "en"
emails = ["boss@globex.example"]
"""


def start_portal(make_gateway: Callable[..., RunningGateway], tmp_path: Path,
                 http_extra: str = "") -> RunningGateway:
    """A gateway whose mail goes to its outgoing maildir and whose portal is on."""
    extra, http = hook_config(tmp_path, customers=PORTAL_CUSTOMERS)
    (tmp_path / "portal.secret").write_text(PORTAL_SECRET + "\n", encoding="utf-8")
    extra += (f'\n[portal]\nbase_url = "http://portal.invalid"\n'
              f'secret_file = "{tmp_path / "portal.secret"}"\n')
    return make_gateway(extra=extra, http=http + http_extra)


def mails_to(running: RunningGateway, address: str) -> list[EmailMessage]:
    """Messages in the gateway's outgoing maildir to ADDRESS, oldest first."""
    found = []
    for path in sorted((running.state / "outgoing" / "new").iterdir(),
                       key=lambda p: p.stat().st_mtime_ns):
        parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        if address in str(parsed["To"]):
            found.append(parsed)
    return found


def portal_path(message: EmailMessage) -> str:
    """The portal link in MESSAGE, as a path on the gateway's own listener."""
    body = message.get_body(("plain",))
    assert body is not None
    match = re.search(r"http://portal\.invalid(/portal/\S+)", str(body.get_content()))
    assert match, body.get_content()
    return match.group(1)
