"""One country's holidays loaded alone are exactly what the `holidays` package gives."""

from __future__ import annotations

from datetime import date, timedelta

import holidays
import pytest

from gateway.sla.country_holidays import country_class, country_codes, country_holidays

DAYS = [date(2019, 1, 1) + timedelta(days=n) for n in range(366 * 8)]


@pytest.mark.parametrize(("country", "subdivision"), [("RU", None), ("DE", "BY"), ("GBR", None)])
def test_same_days_as_the_package(country: str, subdivision: str | None) -> None:
    """Holidays, their names and working days agree with holidays.country_holidays."""
    ours = country_holidays(country, subdivision)
    theirs = holidays.country_holidays(country, subdiv=subdivision)
    assert [(d in ours, ours.get(d), ours.is_working_day(d)) for d in DAYS] == [
        (d in theirs, theirs.get(d), theirs.is_working_day(d)) for d in DAYS]


def test_codes_and_subdivisions_as_the_package_lists_them() -> None:
    """Every supported code is known, with the subdivisions the package lists for it."""
    supported = holidays.list_supported_countries()
    assert country_codes() == set(supported)
    assert all(list(country_class(code).subdivisions) == subdivisions
               for code, subdivisions in supported.items())


def test_unknown_country() -> None:
    """An unknown code fails as holidays.country_holidays fails."""
    with pytest.raises(NotImplementedError):
        country_holidays("XX")
