"""Whose OAuth 2.0 login and how it failed: all the channels and alerts import of OAuth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Protocol = Literal["imap", "smtp"]


@dataclass(frozen=True)
class LoginTarget:
    """Whose token: KIND "mailbox" or "outgoing", the mailbox NAME, the PROTOCOL it serves."""

    kind: str
    name: str
    protocol: Protocol

    @property
    def login_command(self) -> str:
        return f"intake-gateway mailbox login {self.name}"


class TokenFailure(Exception):
    """No usable access token for TARGET. EPISODE names this failure alike in every process
    sharing the token (one alert per episode); REFUSED: the provider said no, a person must
    act."""

    def __init__(self, target: LoginTarget, reason: str, episode: str, refused: bool) -> None:
        super().__init__(reason)
        self.target = target
        self.reason = reason
        self.episode = episode
        self.refused = refused
