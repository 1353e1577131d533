"""One country's calendar from the `holidays` package, without importing every other country."""

from __future__ import annotations

import functools
import importlib.util
import sys
from datetime import date
from pathlib import Path

import holidays
from holidays.registry import COUNTRIES, IMPORT_LOCK, EntityLoader


@functools.cache
def country_codes() -> frozenset[str]:
    """Every country code the package knows (alpha-2, alpha-3 and aliases such as UK)."""
    return frozenset(EntityLoader.get_country_codes())


def country_holidays(country: str, subdivision: str | None = None) -> holidays.HolidayBase:
    """What `holidays.country_holidays(country, subdiv=subdivision)` returns."""
    return country_class(country)(subdiv=subdivision)


@functools.cache
def country_class(country: str) -> type[holidays.HolidayBase]:
    """The class of COUNTRY (a code), with only its own module imported.

    `holidays.country_holidays` imports the package `holidays.countries`, whose `__init__`
    imports all ~250 countries: 8 MB in the daemon and in every worker process, for one
    calendar.
    """
    found = next(((m, n) for m, n in COUNTRIES.items() if country in n[1:]), None)
    if found is None:
        raise NotImplementedError(f"Country {country} not available")
    module_name, names = found
    qualified = f"holidays.countries.{module_name}"
    # The package's own lock for its lazy imports: two threads must not run one module twice.
    with IMPORT_LOCK:
        module = sys.modules.get(qualified)
        if module is None:
            path = Path(holidays.__file__).parent / "countries" / f"{module_name}.py"
            spec = importlib.util.spec_from_file_location(qualified, path)
            if spec is None or spec.loader is None:
                raise NotImplementedError(f"Country {country} not available")
            module = importlib.util.module_from_spec(spec)
            # Registered first, as `import` does; a later `import holidays.countries` reuses it.
            sys.modules[qualified] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[qualified]
                raise
    entity: type[holidays.HolidayBase] = getattr(module, names[0])
    return entity


def transferred_days_off(calendar: holidays.HolidayBase, year: int) -> frozenset[date]:
    """The days off of YEAR that a decree moved from another day (not holidays themselves).

    The package keeps them in its `special_*_holidays` tables as (month, day, from_month,
    from_day[, from_year]) entries; a plain special holiday has a name in place of the
    from-date. A day before such a day off is not a pre-holiday day.
    """
    found: set[date] = set()
    for name in dir(calendar):
        table = getattr(calendar, name, None) if name.startswith("special_") else None
        if not name.endswith("_holidays") or not isinstance(table, dict):
            continue
        entries = table.get(year, ())
        if entries and not isinstance(entries[0], tuple):
            entries = (entries,)
        for entry in entries:
            if len(entry) >= 4 and all(isinstance(part, int) for part in entry[:4]):
                found.add(date(year, entry[0], entry[1]))
    return frozenset(found)


def weekend_working_days(calendar: holidays.HolidayBase, year: int) -> frozenset[date]:
    """The weekend days of YEAR that a decree made working days."""
    calendar.get(date(year, 1, 1))  # populates YEAR
    return frozenset(d for d in getattr(calendar, "weekend_workdays", ()) if d.year == year)


def practises_transfers(calendar: holidays.HolidayBase) -> bool:
    """Whether the country moves days off by decree (then each year needs its decree)."""
    return bool(getattr(calendar, "has_substituted_holidays", False))
