"""BitFusion (Sharma et al., ISCA 2018): an exact re-implementation of its simulator's model.

``simulate_layer`` prices one layer like the original simulator does, field for field;
``bitfusion-edge`` / ``bitfusion-cloud`` build whole cost tables from it. Bit widths snap to the
fusion modes for compute (1 runs like 2, 3 like 4, 5-7 like 8) but enter every buffer and DRAM
footprint exactly, so 5-bit moves fewer bytes than 8-bit at the same compute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from haq.cost._base import CostModel, Param, register_cost_model
from haq.cost._bitfusion_engine import BitFusionConfig, ConvShape, EnergyTable, search
from haq.cost._geometry import geometry
from haq.cost._table import CostTable, stack_layers
from haq.cost._units import METRIC_UNITS
from haq.errors import CostModelError
from haq.policy import GRID_SIZE, INT_BITS
from haq.specs import LayerSpec

__all__ = ["PRESETS", "BitFusionConfig", "BitFusionModel", "EnergyTable", "simulate_layer"]

PRESETS: dict[str, BitFusionConfig] = {
    # the repo's bf_e_conf.ini: iso-area comparison with Eyeriss, 45 nm
    "bf_e": BitFusionConfig(),
    # bf_s_conf.ini: bigger buffers and DRAM interface. Its SRAM energies would need CACTI rows
    # the simulator does not ship, so the bf_e energies are reused (as in the golden records).
    "bf_s": BitFusionConfig(wbuf_bytes=128 * 1024, ibuf_bytes=128 * 1024,
                            obuf_bytes=128 * 1024, dram_bits_per_cycle=4096, clock_mhz=980.0),
}


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int | np.integer) else tuple(value)
    if len(pair) != 2 or any(int(v) < 1 for v in pair):
        raise CostModelError(f"{name} must be a positive int or a (rows, cols) pair; got {value!r}")
    return int(pair[0]), int(pair[1])


def simulate_layer(K: int | tuple[int, int], O: int | tuple[int, int],  # noqa: E741
                   S: int | tuple[int, int], IC: int, OC: int, a_bits: int, w_bits: int,
                   batch: int = 1, im2col: bool = False,
                   config: str | BitFusionConfig = "bf_e") -> dict[str, Any]:
    """Price one convolution (or FC: ``K=1, O=1``) on BitFusion, as its simulator does.

    Args:
        K: kernel size (square) or (rows, cols).
        O: output size (square) or (rows, cols).
        S: stride, int or (rows, cols).
        IC: input channels (FC: in_features).
        OC: output channels (FC: out_features).
        a_bits: activation bits, 1-8.
        w_bits: weight bits, 1-8.
        batch: images per run.
        im2col: the input was lowered to columns on the host (the network's first layer in
            the original): the reduction runs over K*K*IC at once instead of per tap.
        config: ``"bf_e"``, ``"bf_s"`` or a :class:`BitFusionConfig`.

    Returns:
        ``cycles``, ``mem_stall_cycles``, ``energy_nJ`` and ``reads`` / ``writes`` dicts of bit
        counts for ``act``, ``wgt``, ``out`` (SRAM buffers) and ``dram``.

    Raises:
        CostModelError: bits outside 1-8, non-positive sizes, unknown config, or no tiling fits.
    """
    if isinstance(config, str):
        if config not in PRESETS:
            raise CostModelError(f"unknown BitFusion config {config!r}; presets: "
                                 f"{', '.join(PRESETS)} (or pass a BitFusionConfig)")
        config = PRESETS[config]
    kh, kw = _pair(K, "K")
    oh, ow = _pair(O, "O")
    sh, sw = _pair(S, "S")
    for name, value in (("IC", IC), ("OC", OC), ("batch", batch)):
        if int(value) < 1:
            raise CostModelError(f"{name} must be >= 1, got {value}")
    shape = ConvShape(kh, kw, oh, ow, sh, sw, int(IC), int(OC))
    return search(shape, int(a_bits), int(w_bits), int(batch), bool(im2col), config)


_UNITS = {m: METRIC_UNITS[m] for m in ("cycles", "latency", "energy", "dram")}


@register_cost_model("bitfusion-cloud", batch=16, wbuf_kib=128, ibuf_kib=128, obuf_kib=128,
                     dram_bits_per_cycle=4096, clock_mhz=980.0,
                     description="BitFusion, bf_s buffers/DRAM at 980 MHz, batch 16 (our "
                     "assumption, not from HAQ); exact simulator model")
@register_cost_model("bitfusion-edge", description="BitFusion bf_e (16x32 fusion units, "
                     "500 MHz, 45 nm), batch 1; exact simulator model")
class BitFusionModel(CostModel):
    """BitFusion: cycles, latency (ms), energy (nJ) and DRAM traffic (bits) per layer.

    The network's first layer (``spec.index == 0``) is im2col'ed on the host as in the original.
    BitFusion broadcasts each input to every output column, so it has no grouped mode; a
    grouped/depthwise layer is lowered one of two legal ways (param ``depthwise``):
    ``groups``, one small convolution per group run back to back, or ``dense``, one full
    convolution whose weights are zero outside the diagonal blocks. ``best`` (default) takes,
    per bit pair, the lowering with fewer cycles (then less energy), as a compiler would.
    Float operands cannot be priced (NaN).
    """

    PARAMS = (
        Param("batch", 1, "images per inference", int),
        Param("rows", 16, "N: fusion-unit rows (reduction lanes)", int),
        Param("cols", 32, "M: fusion-unit columns (output channels)", int),
        Param("wbuf_kib", 64, "weight buffer, KiB", int),
        Param("ibuf_kib", 32, "input buffer, KiB", int),
        Param("obuf_kib", 16, "output buffer, KiB", int),
        Param("dram_bits_per_cycle", 192, "DRAM interface width, bits per cycle", int),
        Param("clock_mhz", 500.0, "core clock in MHz (cycles -> ms)", float),
        Param("depthwise", "best", "lowering of grouped/depthwise convs: groups (one conv per "
              "group), dense (block-diagonal full conv) or best (cheaper per bit pair)", str,
              ("best", "groups", "dense")),
    )
    VERSION = "bitfusion-1"
    CACHEABLE = True

    def config(self) -> BitFusionConfig:
        p = self.params
        return replace(PRESETS["bf_e"], rows=p["rows"], cols=p["cols"],
                       wbuf_bytes=p["wbuf_kib"] * 1024, ibuf_bytes=p["ibuf_kib"] * 1024,
                       obuf_bytes=p["obuf_kib"] * 1024,
                       dram_bits_per_cycle=p["dram_bits_per_cycle"], clock_mhz=p["clock_mhz"])

    def validate(self) -> None:
        if self.params["batch"] < 1:
            raise CostModelError(f"{self.name}: batch must be >= 1")
        self.config()  # raises on non-positive sizes

    def build(self, specs: Sequence[LayerSpec]) -> CostTable:
        cfg = self.config()
        memo: dict[tuple[Any, ...], dict[str, np.ndarray]] = {}

        def grid(shape: ConvShape, batch: int, im2col: bool) -> dict[str, np.ndarray]:
            key = (shape, batch, im2col)
            if key not in memo:
                memo[key] = self._grid(shape, batch, im2col, cfg)
            return memo[key]

        mode = self.params["depthwise"]
        layers = []
        for spec in specs:
            geo = geometry(spec, self.params["batch"])
            shape = ConvShape(geo.kh, geo.kw, geo.oh, geo.ow, geo.sh, geo.sw, geo.ic, geo.oc)
            if geo.groups == 1 or mode == "groups":
                cost = {m: v * geo.groups for m, v in grid(shape, geo.batch, geo.first).items()}
            else:
                dense = grid(replace(shape, ic=geo.ic * geo.groups, oc=geo.oc * geo.groups),
                             geo.batch, geo.first)
                cost = dense if mode == "dense" else _cheaper(
                    {m: v * geo.groups for m, v in grid(shape, geo.batch, geo.first).items()},
                    dense)
            layers.append({m: v * geo.repeats for m, v in cost.items()})
        return stack_layers([s.name for s in specs], layers, _UNITS, self.source())

    @staticmethod
    def _grid(shape: ConvShape, batch: int, im2col: bool, cfg: BitFusionConfig
              ) -> dict[str, np.ndarray]:
        out = {m: np.full((GRID_SIZE, GRID_SIZE), np.nan) for m in _UNITS}
        for w in INT_BITS:
            for a in INT_BITS:
                r = search(shape, a, w, batch, im2col, cfg)
                out["cycles"][w - 1, a - 1] = r["cycles"]
                out["energy"][w - 1, a - 1] = r["energy_nJ"]
                out["dram"][w - 1, a - 1] = r["reads"]["dram"] + r["writes"]["dram"]
        out["latency"] = out["cycles"] / (cfg.clock_mhz * 1e3)  # cycles / (cycles per ms)
        return out


def _cheaper(first: dict[str, np.ndarray], second: dict[str, np.ndarray]
             ) -> dict[str, np.ndarray]:
    """Per bit pair, all metrics of whichever lowering has fewer cycles (ties: less energy)."""
    c1, c2 = first["cycles"], second["cycles"]
    take = (c2 < c1) | ((c2 == c1) & (second["energy"] < first["energy"]))
    return {m: np.where(take, second[m], first[m]) for m in first}
