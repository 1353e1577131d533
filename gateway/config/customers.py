"""The customers file: who writes to us, their tier and language, matched by address or domain."""

from __future__ import annotations

import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from parsers.idn import comparable_address, unicode_domain
from parsers.phones import to_e164
from rules.config_errors import ConfigError, ConfigProblem, problem_of

# The seed's tiers; a policy file may define others (its tiers are passed to load_customers).
TIERS = ("8/5", "24/7", "premium")


class CustomerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    name: str = ""
    tier: str = "8/5"
    language: str = "ru"
    emails: list[str] = Field(default_factory=list)
    domains: list[str] = Field(default_factory=list)
    phones: list[str] = Field(default_factory=list)
    engineer: str | None = None
    manager: str | None = None
    # Overrides [trust] mode for this customer: "report" for one whose mail is known to
    # break DKIM (mailing lists, forwarders), so it is checked and shown but never held.
    trust: Literal["off", "report", "enforce"] | None = None

    @field_validator("tier")
    @classmethod
    def _known_tier(cls, value: str, info: ValidationInfo) -> str:
        tier = value.lower()
        known = (info.context or {}).get("tiers", TIERS)
        if tier not in known:
            raise ValueError(f"unknown tier {value!r}; expected one of {', '.join(known)}")
        return tier

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        if value not in ("ru", "en"):
            raise ValueError("expected ru or en")
        return value

    @field_validator("emails")
    @classmethod
    def _comparable_emails(cls, values: list[str]) -> list[str]:
        # A typo here (a comma for a dot, a missing @) would match nobody, silently.
        if bad := [f"{v!r} ({problem.rstrip('.')})" for v in values
                   if (problem := address_problem(v))]:
            raise ValueError("not an e-mail address: " + "; ".join(bad))
        return [comparable_address(v) for v in values]

    @field_validator("phones")
    @classmethod
    def _readable_phones(cls, values: list[str]) -> list[str]:
        # As written; calls are matched by each number's E.164 form, which these must have.
        if bad := [repr(v) for v in values if to_e164(v) is None]:
            raise ValueError(f"not a phone number: {', '.join(bad)} (expected digits, "
                             "spaces, dashes, brackets, an optional leading +)")
        return values

    @field_validator("domains")
    @classmethod
    def _comparable_domains(cls, values: list[str]) -> list[str]:
        # IDNA (xn--) and Unicode spellings of one domain are one domain.
        return [unicode_domain(v.strip().lstrip("@")) for v in values]


class CustomersFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    customer: list[CustomerEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class Directory:
    """Customers indexed for matching; an empty directory matches nobody."""

    customers: tuple[CustomerEntry, ...] = ()
    _by_address: dict[str, CustomerEntry] = field(default_factory=dict, compare=False)
    _by_domain: dict[str, CustomerEntry] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, customers: list[CustomerEntry]) -> Directory:
        by_address = {e: c for c in customers for e in c.emails}
        by_domain = {d: c for c in customers for d in c.domains}
        return cls(tuple(customers), by_address, by_domain)

    def match_email(self, address: str | None) -> CustomerEntry | None:
        """By exact address first, then by domain and its parent domains."""
        if not address:
            return None
        address = comparable_address(address)
        if found := self._by_address.get(address):
            return found
        domain = address.rpartition("@")[2]
        while domain:
            if found := self._by_domain.get(domain):
                return found
            domain = domain.partition(".")[2]
        return None

    def get(self, customer_id: str | None) -> CustomerEntry | None:
        return next((c for c in self.customers if c.id == customer_id), None)


def load_customers(path: Path | None, tiers: Collection[str] = TIERS) -> Directory:
    """Read and validate the customers file against the policy's TIERS; no file, no customers."""
    if path is None:
        return Directory()
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([ConfigProblem(str(path), 0, "", f"cannot read: {error}")]) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([ConfigProblem(str(path), 0, "", f"TOML syntax: {error}")]) from None
    problems = _duplicate_ids(data, path, text)
    try:
        parsed = CustomersFile.model_validate(data, context={"tiers": tuple(tiers)})
    except ValidationError as error:
        problems = [problem_of(str(path), text, tuple(e["loc"]), e["msg"])
                    for e in error.errors()] + problems
    if problems:
        raise ConfigError(problems)
    return Directory.of(list(parsed.customer))


def _duplicate_ids(data: dict[str, object], path: Path, text: str) -> list[ConfigProblem]:
    """A problem for each customer whose id an earlier one has already."""
    entries = data.get("customer")
    seen: set[object] = set()
    problems: list[ConfigProblem] = []
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        customer_id = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(customer_id, str) and customer_id in seen:
            problems.append(problem_of(str(path), text, ("customer", index, "id"),
                                       f"duplicate id {customer_id!r}"))
        seen.add(customer_id)
    return problems


def address_problem(address: str) -> str | None:
    """Why ADDRESS is no e-mail address (international ones included), or None."""
    try:
        validate_email(address, check_deliverability=False, allow_smtputf8=True,
                       test_environment=True)
    except EmailNotValidError as error:
        return str(error)
    return None
