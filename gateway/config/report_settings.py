"""`[[reports]]`: the SLA report mailed on a schedule, one per customer (issue 24)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ReportSettings(BaseModel):
    """Each month on DAY at AT (the report zone's time), last month's report of each of
    CUSTOMERS (empty: every customer with requests) goes to TO."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    to: list[str] = Field(min_length=1)
    customers: list[str] = Field(default_factory=list)
    format: Literal["pdf", "html", "csv"] = "pdf"
    day: int = Field(default=1, ge=1, le=28)
    at: str = "09:00"

    @field_validator("to")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", value):
                raise ValueError(f"not an e-mail address: {value!r}")
        return values

    @field_validator("at")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("expected HH:MM")
        return value
