"""What HGQ's beta pays for: EBOPs, or any cost table made differentiable by interpolation.

Both are normalised by the same quantity at 8 bits (EBOPs of 8x8-bit operands, or the table's
W8A8 cost), so beta means "loss per unit of the 8-bit cost" whatever the metric or model size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from haq.errors import ConfigError
from haq.policy import MAX_BITS
from haq.search.hgq._layers import HgqLayer, reference_ebops, total_ebops


def interpolate_bilinear(grid: torch.Tensor, w: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Bilinear interpolation of an ``[8, 8]`` grid indexed by bits 1..8 at real (w, a).

    Outside [1, 8] the bits are clamped (zero gradient there). Differentiable in w and a.
    """
    w = w.clamp(1.0, float(MAX_BITS))
    a = a.clamp(1.0, float(MAX_BITS))
    w0 = torch.clamp(torch.floor(w.detach()), 1, MAX_BITS - 1)
    a0 = torch.clamp(torch.floor(a.detach()), 1, MAX_BITS - 1)
    tw, ta = w - w0, a - a0
    i, j = int(w0) - 1, int(a0) - 1
    return ((1 - tw) * (1 - ta) * grid[i, j] + tw * (1 - ta) * grid[i + 1, j]
            + (1 - tw) * ta * grid[i, j + 1] + tw * ta * grid[i + 1, j + 1])


class EbopsCost:
    """Training-time EBOPs of the whole model, divided by its EBOPs at 8x8 bits."""

    name = "ebops"
    unit = "EBOPs"

    def __init__(self, layers: dict[str, HgqLayer]) -> None:
        self.layers = layers
        self.reference = reference_ebops(layers)

    def __call__(self) -> torch.Tensor:
        return total_ebops(self.layers) / self.reference

    def absolute(self) -> float:
        """Exact post-training EBOPs (enclosed-bit weight widths, traced input ranges)."""
        with torch.no_grad():
            return float(total_ebops(self.layers, exact=True))


class TableCost:
    """A cost-table metric at each layer's (weight width + sign, input width), interpolated.

    Per-layer granularity only: a table prices a layer from one (w, a) pair, and for per-layer
    f the layer's widest operand is exactly its format width.
    """

    unit = "relative"

    def __init__(self, layers: dict[str, HgqLayer], table_values: np.ndarray,
                 layer_order: Sequence[str], metric: str, reduce: str = "max") -> None:
        for name, layer in layers.items():
            if layer.weight_quant.granularity != "layer" or layer.act_quant.granularity != "layer":
                raise ConfigError(f"cost='table' needs per-layer granularity (layer {name!r} "
                                  "uses a finer one); use cost='ebops' or granularity 'layer'")
        self.layers = [layers[n] for n in layer_order]
        grids = np.asarray(table_values, dtype=np.float64)[:, :MAX_BITS, :MAX_BITS]
        if not np.isfinite(grids).all():
            raise ConfigError(f"the {metric} table has missing integer entries; HGQ needs every "
                              "(w, a) in 1..8 to interpolate")
        self.grids = torch.as_tensor(grids, dtype=torch.float32)
        self.reference = float(grids[:, 7, 7].sum())
        self.name, self.reduce = metric, reduce

    def __call__(self) -> torch.Tensor:
        total = torch.zeros(())
        for layer, grid in zip(self.layers, self.grids, strict=True):
            w, a = layer.mean_widths(reduce=self.reduce)
            total = total + interpolate_bilinear(grid, w, a)
        return total / self.reference
