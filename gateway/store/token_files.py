"""OAuth tokens kept in the state directory: one file per login, 0600, replaced atomically.

A refresh token belongs to the state directory it was saved in: processes that share the
directory share the token, and renew it one at a time under `renewal_lock` (a file lock for
processes on one host, and a PostgreSQL advisory lock for instances sharing the database,
whose state directory may be one shared volume). Instances with state directories of their
own each log in once and hold separate grants, so they never renew the same token.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

TOKEN_DIR = "oauth"


class TokenFile:
    """The saved token of one login: `read()` and `write()` of a JSON object."""

    def __init__(self, state_dir: Path, kind: str, name: str) -> None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        self.directory = state_dir / TOKEN_DIR
        self.path = self.directory / f"{kind}-{safe}.json"
        self.lock_key = f"oauth:{kind}:{name}"

    def _make_directory(self) -> None:
        if self.directory.exists():
            return
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._give_to_owner(self.directory)

    def _give_to_owner(self, file: int | Path) -> None:
        """`mailbox login` run as root: what it creates goes to whoever owns the state
        directory (the service user), still readable by nobody else."""
        if os.geteuid() != 0:
            return
        owner = self.directory.parent.stat()
        if isinstance(file, int):
            os.fchown(file, owner.st_uid, owner.st_gid)
        else:
            os.chown(file, owner.st_uid, owner.st_gid)

    def read(self) -> dict[str, Any] | None:
        """The saved token, or None when nobody has logged in yet."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return data if isinstance(data, dict) else None

    def write(self, token: dict[str, Any]) -> None:
        """Replace the saved token: a temporary file (0600 from its creation), fsync, rename
        and fsync of the directory, so a crash leaves the old token or the new, never half."""
        self._make_directory()
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".token-",
                                             suffix=".tmp")  # mkstemp creates it 0600
        try:
            self._give_to_owner(handle)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(token, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    @contextlib.contextmanager
    def renewal_lock(self, engine: Engine | None) -> Iterator[None]:
        """Held while one process renews and saves the token (see the module's docstring)."""
        self._make_directory()
        lock_path = self.path.with_suffix(".lock")
        # Opened without truncating, 0600; it holds nothing, only the lock.
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        self._give_to_owner(descriptor)
        with open(descriptor, "r+b") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                if engine is not None and engine.dialect.name == "postgresql":
                    with _advisory_lock(engine, self.lock_key):
                        yield
                else:
                    # SQLite: one instance per database file (it is a local file anyway),
                    # so the file lock above is the whole story.
                    yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)


@contextlib.contextmanager
def _advisory_lock(engine: Engine, key: str) -> Iterator[None]:
    """A session-level PostgreSQL advisory lock on KEY, held on a connection of its own."""
    number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": number})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": number})
            connection.commit()


def fingerprint(secret: str | None) -> str:
    """A short, stable name for a secret (to tell grants apart in alerts), not the secret."""
    if not secret:
        return "none"
    return hashlib.sha256(secret.encode()).hexdigest()[:12]
