"""IMAP mailboxes logging in with OAuth 2.0, against a private Dovecot whose oauth2 passdb asks
a token server the test runs on loopback (tests/oauth_server.py)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from gateway.sla.policy import DEFAULT_POLICY
from gateway.store.token_files import TokenFile
from gateway.tickets.view import list_tickets
from tests.conftest import RunningGateway, Sink, make_mail
from tests.dovecot import Dovecot, running_dovecot
from tests.gateway.intake.test_imap import inputs_count, wait_until
from tests.oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer, running_oauth_server

DUTY = "duty@support.example"


@pytest.fixture(name="oauth_server")
def oauth_server_fixture() -> Iterator[OAuthServer]:
    with running_oauth_server() as server:
        yield server


@pytest.fixture(name="oauth_dovecot")
def oauth_dovecot_fixture(oauth_server: OAuthServer) -> Iterator[Dovecot]:
    """A Dovecot that takes XOAUTH2 / OAUTHBEARER tokens the oauth_server vouches for."""
    with running_dovecot(oauth2_introspection_url=f"{oauth_server.url}/introspect") as server:
        yield server


def oauth_keys(server: OAuthServer, auth: str = "xoauth2", refresh_before_s: float = 2) -> str:
    return (f'auth = "{auth}"\nprovider = "generic"\ntoken_url = "{server.url}/token"\n'
            f'device_authorization_url = "{server.url}/device/code"\n'
            f'client_id = "{CLIENT_ID}"\nclient_secret = "{CLIENT_SECRET}"\n'
            f'scopes = ["mail"]\nrefresh_before_s = {refresh_before_s}\n')


def policy_with_duty(tmp_path: Path) -> str:
    """A [files] table naming a policy whose escalation.duty_address is DUTY."""
    path = tmp_path / "policy.toml"
    path.write_text(DEFAULT_POLICY.read_text(encoding="utf-8").replace(
        'duty_address = ""', f'duty_address = "{DUTY}"'), encoding="utf-8")
    return f'\n[files]\npolicy = "{path}"\n'


def save_grant(running: RunningGateway, server: OAuthServer, name: str = "support",
               user: str = "support") -> None:
    """What `mailbox login` leaves behind, for a grant the provider made to USER; under the
    renewal lock, as the command writes it (a renewal under way must not overwrite it)."""
    token_file = TokenFile(running.state, "mailbox", name)
    with token_file.renewal_lock(None):
        token_file.write(
            {"refresh_token": server.grant_for(user), "access_token": "", "expires_at": 0})


def tickets(running: RunningGateway) -> list[dict[str, object]]:
    return list_tickets(running.gateway.db.engine)


def duty_alerts(sink: Sink) -> list[object]:
    return [m for m in sink.messages if m["To"] == DUTY]


def test_mailbox_login_command_then_import(oauth_server: OAuthServer, oauth_dovecot: Dovecot,
                                           make_gateway: Callable[..., RunningGateway],
                                           tmp_path: Path) -> None:
    """`mailbox login` prints the URL and code, waits for the person, saves the refresh token
    0600 in the state directory; the mailbox then logs in with XOAUTH2 and imports."""
    running = make_gateway(extra=oauth_dovecot.mailbox_config(extra=oauth_keys(oauth_server)))
    config = tmp_path / "config0.toml"
    login = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(config), "mailbox", "login",
         "support"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert login.stdout is not None
    printed: list[str] = []
    code = None
    deadline = time.monotonic() + 60
    while code is None and time.monotonic() < deadline:
        line = login.stdout.readline()
        if not line:
            break
        printed.append(line)
        if "enter the code" in line:
            code = line.split()[-1]
    if code is None:
        login.kill()
        raise AssertionError(f"no code printed: {printed} {login.communicate()[1]}")
    assert f"{oauth_server.url}/device" in "".join(printed)
    oauth_server.approve(code, "support")
    out, err = login.communicate(timeout=60)
    assert login.returncode == 0, err
    assert "signed in" in out
    token_file = TokenFile(running.state, "mailbox", "support")
    saved = token_file.read()
    assert saved is not None and saved["refresh_token"] in oauth_server.refresh
    assert stat.S_IMODE(os.stat(token_file.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(token_file.directory).st_mode) == 0o700
    # Nothing the provider issued is ever printed.
    assert saved["refresh_token"] not in out + err + "".join(printed)
    assert saved["access_token"] not in out + err + "".join(printed)

    oauth_dovecot.append(make_mail(message_id="<oauth1@acme.example>"))
    with capture_logs() as logs:
        assert running.call(running.gateway.mailboxes[0].poll_once) == 1
    running.settle()
    assert [t["subject"] for t in tickets(running)] == ["Messages are not delivered"]
    assert oauth_server.introspected and all(ok for _, ok in oauth_server.introspected)
    assert oauth_server.refreshes == 0  # the access token from the login was still good
    assert saved["access_token"] not in repr(logs) and saved["refresh_token"] not in repr(logs)


@pytest.mark.parametrize("auth", ["xoauth2", "oauthbearer"])
def test_token_expiring_during_idle_is_renewed_and_rotated(
        oauth_server: OAuthServer, oauth_dovecot: Dovecot,
        make_gateway: Callable[..., RunningGateway], auth: str) -> None:
    """An idling session is reopened with a fresh token before the old one expires; every
    renewal's rotated refresh token is saved at once; mail goes on arriving, once each."""
    oauth_server.access_ttl_s = 5
    running = make_gateway(extra=oauth_dovecot.mailbox_config(
        extra=oauth_keys(oauth_server, auth, refresh_before_s=2)))
    save_grant(running, oauth_server)
    worker = running.gateway.mailboxes[0]
    running.call(running.gateway.start_mailboxes)
    oauth_dovecot.append(make_mail("first", message_id="<idle1@acme.example>"))
    wait_until(lambda: len(tickets(running)) == 1, 30, running)
    # Three token lifetimes in IDLE: each renewal rotates the refresh token.
    wait_until(lambda: oauth_server.refreshes >= 4, 60)
    oauth_dovecot.append(make_mail("second", message_id="<idle2@acme.example>"))
    wait_until(lambda: len(tickets(running)) == 2, 30, running)

    saved = TokenFile(running.state, "mailbox", "support").read()
    assert saved is not None
    # The file holds the one refresh token the provider still honours.
    assert list(oauth_server.refresh) == [saved["refresh_token"]]
    # No login was ever tried with an expired token, and each renewal brought a new session.
    assert all(ok for _, ok in oauth_server.introspected)
    assert len(oauth_server.introspected) >= 4
    assert sorted(str(t["subject"]) for t in tickets(running)) == ["first", "second"]
    assert inputs_count(running.gateway.db.engine) == 2
    assert worker.login_failing is None


def test_revoked_consent_fails_loudly_and_alerts_once(
        oauth_server: OAuthServer, oauth_dovecot: Dovecot, relay_sink: Sink,
        make_gateway: Callable[..., RunningGateway], tmp_path: Path) -> None:
    """A revoked grant marks the mailbox failing in /readyz, /metrics and the logs, alerts
    the duty engineer once however often it retries, and the other mailbox goes on; after a
    new login the mail that waited is imported, once."""
    oauth_server.access_ttl_s = 4
    support = oauth_dovecot.mailbox_config(extra=oauth_keys(oauth_server, refresh_before_s=2))
    sales = oauth_dovecot.mailbox_config(name="sales", user="sales")
    running = make_gateway(relay_port=relay_sink.port,
                           extra=support + sales + policy_with_duty(tmp_path))
    save_grant(running, oauth_server)
    running.call(running.gateway.start_mailboxes)
    worker = running.gateway.mailboxes[0]
    wait_until(lambda: worker.connected, 30)

    with capture_logs() as logs:
        oauth_server.revoke("support")
        wait_until(lambda: worker.login_failing is not None and worker.failures >= 3, 60,
                   running)
        oauth_dovecot.append(make_mail("waiting", message_id="<revoked@acme.example>"))
        oauth_dovecot.append(make_mail("for sales", message_id="<sales@acme.example>"),
                             user="sales")
        wait_until(lambda: [t["subject"] for t in tickets(running)] == ["for sales"], 30,
                   running)
        wait_until(lambda: worker.failures >= 5, 60, running)
    assert "invalid_grant" in str(worker.login_failing)
    ready = httpx.get(f"{running.http_url}/readyz")
    assert ready.status_code == 503
    assert "invalid_grant" in ready.json()["login_failing"]["mailbox:support"]
    metrics = httpx.get(f"{running.http_url}/metrics").text
    assert 'intake_oauth_login_failing{login="mailbox:support"} 1.0' in metrics
    failing = [e for e in logs if e["event"] == "oauth.login_failing"]
    assert failing and "invalid_grant" in failing[0]["error"]
    [alert] = duty_alerts(relay_sink)
    assert "support" in str(alert["Subject"])
    assert "intake-gateway mailbox login support" in alert.get_content()

    # Someone signs in again; the daemon picks it up at its next attempt.
    save_grant(running, oauth_server)
    wait_until(lambda: len(tickets(running)) == 2, 60, running)
    assert worker.login_failing is None
    wait_until(lambda: httpx.get(f"{running.http_url}/readyz").status_code == 200, 30)
    assert sorted(str(t["subject"]) for t in tickets(running)) == ["for sales", "waiting"]
    assert inputs_count(running.gateway.db.engine) == 2
    assert len(duty_alerts(relay_sink)) == 1


def test_token_server_down_then_back(oauth_server: OAuthServer, oauth_dovecot: Dovecot,
                                     relay_sink: Sink, tmp_path: Path,
                                     make_gateway: Callable[..., RunningGateway]) -> None:
    """While the provider is down the token in hand is used to its end, then the mailbox is
    failing (one alert); once the provider is back, the mail that came meanwhile arrives once."""
    oauth_server.access_ttl_s = 6
    running = make_gateway(relay_port=relay_sink.port, extra=oauth_dovecot.mailbox_config(
        extra=oauth_keys(oauth_server, refresh_before_s=3)) + policy_with_duty(tmp_path))
    save_grant(running, oauth_server)
    running.call(running.gateway.start_mailboxes)
    worker = running.gateway.mailboxes[0]
    wait_until(lambda: worker.connected, 30)

    with capture_logs() as logs:
        oauth_server.pause()
        wait_until(lambda: worker.login_failing is not None and worker.failures >= 3, 60,
                   running)
    assert any(e["event"] == "oauth.renewal_postponed" for e in logs)
    assert "token endpoint" in str(worker.login_failing)
    assert httpx.get(f"{running.http_url}/readyz").status_code == 503
    oauth_dovecot.append(make_mail("during outage", message_id="<down@acme.example>"))
    wait_until(lambda: worker.failures >= 5, 60, running)
    assert tickets(running) == []
    oauth_server.start()
    wait_until(lambda: len(tickets(running)) == 1, 60, running)
    assert worker.login_failing is None
    running.settle()
    assert [t["subject"] for t in tickets(running)] == ["during outage"]
    assert inputs_count(running.gateway.db.engine) == 1
    [alert] = duty_alerts(relay_sink)
    assert "did not answer" in alert.get_content()


def test_browser_sign_in_with_loopback_redirect(oauth_server: OAuthServer,
                                                oauth_dovecot: Dovecot, tmp_path: Path,
                                                make_gateway: Callable[..., RunningGateway]
                                                ) -> None:
    """grant = "authorization_code" (Google's way): `mailbox login` prints a URL, the browser
    signs in and is sent back to the command's loopback listener, the code is redeemed with
    PKCE; the mailbox then logs in with OAUTHBEARER."""
    keys = oauth_keys(oauth_server, "oauthbearer") + (
        f'grant = "authorization_code"\nauthorization_url = "{oauth_server.url}/authorize"\n')
    running = make_gateway(extra=oauth_dovecot.mailbox_config(extra=keys))
    login = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(tmp_path / "config0.toml"),
         "mailbox", "login", "support"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    assert login.stdout is not None
    first = login.stdout.readline()
    assert first.startswith("To sign support in, open "), first
    url = first.split()[-1]
    # What the person's browser does: the provider's page, then back to the loopback.
    landed = httpx.get(url, follow_redirects=True, timeout=30)
    assert landed.status_code == 200 and "Signed in" in landed.text
    out, err = login.communicate(timeout=60)
    assert login.returncode == 0, err
    assert "code=" not in out + err  # the one-time code is not echoed anywhere
    saved = TokenFile(running.state, "mailbox", "support").read()
    assert saved is not None and saved["refresh_token"] in oauth_server.refresh

    oauth_dovecot.append(make_mail(message_id="<browser@acme.example>"))
    assert running.call(running.gateway.mailboxes[0].poll_once) == 1


def test_check_config_warns_of_a_mailbox_not_signed_in(oauth_server: OAuthServer,
                                                       tmp_path: Path) -> None:
    """check-config accepts an OAuth mailbox nobody has signed in yet, and says what to run."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[intake]\nstate_dir = "{tmp_path / "state"}"\n'
        '[[mailboxes]]\nname = "support"\nhost = "127.0.0.1"\nusername = "support"\n'
        + oauth_keys(oauth_server), encoding="utf-8")
    checked = subprocess.run([sys.executable, "-m", "gateway", "--config", str(config),
                              "check-config"], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    assert "support is not signed in: run `intake-gateway mailbox login support`" \
        in checked.stderr


def test_server_refusing_fresh_tokens_is_a_login_failure(
        oauth_server: OAuthServer, oauth_dovecot: Dovecot, relay_sink: Sink, tmp_path: Path,
        make_gateway: Callable[..., RunningGateway]) -> None:
    """Tokens the provider gives but the IMAP server refuses (signed in as another account):
    once a fresh token is refused as well the login is failing, with one alert; signing in
    as the right account mends it."""
    running = make_gateway(relay_port=relay_sink.port, extra=oauth_dovecot.mailbox_config(
        extra=oauth_keys(oauth_server)) + policy_with_duty(tmp_path))
    save_grant(running, oauth_server, user="sales")  # the wrong account
    running.call(running.gateway.start_mailboxes)
    worker = running.gateway.mailboxes[0]
    wait_until(lambda: worker.login_failing is not None and worker.failures >= 5, 180, running)
    assert "IMAP server refused the token" in str(worker.login_failing)
    ready = httpx.get(f"{running.http_url}/readyz").json()
    assert "refused the token" in ready["login_failing"]["mailbox:support"]
    [alert] = duty_alerts(relay_sink)
    assert "support" in str(alert["Subject"])

    save_grant(running, oauth_server)  # the right account
    oauth_dovecot.append(make_mail(message_id="<right@acme.example>"))
    wait_until(lambda: len(tickets(running)) == 1, 180, running)
    assert worker.login_failing is None
    assert len(duty_alerts(relay_sink)) == 1
