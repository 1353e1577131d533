"""The daemon's configuration: one TOML file, validated, with secrets read from files or env."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.config.chat_platforms import ChatPlatformSettings
from gateway.config.oauth_settings import OAuthSettings
from gateway.config.portal_settings import PortalSettings
from gateway.config.report_settings import ReportSettings
from gateway.config.secret_files import resolve_secrets
from gateway.config.section import Section
from gateway.config.subscriptions import SubscriptionSettings
from gateway.config.tracker_settings import TrackerSettings
from gateway.config.trust_settings import TrustSettings
from gateway.config.webhook_settings import WebhookSettings
from rules.config_errors import ConfigError, ConfigProblem, problem_of, syntax_problem

CONFIG_ENV = "INTAKE_GATEWAY_CONFIG"
DEFAULT_STATE_DIR = Path("var")


def _host_port(value: str) -> str:
    """Accept `host:port` and `[v6]:port`; the port must be a number in range."""
    match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^:\[\]]+):(\d{1,5})", value)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ValueError(f"expected host:port, got {value!r}")
    return value


def split_host_port(value: str) -> tuple[str, int]:
    """`127.0.0.1:2525` -> ("127.0.0.1", 2525); `[::1]:25` -> ("::1", 25)."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


class DatabaseSettings(Section):
    url: str = ""  # empty: SQLite under the state directory

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:", "postgresql")):
            raise ValueError("only sqlite:/// and postgresql+psycopg:// URLs are supported")
        return value


class FilesSettings(Section):
    policy: Path | None = None
    customers: Path | None = None
    rules: Path | None = None


class SmtpSettings(Section):
    listen: str = "127.0.0.1:2525"
    recipients: list[str] = Field(default_factory=list)
    max_message_bytes: int = Field(default=26_214_400, gt=0)
    hostname: str = "intake-gateway"
    # DATA over large_message_bytes needs one of large_sessions slots, else 452 (try later).
    large_message_bytes: int = Field(default=1_048_576, gt=0)
    large_sessions: int = Field(default=4, ge=1)
    # Open connections from one address (then 421); a local MTA relaying everything counts
    # as one address, so this is well above what one needs.
    connections_per_peer: int = Field(default=100, ge=1)
    # A session silent this long between commands is closed; DATA as a whole gets as long.
    idle_timeout_s: float = Field(default=300.0, gt=0)

    _check_listen = field_validator("listen")(_host_port)


class HttpSettings(Section):
    listen: str = "127.0.0.1:8080"
    admin_token: SecretStr | None = None
    # Larger request bodies are refused with 413 before they are read to the end.
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    # A web form with files (multipart/form-data to /api/v1/requests) may be this large.
    max_upload_bytes: int = Field(default=26_214_400, gt=0)
    # Signed timestamps (generic provider) are accepted this far from our clock, either way.
    replay_window_s: int = Field(default=300, gt=0)
    # Open connections from one address (then 503), and how long one may stay silent before
    # its first request and between requests.
    connections_per_peer: int = Field(default=100, ge=1)
    idle_timeout_s: float = Field(default=10.0, ge=1)
    # A request's head and body must arrive whole within this long of its first byte (408).
    request_timeout_s: float = Field(default=60.0, ge=1)

    _check_listen = field_validator("listen")(_host_port)


class MailboxSettings(OAuthSettings):
    name: str
    host: str
    port: int = Field(default=993, gt=0, lt=65536)
    security: Literal["tls", "starttls", "none"] = "tls"
    # CA bundle (PEM) to verify the server's certificate against; absent: the system's CAs.
    ca_file: Path | None = None
    username: str
    password: SecretStr | None = None
    folder: str = "INBOX"
    idle: bool = True
    # IDLE is re-issued at least this often (RFC 2177: servers may drop it after 30 min).
    idle_timeout_s: float = Field(default=25 * 60, gt=0, le=25 * 60)
    poll_interval_s: float = Field(default=60, gt=0)
    after_import: str = "seen"
    batch_size: int = Field(default=100, ge=1, le=1000)
    # Messages fetched at once are also limited by their total size.
    batch_bytes: int = Field(default=1024 * 1024, ge=1024)
    timeout_s: float = Field(default=60, gt=0)
    # Reconnects wait exponentially longer (with jitter), up to this many seconds.
    reconnect_max_s: float = Field(default=60, gt=0)

    @field_validator("after_import")
    @classmethod
    def _known_action(cls, value: str) -> str:
        if value not in ("seen", "delete") and not re.fullmatch(r"move:\S.*", value):
            raise ValueError("expected seen, delete or move:FolderName")
        return value


class OutgoingSettings(OAuthSettings):
    sender: str = Field(default="Support <support@localhost>", alias="from")
    host: str | None = None
    port: int = Field(default=587, gt=0, lt=65536)
    security: Literal["tls", "starttls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    maildir: Path = DEFAULT_STATE_DIR / "outgoing"
    timeout_s: float = Field(default=30, gt=0)
    connections: int = Field(default=2, ge=1, le=16)
    max_attempts: int = Field(default=12, ge=1)
    # The first retry after a temporary failure waits about this long, doubling each time.
    retry_base_s: float = Field(default=15, gt=0)
    # A message being sent is leased this long; one leased by a process that died is sent
    # again (by whoever runs next) once its lease has expired.
    lease_s: float = Field(default=300, gt=0)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _oauth_user(self) -> OutgoingSettings:
        if self.uses_oauth and not self.username:
            raise ValueError(f"auth = {self.auth!r} needs username (the mailbox the token is for)")
        return self


class IntakeSettings(Section):
    ticket_prefix: str = "SUP-"
    hold_unknown_senders: bool = False
    # Fewer words than this in the request text counts as "no detailed description".
    detailed_description_words: int = Field(default=8, ge=0)
    # The tier whose clock applies to senders we cannot match to a customer.
    unknown_customer_tier: str = "8/5"
    state_dir: Path = DEFAULT_STATE_DIR
    processing_batch: int = Field(default=64, ge=1, le=1000)
    # Processes that parse and register beside the daemon's own (0: all in the daemon).
    workers: int = Field(default=1, ge=0, le=32)
    # Added to the workers' scheduling priority (nice): with the cores busy, the daemon's
    # SMTP and HTTP answers go before processing. 0 runs them at the daemon's priority.
    worker_niceness: int = Field(default=10, ge=0, le=19)
    # What parsing one input may take in a worker process; over it the input is quarantined
    # with the reason. A worker stuck past parse_budget_s x (batch + 2) + 30 s is replaced.
    parse_budget_s: float = Field(default=10.0, gt=0)
    parse_memory_mb: int = Field(default=512, ge=16)
    # The daemon's event loop: uvloop (libuv, in C) where installed, else asyncio's own.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # A reply to a closed ticket: reopen it, or register a new ticket that follows it up.
    reply_to_closed: Literal["reopen", "new"] = "reopen"
    # A message that belongs to two open tickets merges the younger into the older, or
    # links them (each names the other; the message joins the older).
    thread_links: Literal["merge", "link"] = "merge"
    # A missed call from a number no customer has: kept as a stored input (robocalls and
    # wrong numbers ring too), or registered as a call-back ticket with customer null.
    missed_calls_from_unknown: Literal["store", "register"] = "store"

    @field_validator("ticket_prefix")
    @classmethod
    def _safe_prefix(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,15}", value):
            raise ValueError("letters, digits, '-' and '_' only, starting with a letter")
        # Numbers are looked up in capitals (a subject's tag, `tickets show`, the API), so a
        # number written with a lower-case prefix could never be found again.
        return value.upper()


class LoopSettings(Section):
    """Rate limits on automatic messages, the last guard against mail loops."""

    # At most this many automatic messages to one address per window (RFC 3834 asks for few).
    sender_limit: int = Field(default=10, ge=1)
    sender_window_min: int = Field(default=180, ge=1)
    # At most this many automatic messages about one ticket per window.
    ticket_limit: int = Field(default=5, ge=1)
    ticket_window_min: int = Field(default=60, ge=1)
    # A permanent bounce blocks its address this long (a new bounce starts it again).
    undeliverable_days: int = Field(default=30, ge=1)


class LimitSettings(Section):
    """What one input may contain; over a limit it is refused at the edge or quarantined."""

    mime_parts: int = Field(default=500, ge=1)
    # Nested multiparts and attached messages; the message itself is depth 0.
    mime_depth: int = Field(default=20, ge=0)
    # Header fields of the message itself, and the longest one unfolded (name included).
    header_count: int = Field(default=1000, ge=1)
    header_line_bytes: int = Field(default=16384, ge=78)
    attachments: int = Field(default=100, ge=0)
    # HTTP requests per source address per minute (/healthz and /metrics are not counted).
    http_requests_per_source_per_min: int = Field(default=600, ge=1)


class LoggingSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class Settings(Section):
    database: DatabaseSettings = DatabaseSettings()
    files: FilesSettings = FilesSettings()
    smtp: SmtpSettings | None = SmtpSettings()
    http: HttpSettings = HttpSettings()
    mailboxes: list[MailboxSettings] = Field(default_factory=list)
    outgoing: OutgoingSettings = OutgoingSettings()
    # A second way out for alerts to staff (acknowledgement at risk, escalations): the same
    # keys as [outgoing]; absent, they share the customers' relay.
    alerts: OutgoingSettings | None = None
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    subscriptions: list[SubscriptionSettings] = Field(default_factory=list)
    chat_platforms: list[ChatPlatformSettings] = Field(default_factory=list)
    trackers: list[TrackerSettings] = Field(default_factory=list)
    intake: IntakeSettings = IntakeSettings()
    loops: LoopSettings = LoopSettings()
    limits: LimitSettings = LimitSettings()
    logging: LoggingSettings = LoggingSettings()
    trust: TrustSettings = TrustSettings()
    portal: PortalSettings | None = None
    reports: list[ReportSettings] = Field(default_factory=list)

    @field_validator("webhooks", "subscriptions", "chat_platforms", "trackers")
    @classmethod
    def _unique_names(cls, entries: list[Any], info: ValidationInfo) -> list[Any]:
        """Each [[webhooks]], [[subscriptions]], [[chat_platforms]], [[trackers]] by its name."""
        names = [entry.name for entry in entries]
        if duplicates := sorted({n for n in names if names.count(n) > 1}):
            what = {"chat_platforms": "chat platform"}.get(str(info.field_name),
                                                           str(info.field_name).rstrip("s"))
            raise ValueError(f"{what} names must be unique: {', '.join(duplicates)}")
        return entries

    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.intake.state_dir / 'intake.db'}"


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    path: Path | None


def _make_relative_paths_absolute(data: dict[str, Any], base: Path) -> None:
    """Paths in a config file are relative to the file, as operators expect."""
    for section, keys in {"files": ("policy", "customers", "rules"),
                          "outgoing": ("maildir",), "alerts": ("maildir",),
                          "intake": ("state_dir",)}.items():
        table = data.get(section)
        if isinstance(table, dict):
            for key in keys:
                value = table.get(key)
                if isinstance(value, str) and not Path(value).is_absolute():
                    table[key] = str(base / value)
    mailboxes = data.get("mailboxes")
    for mailbox in mailboxes if isinstance(mailboxes, list) else []:
        ca_file = mailbox.get("ca_file") if isinstance(mailbox, dict) else None
        if isinstance(ca_file, str) and not Path(ca_file).is_absolute():
            mailbox["ca_file"] = str(base / ca_file)
    # The defaults too: without state_dir, the database and the maildir both live in var/
    # beside the config file, whatever directory a command is run from.
    intake = data.setdefault("intake", {})
    state_dir = None
    if isinstance(intake, dict):
        intake.setdefault("state_dir", str(base / DEFAULT_STATE_DIR))
        state_dir = intake["state_dir"]
    data.setdefault("outgoing", {})
    for way_out in ("outgoing", "alerts"):  # [alerts] only when it is there
        table = data.get(way_out)
        if isinstance(table, dict) and "maildir" not in table and isinstance(state_dir, str):
            table["maildir"] = str(Path(state_dir) / way_out)
    database = data.get("database")
    url = database.get("url") if isinstance(database, dict) else None
    if isinstance(database, dict) and isinstance(url, str):
        database["url"] = _sqlite_url_beside(url, base)


def _sqlite_url_beside(url: str, base: Path) -> str:
    """`sqlite:///var/intake.db` (relative) -> the same file under BASE; others unchanged."""
    if not url.startswith("sqlite:///"):
        return url
    file, mark, query = url.removeprefix("sqlite:///").partition("?")
    if not file or file == ":memory:" or Path(file).is_absolute():
        return url
    return f"sqlite:///{base / file}{mark}{query}"


def parse_settings(text: str, path: Path | None) -> Settings:
    """Validate config text; raise ConfigError listing every problem with its line."""
    name = str(path) if path else "<config>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([syntax_problem(name, error)]) from None
    # CONTRACT.md: in a config file, leaving out [smtp] turns the listener off.
    data.setdefault("smtp", None)
    secret_problems: list[tuple[tuple[str | int, ...], str]] = []
    # A relative secret file is relative to the config file, like every other path in it.
    resolve_secrets(data, (), secret_problems, path.parent if path else Path.cwd())
    if path is not None:
        _make_relative_paths_absolute(data, path.parent)
    problems = [problem_of(name, text, loc, message) for loc, message in secret_problems]
    try:
        settings = Settings.model_validate(data)
    except ValidationError as error:
        problems += [problem_of(name, text, tuple(e["loc"]), e["msg"]) for e in error.errors()]
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return settings


def load_settings(path: str | Path | None = None) -> LoadedSettings:
    """The settings from PATH, else $INTAKE_GATEWAY_CONFIG, else the embedded defaults."""
    chosen = path or os.environ.get(CONFIG_ENV)
    if not chosen:
        return LoadedSettings(Settings(), None)
    config_path = Path(chosen)
    try:
        text = config_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        problem = ConfigProblem(str(config_path), 0, "", f"cannot read: {error}")
        raise ConfigError([problem]) from None
    return LoadedSettings(parse_settings(text, config_path.absolute()), config_path)
