"""One blocking IMAP session (imapclient) for one mailbox; the worker runs it in its own thread.

Nothing here touches the database or the event loop: every method is a plain blocking call.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from imapclient import IMAPClient, SocketTimeout

from gateway.config.settings import MailboxSettings

SEEN, DELETED = b"\\Seen", b"\\Deleted"
# An IDLE wait checks this often whether the worker is stopping.
_IDLE_SLICE_S = 1.0


class MailboxError(Exception):
    """A mailbox problem worth a clear log line (the message never holds a secret)."""


@dataclass(frozen=True)
class Selected:
    uidvalidity: int
    uidnext: int | None


class Fetched(NamedTuple):
    """One message as fetched: its bytes and the server's INTERNALDATE (its arrival there)."""

    raw: bytes
    internal_date: datetime | None


def tls_context(settings: MailboxSettings) -> ssl.SSLContext:
    """Certificate and host name verification against the system's CAs or CA_FILE."""
    cafile = str(settings.ca_file) if settings.ca_file else None
    return ssl.create_default_context(cafile=cafile)


class ImapSession:
    """Connect, log in and SELECT; fetch, flag/move/delete and IDLE on the selected folder."""

    def __init__(self, settings: MailboxSettings, stopping: threading.Event) -> None:
        self.settings = settings
        self._stopping = stopping
        self._client: IMAPClient | None = None
        self.capabilities: frozenset[bytes] = frozenset()
        self._target: str | None = None

    @property
    def connected(self) -> bool:
        return self._client is not None

    def open(self, access_token: str | None = None) -> Selected:
        """Connect with the configured security, log in (LOGIN, or AUTHENTICATE XOAUTH2 /
        OAUTHBEARER with ACCESS_TOKEN), SELECT the folder (read-write)."""
        s = self.settings
        if s.uses_oauth and access_token is None:
            raise MailboxError(f"auth = {s.auth!r} but no access token was given")
        if not s.uses_oauth and s.password is None:
            raise MailboxError("no password configured (password_file or password_env)")
        timeout = SocketTimeout(connect=min(s.timeout_s, 30), read=s.timeout_s)
        if s.security == "tls":
            client = IMAPClient(s.host, s.port, ssl=True, ssl_context=tls_context(s),
                                timeout=timeout)
        else:
            client = IMAPClient(s.host, s.port, ssl=False, timeout=timeout)
        # INTERNALDATE with its offset, not converted to naive local time.
        client.normalise_times = False
        try:
            if s.security == "starttls":
                client.starttls(tls_context(s))
            if access_token is None:
                assert s.password is not None
                client.login(s.username, s.password.get_secret_value())
            elif s.auth == "oauthbearer":
                client.oauthbearer_login(s.username, access_token)
            else:
                client.oauth2_login(s.username, access_token)
            self.capabilities = frozenset(client.capabilities())
            info = client.select_folder(s.folder)
        except BaseException:
            _close_quietly(client)
            raise
        self._client = client
        self._target = None
        uidnext = info.get(b"UIDNEXT")
        return Selected(int(info[b"UIDVALIDITY"]),
                        int(uidnext) if uidnext is not None else None)

    def close(self, graceful: bool = True) -> None:
        """LOGOUT (GRACEFUL) or just drop the connection (after an error: it may be dead)."""
        client, self._client = self._client, None
        if client is None:
            return
        if graceful:
            _close_quietly(client)
        else:
            try:
                client.shutdown()
            except Exception:  # already closed
                return

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            raise MailboxError("not connected")
        return self._client

    def new_uids(self, selected: Selected, after_uid: int) -> list[int]:
        """UIDs above AFTER_UID, ascending; raises if the folder changed under the session."""
        _, untagged = self.client.noop()  # also makes the server report new mail
        for response in untagged:
            if isinstance(response, tuple) and response and response[0] in (b"NO", b"BYE"):
                raise MailboxError(f"server reported: {response[-1]!r}")
        # A folder deleted and recreated meanwhile keeps our session on the old one.
        status = self.client.folder_status(self.settings.folder, [b"UIDVALIDITY"])
        if int(status[b"UIDVALIDITY"]) != selected.uidvalidity:
            raise MailboxError("UIDVALIDITY changed while selected; reconnecting")
        # `N:*` always includes the highest UID, even when it is below N: filter.
        found = self.client.search(["UID", f"{after_uid + 1}:*"])
        return sorted(uid for uid in found if uid > after_uid)

    def fetch_batches(self, uids: list[int]) -> Iterator[dict[int, Fetched]]:
        """Messages of UIDS, BODY.PEEK[] (no \\Seen) and INTERNALDATE, in batches bounded by
        count and size."""
        s = self.settings
        for start in range(0, len(uids), s.batch_size):
            chunk = uids[start:start + s.batch_size]
            sizes = {uid: int(data.get(b"RFC822.SIZE", 0))
                     for uid, data in self.client.fetch(chunk, ["RFC822.SIZE"]).items()}
            group: list[int] = []
            total = 0
            for uid in chunk:
                if uid not in sizes:  # expunged meanwhile
                    continue
                if group and total + sizes[uid] > s.batch_bytes:
                    yield self._fetch_bodies(group)
                    group, total = [], 0
                group.append(uid)
                total += sizes[uid]
            if group:
                yield self._fetch_bodies(group)

    def _fetch_bodies(self, uids: list[int]) -> dict[int, Fetched]:
        fetched = self.client.fetch(uids, ["BODY.PEEK[]", "INTERNALDATE"])
        return {uid: Fetched(bytes(data[b"BODY[]"]), _aware(data.get(b"INTERNALDATE")))
                for uid, data in fetched.items()
                if uid in uids and data.get(b"BODY[]") is not None}

    def after_import(self, uids: list[int]) -> None:
        """Apply after_import to UIDS (all of them committed already)."""
        if not uids:
            return
        action = self.settings.after_import
        client = self.client
        if action == "seen":
            client.add_flags(uids, [SEEN], silent=True)
        elif action == "delete":
            client.add_flags(uids, [DELETED], silent=True)
            self._expunge(uids)
        else:
            target = self._move_target(action.removeprefix("move:"))
            if b"MOVE" in self.capabilities:
                client.move(uids, target)
            else:
                client.copy(uids, target)
                client.add_flags(uids, [DELETED], silent=True)
                self._expunge(uids)

    def _expunge(self, uids: list[int]) -> None:
        if b"UIDPLUS" in self.capabilities:
            self.client.uid_expunge(uids)
        else:  # also removes other messages flagged \Deleted: the only way without UIDPLUS
            self.client.expunge()

    def _move_target(self, folder: str) -> str:
        """FOLDER with "/" as the hierarchy separator in the server's own; created if missing."""
        if self._target is None:
            client = self.client
            listed = client.list_folders("", "")  # the reply names the hierarchy delimiter
            delimiter = listed[0][1] if listed and listed[0][1] else b"/"
            if isinstance(delimiter, bytes):
                delimiter = delimiter.decode()
            target = folder.replace("/", delimiter)
            if not client.folder_exists(target):
                client.create_folder(target)
            self._target = target
        return self._target

    def wait_for_news(self, seconds: float) -> bool:
        """IDLE up to SECONDS when the server can; else NOOP-poll after SECONDS.

        True when the server announced something (new mail, expunges) before the time was up.
        """
        deadline = time.monotonic() + seconds
        if not (self.settings.idle and b"IDLE" in self.capabilities):
            while not self._stopping.is_set() and time.monotonic() < deadline:
                self._stopping.wait(min(_IDLE_SLICE_S, max(0.0, deadline - time.monotonic())))
            return False
        client = self.client
        client.idle()
        responses: list[Any] = []
        if _buffered(client):
            # The server sent news together with "+ idling"; idle_check would only look at the
            # socket and miss it until the next packet: leave IDLE and import now.
            client.idle_done()
            return True
        while not responses and not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            responses = client.idle_check(timeout=min(_IDLE_SLICE_S, left))
            if any(_is_bye(response) for response in responses):
                raise MailboxError("server said BYE during IDLE")
        client.idle_done()
        return bool(responses)


def _buffered(client: IMAPClient) -> bool:
    """Whether imaplib has already read response bytes that nobody has consumed yet."""
    sock = client.socket()
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        # BufferedReader.peek returns what is buffered without touching the socket, and
        # otherwise tries one read, which a non-blocking socket answers with "nothing".
        return bool(client._imap.file.peek(1))
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    finally:
        sock.settimeout(timeout)


def _is_bye(response: Any) -> bool:
    return isinstance(response, tuple) and bool(response) and response[0] == b"BYE"


def _close_quietly(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:  # the socket is gone already
            return


def _aware(value: object) -> datetime | None:
    # The client is told not to normalise times, so INTERNALDATE keeps the server's offset.
    return value if isinstance(value, datetime) and value.tzinfo is not None else None
