"""A private Dovecot IMAP server for tests: own config, base_dir, users and maildirs."""

from __future__ import annotations

import contextlib
import datetime
import grp
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from tests.conftest import free_port

_CONFIG = """\
instance_name = dovecot-test-{instance}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = 0
mail_uid = {uid}
mail_gid = {gid}
mail_location = maildir:{root}/mail/%u
mailbox_idle_check_interval = 1 secs
auth_failure_delay = 0
disable_plaintext_auth = no
auth_mechanisms = plain login{oauth2_mechanisms}
ssl = {ssl}
{ssl_files}
{oauth2_passdb}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users
  default_fields = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service auth {{
  user = {auth_user}
}}
service auth-worker {{
  user = {auth_user}
}}
service anvil {{
  # No growing delay after failed logins (the bad-password test fails on purpose).
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  inet_listener http {{
    port = 0
  }}
}}
{extra}"""


def _service_users() -> dict[str, str]:
    """Dovecot's own users: as root, the package's unprivileged ones (imap-login refuses root);
    otherwise the current user for everything (Dovecot then runs unprivileged)."""
    if os.getuid() != 0:
        name = pwd.getpwuid(os.getuid()).pw_name
        return {"internal_user": name, "internal_group": grp.getgrgid(os.getgid()).gr_name,
                "login_user": name}

    def existing(*names: str) -> str:
        for candidate in names:
            try:
                pwd.getpwnam(candidate)
            except KeyError:
                continue
            return candidate
        raise RuntimeError(f"none of the users {names} exists for Dovecot")

    internal = existing("dovecot", "nobody")
    return {"internal_user": internal,
            "internal_group": grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name,
            "login_user": existing("dovenull", "nobody")}


def dovecot_binary() -> str:
    """The dovecot executable, or skip (fail under CI) when it is not installed."""
    path = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/sbin")
    if path is None:
        message = "dovecot is not installed (apt-get install dovecot-imapd) - IMAP tests need it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def make_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for HOST (also its own CA); returns (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intake-gateway test IMAP")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class Dovecot:
    """One running Dovecot; users are `name: password` in `users`."""

    root: Path
    port: int
    tls: bool = False  # True: PORT speaks TLS from the start, STARTTLS_PORT needs STARTTLS
    starttls_port: int = 0
    users: dict[str, str] = field(default_factory=lambda: {"support": "secret"})
    ca_file: Path | None = None
    # Capabilities left out of the list advertised after login, as by a server that lacks
    # them (Dovecot still understands the commands: a client must not use them unasked).
    without_capabilities: frozenset[str] = frozenset()
    # Log every IMAP command the server finishes (read them with `commands`).
    log_commands: bool = False
    # Dovecot's imap_capability, which replaces its own list; None: Dovecot's own.
    imap_capability: str | None = None
    # A token introspection endpoint (RFC 7662): users may then log in with XOAUTH2 and
    # OAUTHBEARER too, Dovecot's oauth2 passdb asking this URL whether a token is good.
    oauth2_introspection_url: str | None = None
    _process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.without_capabilities and self.imap_capability is None:
            # imap_capability can only replace the whole list: ask this Dovecot for its own.
            self._launch()
            with self.client() as probe:
                own = [name.decode() for name in probe.capabilities()]
            self.stop()
            leave_out = {name.upper() for name in self.without_capabilities}
            self.imap_capability = " ".join(n for n in own if n.upper() not in leave_out)
        self._launch()

    def _launch(self) -> None:
        binary = dovecot_binary()
        for sub in ("run", "state", "mail", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        users = _service_users()
        # Dovecot refuses to access mail as root: as root, mail belongs to its internal user.
        mail_user = pwd.getpwnam(users["internal_user"])
        uid, gid = mail_user.pw_uid, mail_user.pw_gid
        if os.getuid() == 0:
            for path in (self.root, self.root / "mail", self.root / "home"):
                os.chown(path, uid, gid)
        (self.root / "users").write_text(
            "".join(f"{user}:{{PLAIN}}{password}::::::\n"
                    for user, password in self.users.items()), encoding="utf-8")
        ssl_files = ""
        if self.tls:
            if self.ca_file is None:
                self.ca_file, _ = make_certificate(self.root)
            ssl_files = (f"ssl_cert = <{self.root / 'cert.pem'}\n"
                         f"ssl_key = <{self.root / 'key.pem'}\n")
        if self.tls and not self.starttls_port:
            self.starttls_port = free_port()
        config = _CONFIG.format(
            instance=uuid.uuid4().hex[:8], root=self.root,
            imap_port=self.starttls_port if self.tls else self.port,
            imaps_port=self.port if self.tls else 0,
            auth_user=pwd.getpwuid(os.getuid()).pw_name, **users, uid=uid, gid=gid,
            ssl="required" if self.tls else "no", ssl_files=ssl_files,
            extra=self._extra_config(), **self._oauth2_config())
        (self.root / "dovecot.conf").write_text(config, encoding="utf-8")
        self._process = subprocess.Popen(
            [binary, "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        # Generous: on a busy machine Dovecot's master and imap-login start slowly.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read() if self._process.stderr else b""
                log = self.log()
                raise RuntimeError(f"dovecot exited: {error.decode(errors='replace')}\n{log}")
            try:
                # The plain listener greets in clear; both listeners share one imap-login.
                plain = self.starttls_port if self.tls else self.port
                with socket.create_connection(("127.0.0.1", plain), timeout=1) as probe:
                    if probe.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not listen on port {self.port}\n{self.log()}")

    def stop(self) -> None:
        if self._process is None:
            return
        # The whole process group: the master alone lets its imap processes linger ~10 s.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(5)
        if self._process.stderr:
            self._process.stderr.close()
        self._process = None
        # Children (imap, imap-login) go with the master; wait until the port is free.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    time.sleep(0.05)
            except OSError:
                return

    def _oauth2_config(self) -> dict[str, str]:
        if self.oauth2_introspection_url is None:
            return {"oauth2_mechanisms": "", "oauth2_passdb": ""}
        (self.root / "oauth2.conf.ext").write_text(
            "introspection_mode = post\n"
            f"introspection_url = {self.oauth2_introspection_url}\n"
            "force_introspection = yes\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
            "timeout_msecs = 5000\n", encoding="utf-8")
        passdb = ("passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                  f"  args = {self.root}/oauth2.conf.ext\n}}\n")
        return {"oauth2_mechanisms": " xoauth2 oauthbearer", "oauth2_passdb": passdb}

    def _extra_config(self) -> str:
        lines: list[str] = []
        if self.imap_capability is not None:
            lines.append(f"imap_capability = {self.imap_capability}")
        if self.log_commands:
            lines.append("log_debug = event=imap_command_finished")
        return "".join(f"{line}\n" for line in lines)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def commands(self, user: str = "support") -> list[str]:
        """Commands USER's sessions finished, oldest first, as "UID FETCH" or "IDLE" (needs
        log_commands; the log names the command and its arguments, this only the command)."""
        names: list[str] = []
        for line in self.log().splitlines():
            head, found, command = line.partition(": Debug: Command finished: ")
            if found and f" imap({user})<" in head:
                words = command.split()
                names.append(" ".join(words[:2] if words[:1] == ["UID"] else words[:1]))
        return names

    def client(self, user: str = "support") -> IMAPClient:
        """A logged-in IMAP client, as a mail server or a person would use."""
        if self.tls:
            context = ssl.create_default_context(cafile=str(self.ca_file))
            client = IMAPClient("127.0.0.1", self.port, ssl=True, ssl_context=context,
                                timeout=10)
        else:
            client = IMAPClient("127.0.0.1", self.port, ssl=False, timeout=10)
        client.login(user, self.users[user])
        return client

    def append(self, raw: bytes, folder: str = "INBOX", user: str = "support") -> None:
        """Deliver RAW into FOLDER the way a mail server's LMTP/LDA would: IMAP APPEND."""
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, raw)

    def messages(self, folder: str = "INBOX",
                 user: str = "support") -> dict[int, tuple[bytes, ...]]:
        """UID -> flags of every message in FOLDER (empty if the folder does not exist)."""
        with self.client(user) as client:
            if not client.folder_exists(folder):
                return {}
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            if not uids:
                return {}
            return {uid: tuple(data[b"FLAGS"])
                    for uid, data in client.fetch(uids, ["FLAGS"]).items()}

    def mailbox_config(self, name: str = "support", user: str = "support",
                       password: str | None = None, folder: str = "INBOX",
                       after_import: str = "seen", extra: str = "",
                       starttls: bool = False, poll_interval_s: float = 0.5) -> str:
        """A [[mailboxes]] table pointing at this server."""
        security = ("starttls" if starttls else "tls") if self.tls else "none"
        port = self.starttls_port if starttls else self.port
        ca = f'ca_file = "{self.ca_file}"\n' if self.ca_file else ""
        return (f'[[mailboxes]]\nname = "{name}"\nhost = "127.0.0.1"\nport = {port}\n'
                f'security = "{security}"\n{ca}username = "{user}"\n'
                f'password = "{password if password is not None else self.users[user]}"\n'
                f'folder = "{folder}"\nafter_import = "{after_import}"\n'
                f"poll_interval_s = {poll_interval_s}\nreconnect_max_s = 1\n{extra}\n")


@contextmanager
def running_dovecot(tls: bool = False, *, without_capabilities: frozenset[str] = frozenset(),
                    log_commands: bool = False,
                    oauth2_introspection_url: str | None = None) -> Iterator[Dovecot]:
    """A Dovecot in a fresh directory of its own (its mail user must reach it, so not under
    pytest's private tmp_path), removed afterwards."""
    dovecot_binary()
    root = Path(tempfile.mkdtemp(prefix="intake-dovecot-"))
    root.chmod(0o755)
    server = Dovecot(root, free_port(), tls=tls, users={"support": "secret", "sales": "secret2"},
                     without_capabilities=without_capabilities, log_commands=log_commands,
                     oauth2_introspection_url=oauth2_introspection_url)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(name="dovecot")
def dovecot_fixture(request: pytest.FixtureRequest) -> Iterator[Dovecot]:
    """A plain-text (security = none) Dovecot on a free loopback port; parametrize it
    indirectly with a dict of `running_dovecot` options for another setup."""
    options: dict[str, Any] = getattr(request, "param", {})
    with running_dovecot(**options) as server:
        yield server


@pytest.fixture(name="dovecot_tls")
def dovecot_tls_fixture() -> Iterator[Dovecot]:
    """A Dovecot with TLS (and STARTTLS on a second port), self-signed certificate as its CA."""
    with running_dovecot(tls=True) as server:
        yield server
