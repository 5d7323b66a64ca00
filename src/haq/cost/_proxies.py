"""Hardware-free proxies: model size in bytes and bit-operations (BOPs)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from haq.cost._base import CostModel, Param, register_cost_model
from haq.cost._table import CostTable, stack_layers
from haq.cost._units import METRIC_UNITS
from haq.errors import CostModelError
from haq.policy import GRID_SIZE, INT_BITS, MAX_BITS
from haq.specs import LayerSpec

FLOAT_BITS = 32
# bits per index 0..8 of a [9, 9] grid: 1..8, then float
_GRID_BITS = np.array([*INT_BITS, FLOAT_BITS], dtype=np.float64)


@register_cost_model("size", description="weight storage in bytes at each layer's weight bits "
                     "(float = 32 bits); optional k-means codebooks and per-layer overhead")
class SizeModel(CostModel):
    """Bytes of weights: ``weight_params * w_bits / 8``, independent of activation bits.

    By default only weights count, as in the HAQ paper's size budgets (biases not counted). With
    ``kmeans=True`` each quantized layer also stores a codebook of ``2**w_bits`` float32
    centroids. With ``overhead=True`` the count is what a deployed layer stores (the bytes of
    ``haq export --format packed`` without its fixed header): each layer's codes rounded up to a
    whole byte, plus per output channel a float32 bias and, on a linear grid, a float32 weight
    clip, plus a float32 input clip when the input is quantized and one byte of flags.
    """

    PARAMS = (Param("kmeans", False, "add a 2^w_bits x 32-bit codebook per quantized layer",
                    bool),
              Param("overhead", False, "add what a deployed layer stores besides its weights "
                    "(bias, weight clips per output channel, input clip; codes in whole bytes)",
                    bool))
    VERSION = "size-1"

    def build(self, specs: Sequence[LayerSpec]) -> CostTable:
        bits = _GRID_BITS.copy()
        layers = []
        for spec in specs:
            per_w = spec.weight_params * bits / 8.0
            if self.params["overhead"]:
                per_w = np.ceil(per_w)
            if self.params["kmeans"]:
                per_w[:MAX_BITS] += 2.0 ** bits[:MAX_BITS] * FLOAT_BITS / 8.0
            cell = np.repeat(per_w[:, None], GRID_SIZE, axis=1)
            if self.params["overhead"]:
                cell += self._overhead(spec)
            layers.append({"size": cell})
        return stack_layers([s.name for s in specs], layers, {"size": METRIC_UNITS["size"]},
                            self.source())

    def _overhead(self, spec: LayerSpec) -> np.ndarray:
        """Bytes per [w_bits, a_bits] cell besides the weights, as ``packed`` stores them."""
        word = FLOAT_BITS // 8
        extra = np.full((GRID_SIZE, GRID_SIZE), spec.out_channels * word + 1.0)  # bias, flags
        if not self.params["kmeans"]:  # a linear grid's clip per output channel
            extra[:MAX_BITS, :] += spec.out_channels * word
        extra[:, :MAX_BITS] += word  # the input clip
        return extra


@register_cost_model("bops", description="bit-operations = MACs x w_bits x a_bits "
                     "(float = 32 bits)")
class BopsModel(CostModel):
    """Bit-operations per inference: ``MACs * w_bits * a_bits * batch``, float counted as 32."""

    PARAMS = (Param("batch", 1, "images per inference", int),)
    VERSION = "bops-1"

    def validate(self) -> None:
        if self.params["batch"] < 1:
            raise CostModelError(f"{self.name}: batch must be >= 1")

    def build(self, specs: Sequence[LayerSpec]) -> CostTable:
        pair = np.outer(_GRID_BITS, _GRID_BITS)
        layers = [{"bops": spec.macs * self.params["batch"] * pair} for spec in specs]
        return stack_layers([s.name for s in specs], layers, {"bops": METRIC_UNITS["bops"]},
                            self.source())
