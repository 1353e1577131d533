"""Counts of a group of requests in the SLA report, and the exact share and comparison."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from fractions import Fraction
from typing import Any


def share_text(met: int, decided: int) -> str:
    """MET of DECIDED in percent, cut (never rounded up) to two decimals: 2,249 of 2,500
    is 89.96 %, and 8,999.9 % never shows as the target it missed."""
    if not decided:
        return "-"
    value = (Decimal(met) * 100 / Decimal(decided)).quantize(Decimal("0.01"), ROUND_DOWN)
    return f"{value}%"


def reaches(met: int, decided: int, target_pct: float) -> bool | None:
    """Whether MET of DECIDED reaches TARGET_PCT, compared exactly (no rounding); None while
    nothing is decided."""
    if not decided:
        return None
    return Fraction(met * 100, decided) >= Fraction(str(target_pct))


@dataclass
class Tally:
    """Counts of one group of requests. A request is within SLA when both its reaction and
    its resolution met their deadlines, breached when either missed (a withheld
    acknowledgement is a missed reaction), undecided otherwise."""

    requests: int = 0
    reaction_met: int = 0
    reaction_missed: int = 0
    reaction_withheld: int = 0
    resolution_met: int = 0
    resolution_missed: int = 0
    open_breached: int = 0
    within: int = 0
    breached: int = 0

    COUNTS = ("requests", "reaction_met", "reaction_missed", "reaction_withheld",
              "resolution_met", "resolution_missed", "open_breached", "within", "breached")

    def add(self, other: Tally) -> None:
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def decided(self) -> int:
        return self.within + self.breached

    @staticmethod
    def pct(met: int, missed: int) -> float | None:
        """Share met among the decided ones in percent, cut to one decimal; None if none is."""
        if not met + missed:
            return None
        return float((Decimal(met) * 100 / Decimal(met + missed)).quantize(
            Decimal("0.1"), ROUND_DOWN))

    def counts(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.COUNTS} | {
            "reaction_met_pct": self.pct(self.reaction_met, self.reaction_missed),
            "resolution_met_pct": self.pct(self.resolution_met, self.resolution_missed),
            "within_sla_pct": self.pct(self.within, self.breached),
            "within_sla": share_text(self.within, self.decided)}
