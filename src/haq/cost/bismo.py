"""BISMO (Umuroglu et al., FPL 2018): a bit-serial matrix-multiply overlay, as a roofline.

A layer is lowered to a GEMM: weights are the ``M = out channels`` rows at ``w`` bits, im2col'ed
activations the ``N = batch * out positions`` columns at ``a`` bits, depth ``K = in channels *
kernel area``. A ``Dm x Dn`` array of ``Dk``-wide binary dot-product units processes one
bit-plane pair of one tile per pass, so compute is exactly ``w * a * ceil(M/Dm) ceil(N/Dn)
ceil(K/Dk)`` cycles; fetch and result stages overlap with it, so latency is the maximum of the
three. Cycles are the primary unit; ms follow from the clock.

``mode="textbook"`` prices every layer like that (depthwise = ``groups`` GEMMs of one row).
``mode="haq"`` reproduces how HAQ's released MobileNet-V2 table behaves: depthwise layers are
activation-serial only (weights bit-parallel), and each operand streams once through a 256
bit/cycle port: latency = max(compute, weight bits / BW, activation bits / BW).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from haq.cost._base import CostModel, Param, register_cost_model
from haq.cost._geometry import LayerGeometry, geometry
from haq.cost._table import CostTable, stack_layers
from haq.cost._units import METRIC_UNITS
from haq.errors import CostModelError
from haq.policy import GRID_SIZE, INT_BITS, MAX_BITS
from haq.specs import LayerSpec

__all__ = ["BismoModel", "layer_cycles"]

ACC_BITS = 32  # results leave the array as 32-bit accumulators
HAQ_BANDWIDTH = 256  # bits/cycle that fits HAQ's released table best (reference notes 2.4)

_BITS = np.array(INT_BITS, dtype=np.int64)
_W, _A = _BITS[:, None], _BITS[None, :]  # [8, 1] weight bits, [1, 8] activation bits


def _cdiv(a: int | np.ndarray, b: int) -> np.ndarray:
    return -(-np.asarray(a) // b)


def _textbook(geo: LayerGeometry, p: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cycles, exec cycles, DRAM bits) [8, 8] of one layer lowered to ``groups`` GEMMs."""
    dm, dn, dk = p["dm"], p["dn"], p["dk"]
    m, n, k = geo.gemm
    mp, np_, kp = _cdiv(m, dm) * dm, _cdiv(n, dn) * dn, _cdiv(k, dk) * dk
    execute = _W * _A * (mp // dm) * (np_ // dn) * (kp // dk)
    # operands are stored bit-plane packed and padded to the array; the weights are streamed
    # again for every Dn-wide activation stripe only when refetch is on
    lhs_passes = np_ // dn if p["refetch"] else 1
    fetch_bits = np_ * kp * _A + lhs_passes * mp * kp * _W
    result_bits = m * n * ACC_BITS
    cycles = np.maximum(np.maximum(execute, _cdiv(fetch_bits, p["read"])),
                        _cdiv(result_bits, p["write"]))
    g = geo.groups
    return g * cycles, g * execute, g * (fetch_bits + result_bits)


def _haq(geo: LayerGeometry, p: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cycles, exec cycles, DRAM bits) [8, 8] in the HAQ-calibrated mode."""
    dm, dn, dk = p["dm"], p["dn"], p["dk"]
    m, n, k = geo.gemm
    g = geo.groups
    if geo.depthwise:
        # weights held bit-parallel: one activation bit-plane per pass over each channel
        execute = g * _A * m * _cdiv(n, dn) * _cdiv(k, dk)
        act_bits = g * geo.batch * geo.ih * geo.iw * geo.ic * _A
    else:
        execute = g * _W * _A * _cdiv(m, dm) * _cdiv(n, dn) * _cdiv(k, dk)
        act_bits = g * n * k * _A  # im2col'ed activations stream once
    weight_bits = g * m * k * _W
    cycles = np.maximum(execute, np.maximum(_cdiv(weight_bits, p["read"]),
                                            _cdiv(act_bits, p["read"])))
    execute = np.broadcast_to(execute, cycles.shape)
    return cycles, execute, weight_bits + act_bits + g * m * n * ACC_BITS


def layer_cycles(geo: LayerGeometry, *, mode: str = "textbook", dm: int = 8, dn: int = 8,
                 dk: int = 256, read: int = 256, write: int = 256, refetch: bool = False
                 ) -> dict[str, np.ndarray]:
    """Cycles, compute-only cycles and DRAM bits of one layer for all 8x8 bit pairs.

    Args:
        geo: the layer's geometry (``haq.cost._geometry.geometry(spec, batch)``).
        mode: ``"textbook"`` or ``"haq"`` (see the module docstring).
        dm, dn, dk: PE array rows, columns and dot-product width.
        read, write: DRAM read/write width in bits per cycle (``haq`` mode uses ``read``).
        refetch: textbook mode streams the weights once per Dn-wide activation stripe.

    Returns:
        ``cycles``, ``exec`` and ``dram`` as ``[w_bits-1, a_bits-1]`` int arrays, all repeats
        of the layer included.
    """
    p = {"dm": dm, "dn": dn, "dk": dk, "read": read, "write": write, "refetch": refetch}
    cycles, execute, dram = (_haq if mode == "haq" else _textbook)(geo, p)
    r = geo.repeats
    return {"cycles": cycles * r, "exec": execute * r, "dram": dram * r}


@register_cost_model("bismo-cloud", batch=16, dm=16, dn=16, axi_bits=1024,
                     description="BISMO on a VU9P (HAQ cloud: 16x16 PEs, 4x256-bit AXI, "
                     "200 MHz assumed), batch 16; bit-serial roofline")
@register_cost_model("bismo-edge", description="BISMO on a Zynq-7020 (HAQ edge: 8x8 PEs, "
                     "4x64-bit AXI, 200 MHz), batch 1; bit-serial roofline")
class BismoModel(CostModel):
    """BISMO: cycles, latency (ms), DRAM bits, and optionally a low-fidelity energy.

    Float operands cannot run bit-serially (NaN). Energy exists only if ``power_w`` is given and
    is then board power times latency: low fidelity, labelled so in ``source``.
    """

    PARAMS = (
        Param("batch", 1, "images per inference", int),
        Param("mode", "haq", "haq: depthwise activation-serial, calibrated to HAQ's table; "
              "textbook: every layer a plain bit-serial GEMM", str, ("haq", "textbook")),
        Param("dm", 8, "Dm: PE rows (output channels per pass)", int),
        Param("dn", 8, "Dn: PE columns (output positions per pass)", int),
        Param("dk", 256, "Dk: binary dot-product width (reduction bits per cycle per PE)", int),
        Param("axi_bits", 256, "total AXI width in bits per cycle (4 ports)", int),
        Param("read_bits_per_cycle", None, "DRAM read width; None: axi_bits in textbook mode, "
              f"{HAQ_BANDWIDTH} (fitted to HAQ's table) in haq mode", int, optional=True),
        Param("refetch", False, "textbook: re-stream weights per activation stripe (BISMO v2 "
              "runtime tiling; pessimistic)", bool),
        Param("clock_mhz", 200.0, "clock in MHz (cycles -> ms)", float),
        Param("power_w", None, "board power in W for a low-fidelity energy = P * latency; "
              "None: no energy metric", float, optional=True),
    )
    VERSION = "bismo-1"

    def validate(self) -> None:
        p = self.params
        for name in ("batch", "dm", "dn", "dk", "axi_bits"):
            if p[name] < 1:
                raise CostModelError(f"{self.name}: {name} must be >= 1, got {p[name]}")
        if p["read_bits_per_cycle"] is not None and p["read_bits_per_cycle"] < 1:
            raise CostModelError(f"{self.name}: read_bits_per_cycle must be >= 1")
        if p["clock_mhz"] <= 0 or (p["power_w"] is not None and p["power_w"] <= 0):
            raise CostModelError(f"{self.name}: clock_mhz and power_w must be > 0")

    def read_width(self) -> int:
        p = self.params
        if p["read_bits_per_cycle"] is not None:
            return p["read_bits_per_cycle"]
        return HAQ_BANDWIDTH if p["mode"] == "haq" else p["axi_bits"]

    def source(self) -> dict:
        src = super().source()
        if self.params["power_w"] is not None:
            src["energy_fidelity"] = "low: board power x latency, no per-access model"
        return src

    def build(self, specs: Sequence[LayerSpec]) -> CostTable:
        p = self.params
        units = {m: METRIC_UNITS[m] for m in ("cycles", "latency", "dram")}
        if p["power_w"] is not None:
            units["energy"] = METRIC_UNITS["energy"]
        layers = []
        for spec in specs:
            res = layer_cycles(geometry(spec, p["batch"]), mode=p["mode"], dm=p["dm"],
                               dn=p["dn"], dk=p["dk"], read=self.read_width(),
                               write=p["axi_bits"], refetch=p["refetch"])
            grid = {m: np.full((GRID_SIZE, GRID_SIZE), np.nan) for m in units}
            grid["cycles"][:MAX_BITS, :MAX_BITS] = res["cycles"]
            grid["dram"][:MAX_BITS, :MAX_BITS] = res["dram"]
            grid["latency"] = grid["cycles"] / (p["clock_mhz"] * 1e3)
            if "energy" in grid:  # W * ms = mJ -> nJ
                grid["energy"] = p["power_w"] * grid["latency"] * 1e6
            layers.append(grid)
        return stack_layers([s.name for s in specs], layers, units, self.source())
