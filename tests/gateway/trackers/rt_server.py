"""A real Request Tracker 5 from Debian's packages, private to the test session, on loopback.

Debian's `request-tracker5` reads its site configuration from $RT_SITE_CONFIG (and the
directory $RT_SITE_CONFIG_DIR), so the server gets its own SQLite database in a temporary
directory (made by `rt-setup-database`), its own port and no mail leaving the machine
(`testfile` keeps RT's outgoing mail in a temporary file). Root's auth token is made with RT's
own API, as an administrator would in Settings > Auth Tokens.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port

RT_SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
RT_LIB = Path("/usr/share/request-tracker5/lib")
SETUP_DATABASE = Path("/usr/sbin/rt-setup-database")
STARTUP_S = 90.0

SITE_CONFIG = """\
Set($rtname, 'intake-test');
Set($Organization, 'intake.test');
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '{database}');
Set($WebDomain, '127.0.0.1');
Set($WebPort, {port});
Set($WebPath, '');
Set($WebBaseURL, 'http://127.0.0.1:{port}');
# Not UTC: TicketSQL reads absolute times in this zone, which the connector must not trip on.
Set($Timezone, 'America/New_York');
Set($MailCommand, 'testfile');
Set($LogToSyslog, undef);
Set($LogToSTDERR, 'warning');
Set($CorrespondAddress, 'rt@intake.test');
Set($CommentAddress, 'rt-comment@intake.test');
1;
"""

MAKE_TOKEN = """
use RT; RT::LoadConfig(); RT::Init();
my $root = RT::User->new(RT->SystemUser); $root->Load('root');
my $token = RT::AuthToken->new(RT->SystemUser);
my ($ok, $message, $secret) = $token->Create(Owner => $root->Id, Description => 'intake-gateway');
die "$message\\n" unless $ok;
print "$secret\\n";
"""


@dataclass
class RtServer:
    url: str
    token: str
    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"{self.url}/REST/2.0"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=30, trust_env=False,
                            headers={"Authorization": f"token {self.token}"})

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        with self.client() as client:
            response = client.request(method, path, **kwargs)
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response.json()

    def new_queue(self) -> str:
        """A queue of its own for one test (ticket numbers repeat between test databases)."""
        name = f"support-{uuid.uuid4().hex[:8]}"
        self.request("POST", "queue", json={"Name": name})
        return name

    def tickets(self, queue: str) -> list[dict[str, Any]]:
        found = self.request("GET", "tickets", params={
            "query": f"Queue = '{queue}'", "per_page": 100,
            "fields": "Subject,Status,Priority,Requestor,Due"})
        return list(found["items"])

    def ticket(self, remote_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"ticket/{remote_id}"))

    def attachments(self, remote_id: str) -> list[dict[str, Any]]:
        found = self.request("GET", f"ticket/{remote_id}/attachments", params={
            "per_page": 100, "fields": "Subject,Filename,ContentType,Content,TransactionId"})
        return list(found["items"])

    def environment(self) -> dict[str, str]:
        return {**os.environ, "RT_SITE_CONFIG": str(self.directory / "RT_SiteConfig.pm"),
                "RT_SITE_CONFIG_DIR": str(self.directory / "RT_SiteConfig.d"),
                "TMPDIR": str(self.directory)}

    def start(self) -> None:
        """Start (or restart) the server and wait until its API answers."""
        with (self.directory / "rt-server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(RT_SERVER), "--port", str(self.port)], env=self.environment(),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                # Unauthenticated: 401 means the application is up.
                if httpx.get(f"{self.api}/rt", timeout=5, trust_env=False).status_code == 401:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError("Request Tracker did not start:\n"
                             + (self.directory / "rt-server.log").read_text(errors="replace"))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                # Its preforked workers may linger; the database is SQLite, safe to kill.
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


def rt_available() -> bool:
    return RT_SERVER.exists() and SETUP_DATABASE.exists()


def launch(directory: Path) -> RtServer:
    """A new RT in DIRECTORY: its configuration, database and root's token; started."""
    (directory / "RT_SiteConfig.d").mkdir()
    port = free_port()
    (directory / "RT_SiteConfig.pm").write_text(SITE_CONFIG.format(
        database=directory / "rt.sqlite", port=port), encoding="utf-8")
    server = RtServer(f"http://127.0.0.1:{port}", "", directory, port)
    env = server.environment()
    subprocess.run([str(SETUP_DATABASE), "--action", "init", "--skip-create"], env=env,
                   check=True, capture_output=True, timeout=120)
    made = subprocess.run(["perl", f"-I{RT_LIB}", "-e", MAKE_TOKEN], env=env, check=True,
                          capture_output=True, timeout=60, text=True)
    server.token = made.stdout.strip()
    server.start()
    return server
