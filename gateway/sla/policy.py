"""The SLA policy file: tiers, calendars, intake windows, targets and notices, validated."""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.config.settings import Settings
from gateway.sla.country_holidays import country_class, country_codes
from gateway.sla.working_calendar import CalendarSpec, Windows, WorkingCalendar
from rules.config_errors import ConfigError, ConfigProblem, problem_of, syntax_problem

DEFAULT_POLICY = Path(__file__).parent / "defaults" / "policy.toml"
Priority = Literal["critical", "high", "medium", "low"]
RequestType = Literal["incident", "consultation", "administration", "feature_request"]
Hours = Literal["always", "working"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Notified = Literal["engineer", "manager", "duty"]

PRIORITIES: tuple[Priority, ...] = get_args(Priority)
REQUEST_TYPES: tuple[RequestType, ...] = get_args(RequestType)
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|min|s)")


def parse_duration(text: str) -> timedelta:
    """"1h", "15m", "4h30m", "2d", "90s" -> timedelta; positive, or ValueError."""
    compact = text.strip().lower()
    if compact.startswith("-"):
        raise ValueError(f"negative duration {text!r}")
    parts = _DURATION.findall(compact)
    if not parts or _DURATION.sub("", compact).strip():
        raise ValueError(f"expected a duration like 15m, 1h, 4h30m or 2d, got {text!r}")
    seconds = {"d": 86400, "h": 3600, "m": 60, "min": 60, "s": 1}
    total = timedelta(seconds=sum(float(n) * seconds[unit] for n, unit in parts))
    if total <= timedelta(0):
        raise ValueError(f"duration must be positive, got {text!r}")
    return total


def parse_windows(values: list[str]) -> Windows:
    """["10:00-13:00", "14:00-19:00"] -> minutes after midnight; ordered, not overlapping."""
    windows: list[tuple[int, int]] = []
    for value in values:
        match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", value)
        if not match:
            raise ValueError(f"expected a window like 10:00-19:00, got {value!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if m1 > 59 or m2 > 59 or start > 1440 or end > 1440:
            raise ValueError(f"no such time of day in {value!r}")
        if end <= start:
            raise ValueError(f"empty window {value!r}: it must end after it starts")
        windows.append((start, end))
    windows.sort()
    for (_, end), (start, _) in itertools.pairwise(windows):
        if start < end:
            raise ValueError(f"overlapping windows in {values!r}")
    return tuple(windows)


def known_zone(value: str) -> str:
    """VALUE if it names an IANA time zone, else ValueError."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetModel(Section):
    """A target: a duration, its unit, and (for working time) a calendar."""

    duration: timedelta
    unit: Literal["clock", "working"] = "clock"
    calendar: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            amount, _, unit = value.strip().partition(" ")
            return {"duration": amount, "unit": unit.strip() or "clock"}
        return value

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        if not isinstance(value, str):
            raise ValueError("expected a duration text like 15m, 1h, 4h30m")
        return parse_duration(value)


class CalendarModel(Section):
    time_zone: str = "Europe/Moscow"
    country: str | None = None
    subdivision: str | None = None
    working_days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:5]))
    hours: list[str] = Field(default_factory=lambda: ["10:00-19:00"])
    weekly: dict[Weekday, list[str]] = Field(default_factory=dict)
    pre_holiday_shortening_min: int = Field(default=0, ge=0, le=600)
    days: dict[date, list[str]] = Field(default_factory=dict)
    # A decree's transfers the holidays package does not carry yet.
    extra_days_off: list[date] = Field(default_factory=list)
    extra_working_days: list[date] = Field(default_factory=list)

    _zone = field_validator("time_zone")(known_zone)

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is not None and value.upper() not in country_codes():
            raise ValueError(f"unknown country {value!r} (ISO 3166 code the holidays package "
                             "knows, e.g. RU)")
        return value.upper() if value else value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("a working day needs at least one window")
        parse_windows(value)
        return value

    @field_validator("weekly", "days")
    @classmethod
    def _each(cls, value: dict[Any, list[str]]) -> dict[Any, list[str]]:
        for windows in value.values():
            parse_windows(windows)
        return value

    @model_validator(mode="after")
    def _subdivision(self) -> CalendarModel:
        if self.subdivision is not None:
            if self.country is None:
                raise ValueError("subdivision needs a country")
            known = country_class(self.country).subdivisions
            if self.subdivision not in known:
                raise ValueError(f"unknown subdivision {self.subdivision!r} of {self.country}")
        return self

    def spec(self) -> CalendarSpec:
        weekly = tuple(parse_windows(self.weekly.get(day, [])) for day in WEEKDAYS)
        return CalendarSpec(
            zone=self.time_zone, hours=parse_windows(self.hours),
            weekly=weekly if any(weekly) else (),
            working_weekdays=frozenset(WEEKDAYS.index(d) for d in self.working_days),
            country=self.country, subdivision=self.subdivision,
            days=tuple(sorted((d, parse_windows(w)) for d, w in self.days.items())),
            pre_holiday_shortening_min=self.pre_holiday_shortening_min,
            extra_days_off=frozenset(self.extra_days_off),
            extra_working_days=frozenset(self.extra_working_days))


class TierModel(Section):
    calendar: str = "moscow"
    intake: Hours = "always"
    service: Hours = "always"
    service_by_type: dict[RequestType, Hours] = Field(default_factory=dict)
    reaction: TargetModel
    resolution: dict[Priority, TargetModel]
    target_pct: float = Field(default=90, gt=0, le=100)

    @field_validator("resolution")
    @classmethod
    def _every_priority(cls, value: dict[str, TargetModel]) -> dict[str, TargetModel]:
        missing = [p for p in PRIORITIES if p not in value]
        if missing:
            raise ValueError(f"missing resolution target for {', '.join(missing)}")
        return value


class IntakeNoticeModel(Section):
    enabled: bool = True


class AcknowledgementModel(Section):
    at_risk_pct: float = Field(default=50, gt=0, lt=100)


class EscalationModel(Section):
    thresholds_pct: list[float] = Field(default_factory=lambda: [75.0, 100.0])
    notify: list[Notified] = Field(default_factory=lambda: list(get_args(Notified)))
    duty_address: str = ""
    contacts: dict[str, str] = Field(default_factory=dict)
    # The language of notices to staff (escalations, acknowledgements at risk).
    language: Literal["ru", "en"] = "ru"

    @field_validator("thresholds_pct")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if any(v <= 0 or v > 1000 for v in value):
            raise ValueError("thresholds are percentages above 0 (at most 1000)")
        if sorted(set(value)) != value:
            raise ValueError("thresholds must be strictly increasing")
        return value

    @field_validator("duty_address")
    @classmethod
    def _address(cls, value: str) -> str:
        if value and not re.fullmatch(r"[^\s@<>]+@[^\s@<>]+", value):
            raise ValueError(f"not an e-mail address: {value!r}")
        return value


class ReportModel(Section):
    # Days of the SLA report (and its daily chart) are days in this zone.
    time_zone: str = "Europe/Moscow"

    _zone = field_validator("time_zone")(known_zone)


class PolicyFile(Section):
    calendars: dict[str, CalendarModel]
    tiers: dict[str, TierModel]
    intake_notice: IntakeNoticeModel = IntakeNoticeModel()
    acknowledgement: AcknowledgementModel = AcknowledgementModel()
    escalation: EscalationModel = EscalationModel()
    report: ReportModel = ReportModel()

    @field_validator("tiers")
    @classmethod
    def _some_tier(cls, value: dict[str, TierModel]) -> dict[str, TierModel]:
        if not value:
            raise ValueError("define at least one tier")
        return value


@dataclass(frozen=True)
class Target:
    """A duration on the clock (calendar None) or in working time on CALENDAR."""

    duration: timedelta
    calendar: WorkingCalendar | None


@dataclass(frozen=True)
class Targets:
    """The deadlines of one tier, request type and priority."""

    reaction: Target
    resolution: Target
    # Working hours of the service for such a ticket (None: around the clock); escalation
    # notices go out only then.
    service: WorkingCalendar | None


@dataclass(frozen=True)
class TierPolicy:
    name: str
    calendar: WorkingCalendar
    intake: WorkingCalendar | None  # None: registers around the clock
    target_pct: float


@dataclass(frozen=True)
class Policy:
    """The policy in force: validated, with every target resolved to its unit and calendar."""

    source: str
    tiers: dict[str, TierPolicy]
    targets: dict[tuple[str, str, str], Targets]
    courtesy_notice: bool
    ack_at_risk_pct: float
    escalation: EscalationModel
    report_zone: str = "Europe/Moscow"

    def tier(self, name: str) -> TierPolicy:
        return self.tiers[name.lower()]

    def targets_for(self, tier: str, request_type: str, priority: str) -> Targets:
        """Unknown request types count as incidents."""
        kind = request_type if request_type in REQUEST_TYPES else "incident"
        return self.targets[(tier.lower(), kind, priority)]


def _calendar_references(parsed: PolicyFile) -> list[tuple[tuple[str | int, ...], str]]:
    """Every calendar name the tiers mention, with where it is written."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    for tier_name, tier in parsed.tiers.items():
        found.append((("tiers", tier_name, "calendar"), tier.calendar))
        named = [(("tiers", tier_name, "reaction"), tier.reaction)] + [
            (("tiers", tier_name, "resolution", p), m) for p, m in tier.resolution.items()]
        found += [((*loc, "calendar"), m.calendar) for loc, m in named if m.calendar]
    return found


def _resolve(parsed: PolicyFile, name: str, text: str) -> Policy:
    calendars = {key: WorkingCalendar(model.spec()) for key, model in parsed.calendars.items()}
    defined = ", ".join(sorted(calendars)) or "none"
    problems = [problem_of(name, text, loc, f"unknown calendar {key!r}; defined: {defined}")
                for loc, key in _calendar_references(parsed) if key not in calendars]
    if problems:
        raise ConfigError(problems)
    tiers: dict[str, TierPolicy] = {}
    targets: dict[tuple[str, str, str], Targets] = {}
    for tier_name, tier in parsed.tiers.items():
        key = tier_name.lower()
        home = calendars[tier.calendar]
        tiers[key] = TierPolicy(key, home, home if tier.intake == "working" else None,
                                tier.target_pct)
        for kind in REQUEST_TYPES:
            # A service that runs only in working hours counts every target in working time.
            working = tier.service_by_type.get(kind, tier.service) == "working"
            reaction = _target(tier.reaction, working, calendars, tier.calendar)
            for priority in PRIORITIES:
                resolution = _target(tier.resolution[priority], working, calendars,
                                     tier.calendar)
                # The service works around the clock for a ticket unless its resolution is
                # counted in working time.
                targets[(key, kind, priority)] = Targets(reaction, resolution,
                                                         resolution.calendar)
    return Policy(name, tiers, targets, parsed.intake_notice.enabled,
                  parsed.acknowledgement.at_risk_pct, parsed.escalation,
                  parsed.report.time_zone)


def _target(model: TargetModel, working_service: bool, calendars: dict[str, WorkingCalendar],
            tier_calendar: str) -> Target:
    working = working_service or model.unit == "working"
    return Target(model.duration, calendars[model.calendar or tier_calendar] if working else None)


def parse_policy(text: str, name: str) -> Policy:
    """Validate policy TEXT; ConfigError lists every problem with file, line and key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([syntax_problem(name, error)]) from None
    try:
        parsed = PolicyFile.model_validate(data)
    except ValidationError as error:
        raise ConfigError([problem_of(name, text, tuple(e["loc"]), e["msg"])
                           for e in error.errors()]) from None
    return _resolve(parsed, name, text)


def load_policy(path: Path | None) -> Policy:
    """The policy file at PATH, or the built-in seed policy when PATH is None."""
    chosen = path or DEFAULT_POLICY
    try:
        text = chosen.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([ConfigProblem(str(chosen), 0, "", f"cannot read: {error}")]) from None
    return parse_policy(text, str(chosen) if path else "built-in policy")


def load_policy_for(settings: Settings) -> Policy:
    """The policy `files.policy` names (else the seed's), checked against the settings."""
    policy = load_policy(settings.files.policy) if settings.files.policy else seed_policy()
    tier = settings.intake.unknown_customer_tier.lower()
    if tier not in policy.tiers:
        raise ConfigError([ConfigProblem(
            "<config>", 0, "intake.unknown_customer_tier",
            f"unknown tier {tier!r}; the policy defines {', '.join(policy.tiers)}")])
    return policy


def reload_policy(current: Policy, path: Path | None) -> tuple[Policy, ConfigError | None]:
    """The new policy from PATH, or CURRENT and the error when the file is bad."""
    try:
        return load_policy(path), None
    except ConfigError as error:
        return current, error


_SEED: Policy | None = None


def seed_policy() -> Policy:
    """The built-in policy, parsed once per process."""
    global _SEED
    if _SEED is None:
        _SEED = load_policy(None)
    return _SEED
