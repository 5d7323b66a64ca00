"""The ``table`` cost model: a user's own measured or simulated table, loaded from a file."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from haq.cost._base import CostModel, Param, register_cost_model
from haq.cost._table import CostTable, reorder
from haq.cost._units import METRIC_UNITS
from haq.errors import CostModelError
from haq.policy import GRID_SIZE, MAX_BITS
from haq.specs import LayerSpec


class NonMonotoneCostWarning(UserWarning):
    """A user table has a layer whose cost falls when bits rise."""


def load_haq_npy(path: Path, specs: Sequence[LayerSpec], clock_mhz: float | None) -> CostTable:
    """HAQ's released layout: ``[layers, 8, 8]`` indexed ``[layer, w-1, a-1]``, unit cycles.

    Layers are matched to ``specs`` by position (HAQ's files carry no names).
    """
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise CostModelError(f"cannot read {path} as a numpy array: {err}") from None
    if arr.ndim != 3 or arr.shape[1:] != (MAX_BITS, MAX_BITS):
        raise CostModelError(f"{path}: expected HAQ's [layers, 8, 8] layout "
                             f"([layer, w_bits-1, a_bits-1]); got shape {arr.shape}")
    if arr.shape[0] != len(specs):
        raise CostModelError(f"{path} has {arr.shape[0]} layers but the model has {len(specs)}; "
                             "HAQ tables are matched to layers by position, so they must agree")
    if not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all() or (arr < 0).any():
        raise CostModelError(f"{path}: every entry must be a finite number >= 0 (cycles)")
    cycles = np.full((len(specs), GRID_SIZE, GRID_SIZE), np.nan)
    cycles[:, :MAX_BITS, :MAX_BITS] = arr
    values = {"cycles": cycles}
    units = {"cycles": METRIC_UNITS["cycles"]}
    if clock_mhz is not None:
        values["latency"] = cycles / (clock_mhz * 1e3)
        units["latency"] = METRIC_UNITS["latency"]
    return CostTable([s.name for s in specs], values, units, {"file": str(path),
                                                              "layout": "haq-npy"})


def _align(table: CostTable, specs: Sequence[LayerSpec], path: Path) -> CostTable:
    names = [s.name for s in specs]
    unknown = [n for n in table.layer_names if n not in set(names)]
    missing = [n for n in names if n not in set(table.layer_names)]
    if unknown or missing:
        raise CostModelError(
            f"{path} does not match the model's layers: names not in the model "
            f"{unknown[:5]}, model layers missing from the table {missing[:5]}; the model's "
            f"layers are {names[:6]}{' ...' if len(names) > 6 else ''} (`haq specs MODEL`)")
    return reorder(table, names)


def _warn_non_monotone(table: CostTable, path: Path) -> None:
    """Warn (not fail): real measurements can be noisy, but the search assumes monotone costs."""
    for metric in table.metrics:
        arr = table.array(metric)
        falls_w = (np.diff(arr, axis=1) < 0).any(axis=(1, 2))
        falls_a = (np.diff(arr, axis=2) < 0).any(axis=(1, 2))
        bad = [table.layer_names[i] for i in np.flatnonzero(falls_w | falls_a)]
        if bad:
            warnings.warn(
                f"{path}: {metric} decreases as bits increase in layer(s) "
                f"{', '.join(bad[:8])}{' ...' if len(bad) > 8 else ''}; budget projection "
                "assumes fewer bits never cost more, so check these entries",
                NonMonotoneCostWarning, stacklevel=3)


@register_cost_model("table", description="your own table from a .json/.csv file (haq format) "
                     "or HAQ's released [layers, 8, 8] .npy cycle table")
class UserTableModel(CostModel):
    """A cost table read from ``path`` and checked against the model's layers."""

    PARAMS = (
        Param("path", None, "table file: .json / .csv (docs/cost-models.md) or HAQ .npy", str,
              optional=True),
        Param("clock_mhz", None, ".npy only: clock in MHz to add a latency (ms) metric", float,
              optional=True),
    )
    VERSION = "table-1"

    def validate(self) -> None:
        if not self.params["path"]:
            raise CostModelError("the 'table' cost model needs path=FILE (.json, .csv or .npy)")
        clock = self.params["clock_mhz"]
        if clock is not None and clock <= 0:
            raise CostModelError("clock_mhz must be > 0")

    def build(self, specs: Sequence[LayerSpec]) -> CostTable:
        path = Path(self.params["path"])
        if not path.is_file():
            raise CostModelError(f"cost table file {path} does not exist")
        if path.suffix.lower() == ".npy":
            table = load_haq_npy(path, specs, self.params["clock_mhz"])
        else:
            if self.params["clock_mhz"] is not None:
                raise CostModelError("clock_mhz applies to .npy tables only; put latency in "
                                     "the .json/.csv file itself")
            table = _align(CostTable.load(path), specs, path)
        _warn_non_monotone(table, path)
        return table.with_source(**self.source())
