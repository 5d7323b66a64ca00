"""Metric names, their canonical units, and conversion of user-typed quantities into them.

Every cost array stores one metric in its canonical unit (``METRIC_UNITS``). Quantities typed by
a user ("800us", "1.2MB") or declared in a user table's header are converted into that unit here,
so the rest of the package never sees another unit.
"""

from __future__ import annotations

import re

from haq.errors import ConfigError

METRIC_UNITS: dict[str, str] = {
    "latency": "ms",
    "cycles": "cycles",
    "energy": "nJ",
    "dram": "bits",
    "size": "bytes",
    "bops": "BOPs",
}
"""Canonical unit of every built-in metric. Cost arrays always hold values in these units."""

_BYTE_UNITS = {"B": 1.0, "byte": 1.0, "bytes": 1.0, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9,
               "KiB": 1024.0, "MiB": 1024.0**2, "GiB": 1024.0**3}
_BIT_UNITS = {"bit": 1.0, "bits": 1.0, "kbit": 1e3, "Mbit": 1e6, "Gbit": 1e9}

# canonical unit -> {accepted spelling: factor to the canonical unit}
_CONVERSIONS: dict[str, dict[str, float]] = {
    "ms": {"s": 1e3, "ms": 1.0, "us": 1e-3, "µs": 1e-3, "ns": 1e-6},
    "nJ": {"J": 1e9, "mJ": 1e6, "uJ": 1e3, "µJ": 1e3, "nJ": 1.0, "pJ": 1e-3},
    "bytes": {**_BYTE_UNITS, **{k: v / 8 for k, v in _BIT_UNITS.items()}},
    "bits": {**_BIT_UNITS, **{k: v * 8 for k, v in _BYTE_UNITS.items()}},
    "BOPs": {"BOPs": 1.0, "BOP": 1.0, "bops": 1.0, "kBOPs": 1e3, "MBOPs": 1e6, "GBOPs": 1e9,
             "TBOPs": 1e12},
    "cycles": {"cycles": 1.0, "cycle": 1.0, "kcycles": 1e3, "Mcycles": 1e6, "Gcycles": 1e9},
}

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*([^\s\d.+-][^\s]*)?\s*$")


def canonical_unit(unit: str) -> str | None:
    """The canonical unit that ``unit`` converts to, or ``None`` if it is not a known unit."""
    for canonical, spellings in _CONVERSIONS.items():
        if unit in spellings:
            return canonical
    return None


def accepted_units(canonical: str) -> list[str]:
    """Spellings that convert into ``canonical`` (empty if the unit is not one we convert)."""
    return list(_CONVERSIONS.get(canonical, {}))


def convert(value: float, unit: str, to_unit: str) -> float:
    """Convert ``value`` from ``unit`` to ``to_unit``.

    Raises:
        ConfigError: the units measure different things (e.g. ms and nJ) or are unknown.
    """
    if unit == to_unit:
        return value
    target = canonical_unit(to_unit)
    if target is None or unit not in _CONVERSIONS[target]:
        allowed = ", ".join(accepted_units(target)) if target else to_unit
        raise ConfigError(f"cannot convert {unit!r} to {to_unit!r}; units accepted for "
                          f"{to_unit!r}: {allowed}")
    return value * _CONVERSIONS[target][unit] / _CONVERSIONS[target][to_unit]


def parse_quantity(text: str) -> tuple[float, str]:
    """Split "12ms" / "3.5 mJ" / "0.5x" / "2e9BOPs" into (number, unit); unit may be ''.

    Raises:
        ConfigError: ``text`` is not a number optionally followed by a unit.
    """
    match = _QUANTITY.match(text)
    if not match:
        raise ConfigError(f"{text!r} is not a number with an optional unit "
                          "(examples: 0.5, 0.5x, 12ms, 3.5mJ, 1.2MB, 2e9BOPs)")
    return float(match.group(1)), match.group(2) or ""
