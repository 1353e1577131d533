"""The outgoing relay logging in with XOAUTH2 (aiosmtpd relay, loopback token server), and the
renewal of one refresh token shared by several processes."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest
from aiosmtpd.smtp import SMTP, AuthResult
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session, select

from gateway.config.settings import MailboxSettings, parse_settings
from gateway.outbox.oauth_failures import LoginTarget, TokenFailure
from gateway.outbox.oauth_tokens import TokenSource
from gateway.store.db import make_engine
from gateway.store.models import OutboxItem
from gateway.store.token_files import TokenFile
from rules.config_errors import ConfigError
from tests.conftest import (
    START,
    RunningGateway,
    SessionsController,
    SinkHandler,
    free_port,
    make_mail,
    stop_controller,
)
from tests.dovecot import make_certificate
from tests.gateway.intake.test_imap_oauth import DUTY, oauth_keys, policy_with_duty
from tests.gateway.outbox.test_outbox import outbox_rows, submit
from tests.oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer, running_oauth_server

RELAY_USER = "relay@example.com"


@dataclass
class XOAuth2Relay(SinkHandler):
    """A relay that takes AUTH XOAUTH2 with tokens the test's provider vouches for."""

    provider: OAuthServer | None = None
    logins: list[tuple[str, bool]] = field(default_factory=list)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        assert self.provider is not None
        fields = dict(part.split("=", 1) for part in
                      base64.b64decode(args[1]).decode().split("\x01") if "=" in part)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        good = self.provider.valid(token) == user
        self.logins.append((user, good))
        return AuthResult(success=good, handled=False,
                          message=None if good else "535 5.7.8 token not accepted")


@pytest.fixture(name="oauth_server")
def oauth_server_fixture() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


@pytest.fixture(name="xoauth2_relay")
def xoauth2_relay_fixture(oauth_server: OAuthServer) -> Iterator[tuple[XOAuth2Relay, int]]:
    handler = XOAuth2Relay(provider=oauth_server)
    port = free_port()
    controller = SessionsController(handler, hostname="127.0.0.1", port=port,
                                    auth_require_tls=False)
    controller.start()
    try:
        yield handler, port
    finally:
        stop_controller(controller)


def duty_files(running: RunningGateway) -> list[bytes]:
    new = running.state / "outgoing" / "new"
    return [p.read_bytes() for p in new.iterdir()] if new.exists() else []


def test_relay_sends_with_xoauth2_and_its_failure_goes_to_the_maildir(
        oauth_server: OAuthServer, xoauth2_relay: tuple[XOAuth2Relay, int],
        make_gateway: Callable[..., RunningGateway], tmp_path: Path) -> None:
    """Acknowledgements go out through a relay that wants XOAUTH2; when the relay's own grant
    is revoked the duty alert is written to the local maildir once, the messages wait in the
    outbox, and after a new login they are sent, none lost."""
    relay, port = xoauth2_relay
    oauth_server.access_ttl_s = 4
    running = make_gateway(relay_port=port, extra=policy_with_duty(tmp_path),
                           outgoing=f'username = "{RELAY_USER}"\n'
                                    + oauth_keys(oauth_server, refresh_before_s=2))
    grant = TokenFile(running.state, "outgoing", "outgoing")
    grant.write({"refresh_token": oauth_server.grant_for(RELAY_USER), "expires_at": 0})
    submit(running, make_mail("first", message_id="<r1@acme.example>"))
    running.settle()
    assert [m["In-Reply-To"] for m in relay.messages] == ["<r1@acme.example>"]
    assert relay.logins == [(RELAY_USER, True)]

    tokens = running.gateway.logins.relay_tokens
    assert tokens is not None
    oauth_server.revoke(RELAY_USER)
    # The connection's token comes due: the relay reconnects, and renewal is refused.
    deadline = tokens.expires_at() - tokens.margin_s
    wait_until_time = time.monotonic() + 30
    while time.time() < deadline and time.monotonic() < wait_until_time:
        time.sleep(0.1)
    for subject in ("second", "third"):
        submit(running, make_mail(subject, message_id=f"<{subject}@acme.example>"))
        running.settle()
        running.clock.advance(timedelta(hours=1))  # past any backoff
        running.settle()
    assert len(relay.messages) == 1
    assert tokens.failing is not None and "invalid_grant" in tokens.failing
    [alert] = duty_files(running)
    parsed = message_from_bytes(alert, policy=policy.default)
    assert parsed["To"] == DUTY and "outgoing relay" in str(parsed["Subject"])
    ready = httpx.get(f"{running.http_url}/readyz")
    assert ready.status_code == 503 and "outgoing" in ready.json()["login_failing"]
    assert 'intake_oauth_login_failing{login="outgoing"} 1.0' in httpx.get(
        f"{running.http_url}/metrics").text
    waiting = [r for r in outbox_rows(running) if r.kind == "acknowledgement" and not r.sent_at]
    assert len(waiting) == 2 and all("invalid_grant" in (r.last_error or "") for r in waiting)

    grant.write({"refresh_token": oauth_server.grant_for(RELAY_USER), "expires_at": 0})
    running.clock.advance(timedelta(hours=2))
    running.settle()
    # (The acknowledgements' deadlines passed meanwhile: SLA alerts went out too.)
    assert sorted(str(m["In-Reply-To"]) for m in relay.messages if m["In-Reply-To"]) == [
        "<r1@acme.example>", "<second@acme.example>", "<third@acme.example>"]
    assert tokens.failing is None
    assert len(duty_files(running)) == 1


def mailbox_settings(server: OAuthServer) -> MailboxSettings:
    return MailboxSettings(name="support", host="127.0.0.1", username="support",
                           auth="xoauth2", provider="generic", token_url=f"{server.url}/token",
                           client_id=CLIENT_ID, client_secret=SecretStr(CLIENT_SECRET),
                           refresh_before_s=60)


def test_processes_sharing_a_token_renew_it_once(database_url: str, tmp_path: Path) -> None:
    """Several token sources over one state directory and database, all asking at once for
    a renewal of a rotating refresh token: one renews, the others use what it saved (without
    the lock, all but one would present a retired refresh token and be refused)."""
    with running_oauth_server() as server:
        engine = make_engine(database_url)
        TokenFile(tmp_path, "mailbox", "support").write(
            {"refresh_token": server.grant_for("support"), "expires_at": 0})
        target = LoginTarget("mailbox", "support", "imap")
        sources = [TokenSource(mailbox_settings(server), target, tmp_path, engine)
                   for _ in range(4)]
        with ThreadPoolExecutor(4) as pool:
            tokens = list(pool.map(lambda source: source.access_token(), sources))
        engine.dispose()
        assert len(set(tokens)) == 1 and server.valid(tokens[0]) == "support"
        assert server.refreshes == 1


def test_advisory_lock_spans_state_directories_on_postgresql(database_url: str,
                                                              tmp_path: Path) -> None:
    """On PostgreSQL the renewal lock is held in the database too, so instances on other
    hosts (whose file locks do not meet) still renew one at a time."""
    engine = make_engine(database_url)
    first = TokenFile(tmp_path / "a", "mailbox", "support")
    second = TokenFile(tmp_path / "b", "mailbox", "support")
    held, release, order = threading.Event(), threading.Event(), []

    def hold() -> None:
        with first.renewal_lock(engine):
            held.set()
            release.wait(10)
            order.append("first released")

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    timer = threading.Timer(0.5, release.set)
    timer.start()
    with second.renewal_lock(engine):
        order.append("second entered")
    thread.join(10)
    timer.join()
    engine.dispose()
    expected = (["first released", "second entered"] if engine.dialect.name == "postgresql"
                else ["second entered", "first released"])  # SQLite: one instance only
    assert order == expected


@pytest.mark.parametrize(("keys", "problem"), [
    ('auth = "xoauth2"\nclient_id = "x"\n', "needs provider"),
    ('auth = "xoauth2"\nprovider = "google"\n', "needs client_id"),
    ('auth = "xoauth2"\nprovider = "generic"\nclient_id = "x"\n', "needs token_url"),
    ('auth = "oauthbearer"\nprovider = "yandex"\nclient_id = "x"\ngrant = "client_credentials"\n'
     'client_secret = "s"\n', "no app-only"),
    ('auth = "xoauth2"\nprovider = "microsoft"\nclient_id = "x"\n'
     'grant = "client_credentials"\n', "needs client_secret"),
])
def test_incomplete_oauth_settings_are_refused(keys: str, problem: str) -> None:
    """check-config names what an OAuth login lacks, on the mailbox's line."""
    text = f'[[mailboxes]]\nname = "m"\nhost = "h"\nusername = "u"\n{keys}'
    with pytest.raises(ConfigError) as raised:
        parse_settings(text, None)
    assert problem in str(raised.value)


def test_provider_defaults_and_secret_file(tmp_path: Path) -> None:
    """A provider's scopes and endpoints are filled in; the client secret comes from a file."""
    (tmp_path / "client.secret").write_text("s3cret\n", encoding="utf-8")
    text = ('[[mailboxes]]\nname = "m"\nhost = "h"\nusername = "u"\nauth = "xoauth2"\n'
            'provider = "yandex"\nclient_id = "x"\nclient_secret_file = "client.secret"\n'
            '[outgoing]\nhost = "smtp.yandex.ru"\nusername = "u"\nauth = "xoauth2"\n'
            'provider = "microsoft"\nclient_id = "x"\n')
    settings = parse_settings(text, tmp_path / "config.toml")
    mailbox = settings.mailboxes[0]
    assert mailbox.client_secret is not None
    assert mailbox.client_secret.get_secret_value() == "s3cret"
    assert mailbox.scopes_for("imap") == ["mail:imap_full"]
    assert mailbox.token_endpoint() == "https://oauth.yandex.ru/token"
    assert settings.outgoing.scopes_for("smtp") == ["https://outlook.office.com/SMTP.Send",
                                                    "offline_access"]


@pytest.fixture(name="tls_oauth_server")
def tls_oauth_server_fixture(tmp_path: Path) -> Iterator[OAuthServer]:
    """The provider over TLS (msal talks to https authorities only), its own CA in tmp_path."""
    with running_oauth_server(tls=make_certificate(tmp_path)) as server:
        yield server


def microsoft_settings(server: OAuthServer, tmp_path: Path, grant: str) -> MailboxSettings:
    return MailboxSettings(
        name="support", host="127.0.0.1", username="support@contoso.example", auth="xoauth2",
        provider="microsoft", authority_url=f"{server.url}/contoso", client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET), token_ca_file=tmp_path / "cert.pem",
        grant=grant, refresh_before_s=60)


def test_microsoft_device_login_and_renewal_through_msal(tls_oauth_server: OAuthServer,
                                                         tmp_path: Path) -> None:
    """provider = "microsoft" goes through msal: the device-code sign-in, then a renewal with
    the saved refresh token (the provider's metadata read from the authority given)."""
    server = tls_oauth_server
    server.client_secret = None  # a public client: Entra's device flow takes no secret
    target = LoginTarget("mailbox", "support", "imap")
    source = TokenSource(microsoft_settings(server, tmp_path, "device_code"), target,
                         tmp_path / "state", None)
    shown: list[str] = []

    def show(url: str, code: str, message: str) -> None:
        shown.append(url)
        server.approve(code, "support@contoso.example")

    login = source.login(show)
    assert shown == [f"{server.url}/device"]
    assert server.valid(login.access_token) == "support@contoso.example"
    saved = source.file.read() or {}
    first_refresh = saved["refresh_token"]
    assert first_refresh in server.refresh

    # The access token has run out (as if an hour had passed): renewed through msal.
    source.file.write({**saved, "expires_at": 0})
    source.forget()
    renewed = source.access_token()
    assert renewed != login.access_token and server.refreshes == 1
    assert server.valid(renewed) == "support@contoso.example"
    saved = source.file.read() or {}
    assert saved["refresh_token"] != first_refresh and saved["refresh_token"] in server.refresh


def test_microsoft_client_credentials_through_msal(tls_oauth_server: OAuthServer,
                                                   tmp_path: Path) -> None:
    """grant = "client_credentials": app-only tokens straight from msal, nothing saved."""
    server = tls_oauth_server
    source = TokenSource(microsoft_settings(server, tmp_path, "client_credentials"),
                         LoginTarget("mailbox", "support", "imap"), tmp_path / "state", None)
    assert server.valid(source.access_token()) == server.app_user
    assert source.file.read() is None
    server.client_secret = "rotated-by-the-admin"  # our secret has expired
    source.forget()
    with pytest.raises(TokenFailure) as failure:
        source.access_token()
    assert failure.value.refused and "invalid_client" in failure.value.reason
    assert source.failing is not None


def test_short_lived_tokens_are_renewed_at_half_their_life(oauth_server: OAuthServer,
                                                           tmp_path: Path) -> None:
    """A provider whose tokens live less than refresh_before_s: renewed at half their life,
    not on every request (which would hammer it and reopen sessions without pause)."""
    oauth_server.access_ttl_s = 20
    TokenFile(tmp_path, "mailbox", "support").write(
        {"refresh_token": oauth_server.grant_for("support"), "expires_at": 0})
    source = TokenSource(mailbox_settings(oauth_server),  # refresh_before_s = 60
                         LoginTarget("mailbox", "support", "imap"), tmp_path, None)
    first = source.access_token()
    assert source.access_token() == first and oauth_server.refreshes == 1
    assert source.margin_s == 10
    # Another process reading the saved token judges it alike.
    other = TokenSource(mailbox_settings(oauth_server), LoginTarget("mailbox", "support", "imap"),
                        tmp_path, None)
    assert other.access_token() == first and oauth_server.refreshes == 1


def test_unusable_token_file_is_a_login_failure(oauth_server: OAuthServer,
                                                tmp_path: Path) -> None:
    """A token file that cannot be used is reported as the login's failure, with the file and
    the command that mends it, not as an unexplained crash of the mailbox."""
    token_file = TokenFile(tmp_path, "mailbox", "support")
    token_file.directory.mkdir(parents=True)
    token_file.path.write_text("{half a file", encoding="utf-8")
    source = TokenSource(mailbox_settings(oauth_server),
                         LoginTarget("mailbox", "support", "imap"), tmp_path, None)
    with pytest.raises(TokenFailure) as failure:
        source.access_token()
    assert failure.value.refused
    assert str(token_file.path) in failure.value.reason
    assert "intake-gateway mailbox login support" in failure.value.reason
    assert source.failing == failure.value.reason


def test_instances_sharing_a_login_alert_once(database_url: str, tmp_path: Path) -> None:
    """Two instances sharing the database and the token see the same revoked grant, each
    retrying: they name the failure alike, and the duty engineer gets one alert."""
    from gateway.outbox.duty_alerts import send_duty_alert
    from gateway.store.db import open_migrated

    with running_oauth_server() as server:
        engine = open_migrated(database_url)
        TokenFile(tmp_path, "mailbox", "support").write(
            {"refresh_token": server.grant_for("support"), "expires_at": 0})
        server.revoke("support")
        target = LoginTarget("mailbox", "support", "imap")
        instances = [TokenSource(mailbox_settings(server), target, tmp_path, engine)
                     for _ in range(2)]
        sent = []
        for _ in range(3):  # retries
            for source in instances:
                with pytest.raises(TokenFailure) as failure:
                    source.access_token()
                sent.append(send_duty_alert(
                    engine, duty_address=DUTY, sender="Support <support@example.com>",
                    target=target, failure=failure.value, now=START, maildir=None))
        rows = [r for r in outbox_rows_of(engine) if r.kind == "duty_alert"]
        engine.dispose()
    assert sent.count(True) == 1 and len(rows) == 1
    assert rows[0].recipient == DUTY and b"invalid_grant" in rows[0].message


def outbox_rows_of(engine: Engine) -> list[OutboxItem]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxItem)))
