"""CostTable: the cost of every layer at every (w_bits, a_bits), per metric, with units."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from haq.errors import CostModelError
from haq.policy import GRID_SIZE, MAX_BITS, Policy, check_bit_arrays, grid_indices, policy_arrays
from haq.specs import LayerSpec


@dataclass
class CostTable:
    """Per-layer cost of every bit pair, for each metric a model knows.

    ``values[metric]`` is a float64 array of shape ``[L, 9, 9]`` indexed
    ``[layer, bits_index(w_bits), bits_index(a_bits)]``: index ``b - 1`` for ``b`` bits and
    ``8`` for a float operand. A model that cannot price a float operand leaves NaN there;
    evaluating a policy that lands on NaN raises ``CostModelError``. Costs are additive over
    layers (no inter-layer overlap), as in HAQ.

    Attributes:
        layer_names: layer (module path) names in execution order.
        values: metric name -> ``[L, 9, 9]`` float64 array, in ``units[metric]``.
        units: metric name -> unit (see ``METRIC_UNITS``).
        source: provenance: model name, parameters, version (also the cache key's content).
    """

    layer_names: list[str]
    values: dict[str, np.ndarray]
    units: dict[str, str]
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layer_names = [str(n) for n in self.layer_names]
        if len(set(self.layer_names)) != len(self.layer_names):
            raise CostModelError("cost table layer names must be unique")
        shape = (len(self.layer_names), GRID_SIZE, GRID_SIZE)
        for metric, arr in list(self.values.items()):
            arr = np.asarray(arr, dtype=np.float64)
            if arr.shape != shape:
                raise CostModelError(f"metric {metric!r} has shape {arr.shape}; expected "
                                     f"{shape} = [layers, w_bits 1-8 + float, a_bits 1-8 + float]")
            self.values[metric] = arr
            if metric not in self.units:
                raise CostModelError(f"metric {metric!r} has no unit; add it to `units`")

    # -- access -------------------------------------------------------------------------------
    @property
    def metrics(self) -> list[str]:
        """Names of the metrics this table holds."""
        return list(self.values)

    def __len__(self) -> int:
        return len(self.layer_names)

    def full_array(self, metric: str) -> np.ndarray:
        """``[L, 9, 9]`` array of one metric, float operands included (index 8)."""
        if metric not in self.values:
            raise CostModelError(f"this cost table has no metric {metric!r}; it has "
                                 f"{', '.join(self.metrics)} (source: {self.source.get('model')})")
        return self.values[metric]

    def array(self, metric: str) -> np.ndarray:
        """``[L, 8, 8]`` view of one metric over integer bits: ``[layer, w_bits-1, a_bits-1]``."""
        return self.full_array(metric)[:, :MAX_BITS, :MAX_BITS]

    # -- evaluation ---------------------------------------------------------------------------
    def _policy_arrays(self, policy: Policy,
                       specs: Sequence[LayerSpec] | None) -> tuple[np.ndarray, np.ndarray]:
        if specs is not None:
            names = [s.name for s in specs]
            if names != self.layer_names:
                raise CostModelError("the specs do not match this cost table's layers; rebuild "
                                     "the table for this model (CostModel.table(specs))")
        return policy_arrays(policy, self.layer_names)

    def _gather(self, w_bits: np.ndarray, a_bits: np.ndarray) -> dict[str, np.ndarray]:
        """Per-layer costs ``[..., L]`` for bit arrays of shape ``[..., L]`` (0 = float)."""
        w, a = check_bit_arrays(w_bits, a_bits, len(self))
        wi, ai = grid_indices(w), grid_indices(a)
        layers = np.arange(len(self))
        out = {}
        for metric, arr in self.values.items():
            vals = arr[layers, wi, ai]
            if np.isnan(vals).any():
                bad = np.argwhere(np.isnan(vals))[0]
                layer = int(bad[-1])
                wb, ab = int(w[tuple(bad)]), int(a[tuple(bad)])
                raise CostModelError(
                    f"{self.source.get('model', 'this cost model')} cannot price layer "
                    f"{self.layer_names[layer]!r} at w_bits={wb or 'float'}, "
                    f"a_bits={ab or 'float'} ({metric}); give the layer integer bits 1-8 or "
                    "use a cost model that prices float operands (size, bops)")
            out[metric] = vals
        return out

    def per_layer(self, policy: Policy) -> dict[str, np.ndarray]:
        """Cost of each layer under ``policy``: metric -> ``[L]`` array, in ``units``."""
        return self._gather(*self._policy_arrays(policy, None))

    def evaluate(self, policy: Policy, specs: Sequence[LayerSpec] | None = None
                 ) -> dict[str, float]:
        """Total cost of ``policy`` per metric (sum over layers), in ``units``.

        Args:
            policy: one (w_bits, a_bits) per layer of this table.
            specs: if given, also checked to be the layers this table was built for.

        Raises:
            PolicyError: the policy's layers differ from the table's.
            CostModelError: a chosen entry cannot be priced (float operand on a fixed-point
                accelerator), naming the layer.
        """
        per_layer = self._gather(*self._policy_arrays(policy, specs))
        return {m: float(v.sum()) for m, v in per_layer.items()}

    def evaluate_arrays(self, w_bits: np.ndarray, a_bits: np.ndarray) -> dict[str, np.ndarray]:
        """Vectorised totals for many policies at once.

        Args:
            w_bits: int array ``[P, L]`` (or ``[L]``), weight bits per layer, 0 = float.
            a_bits: int array of the same shape, activation bits.

        Returns:
            metric -> ``[P]`` array of totals (a 0-d array for ``[L]`` input).
        """
        return {m: v.sum(axis=-1) for m, v in self._gather(w_bits, a_bits).items()}

    # -- I/O ----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write atomically as JSON (``.json``) or CSV (``.csv``); see docs/cost-models.md."""
        from haq.cost._table_io import save_table

        save_table(self, Path(path))

    @classmethod
    def load(cls, path: str | Path) -> CostTable:
        """Read a table written by ``save`` or by hand (JSON or CSV, chosen by suffix).

        Raises:
            CostModelError: missing file, unknown suffix, missing (w, a) entries, negative or
                non-finite values, or units that cannot be converted.
        """
        from haq.cost._table_io import load_table

        return load_table(Path(path))

    def with_source(self, **source: Any) -> CostTable:
        """A copy whose ``source`` is updated with ``source``."""
        return CostTable(list(self.layer_names), {m: v.copy() for m, v in self.values.items()},
                         dict(self.units), {**self.source, **source})


def reorder(table: CostTable, names: Sequence[str]) -> CostTable:
    """``table`` with its layers in the order of ``names`` (which must be the same set)."""
    index = [table.layer_names.index(n) for n in names]
    return CostTable(list(names), {m: v[index] for m, v in table.values.items()},
                     dict(table.units), dict(table.source))


def stack_layers(names: Sequence[str], per_layer: Sequence[Mapping[str, np.ndarray]],
                 units: Mapping[str, str], source: Mapping[str, Any]) -> CostTable:
    """Assemble a table from one ``{metric: [9, 9] array}`` per layer."""
    metrics = list(units)
    values = {m: np.stack([np.asarray(layer[m], dtype=np.float64) for layer in per_layer])
              for m in metrics}
    return CostTable(list(names), values, dict(units), dict(source))
