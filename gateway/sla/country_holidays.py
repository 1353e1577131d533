"""One country's calendar from the `holidays` package, without importing every other country."""

from __future__ import annotations

import functools
import importlib.util
import sys
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
