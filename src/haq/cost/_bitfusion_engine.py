"""BitFusion's tiling search, vectorised over every tiling and every loop order at once.

This re-implements the algorithm of the BitFusion simulator (Sharma et al., ISCA 2018; repo
hsharma35/bitfusion) from its description in the project's reference notes, not from its code.
It reproduces the original's numbers exactly on 240 golden records and 305 published sweep rows
(tests/cost/test_bitfusion_golden.py, test_bitfusion_sweep.py).

One layer is a convolution over a ``B x OH x OW`` output, ``IC -> OC`` channels, kernel
``KH x KW``. Five tile loops (batch, output columns, output rows, input channels, output
channels) are tiled by power-of-two sizes and tried in all 120 nestings; the tiling and
nesting with the fewest cycles wins, ties going to the least energy.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from haq.errors import CostModelError

# Loop order rows, outermost loop first. Loops: 0 batch, 1 out-cols, 2 out-rows, 3 ic, 4 oc.
_ORDERS = np.array(list(itertools.permutations(range(5))), dtype=np.int64)
# Which operand each loop indexes: columns are weights, activations, outputs. A loop that does
# not index an operand reuses its resident block for free.
_INDEXES = np.array([[0, 1, 1], [0, 1, 1], [0, 1, 1], [1, 1, 0], [1, 0, 1]], dtype=bool)
PSUM_BITS = 32  # partial sums are 32 bits in SRAM and DRAM, whatever the operand precision


@dataclass(frozen=True)
class EnergyTable:
    """Energy per event in pJ. SRAM entries are per 32-bit word access (divide by 32 per bit).

    The defaults are BitFusion's 45 nm ``bf_e`` numbers: CACTI banks per consumer and a
    synthesized 4x4 fusion-unit tile (7.347 pJ per cycle per 16 units, scaled with N*M). The
    golden records fix the OBUF read + write sum (3.39966 pJ) but not its split; the split
    follows the rounded per-bit figures printed by the simulator (0.03316 / 0.07308 pJ/bit).
    """

    core_per_16_units: float = 7.347
    wbuf_read: float = 0.683701
    wbuf_write: float = 0.925317
    ibuf_read: float = 1.90318
    ibuf_write: float = 3.63853
    obuf_read: float = 1.06112
    obuf_write: float = 2.33854
    dram_per_bit: float = 15.0


@dataclass(frozen=True)
class BitFusionConfig:
    """One BitFusion accelerator: fusion-unit array, buffers, DRAM interface, clock, energy.

    Attributes:
        rows: N, reduction lanes over input channels.
        cols: M, output-channel columns.
        pmax: widest operand a fusion unit takes in one pass (bits).
        pmin: narrowest BitBrick precision; narrower operands run at this width.
        wbuf_bytes / ibuf_bytes / obuf_bytes: weight, input and output buffer capacity.
        dram_bits_per_cycle: DRAM interface width.
        clock_mhz: core clock, used only to turn cycles into ms.
        energy: per-event energies.
    """

    rows: int = 16
    cols: int = 32
    pmax: int = 8
    pmin: int = 2
    wbuf_bytes: int = 64 * 1024
    ibuf_bytes: int = 32 * 1024
    obuf_bytes: int = 16 * 1024
    dram_bits_per_cycle: int = 192
    clock_mhz: float = 500.0
    energy: EnergyTable = EnergyTable()

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "pmax", "pmin", "wbuf_bytes", "ibuf_bytes", "obuf_bytes",
                     "dram_bits_per_cycle"):
            if int(getattr(self, name)) < 1:
                raise CostModelError(f"BitFusion {name} must be a positive integer")
        if self.clock_mhz <= 0:
            raise CostModelError("BitFusion clock_mhz must be > 0")

    def fusion(self, a_bits: int, w_bits: int) -> int:
        """How many MACs one fusion unit does per cycle: precision snaps to pmin, 2*pmin, .."""
        for bits, name in ((a_bits, "a_bits"), (w_bits, "w_bits")):
            if not 1 <= bits <= self.pmax:
                raise CostModelError(f"BitFusion takes {name} 1-{self.pmax}; got {bits}. Wider "
                                     "operands (and float) have no fusion-unit mode")
        return (self.pmax // max(a_bits, self.pmin)) * (self.pmax // max(w_bits, self.pmin))


@dataclass(frozen=True)
class ConvShape:
    """One (ungrouped) convolution: kernel, output size, stride as (rows, cols), channels."""

    kh: int
    kw: int
    oh: int
    ow: int
    sh: int
    sw: int
    ic: int
    oc: int


def _cdiv(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    return -(-np.asarray(a) // b)


def _tile_sizes(dim: int, step: int = 1) -> list[int]:
    """Power-of-two multiples of ``step``, the last one clipped to ``dim``."""
    count = math.ceil(math.log2(math.ceil(dim / step))) + 1
    return [min(step << k, dim) for k in range(count)]


def _tilings(shape: ConvShape, batch: int, im2col: bool, cols: int) -> np.ndarray:
    """Every candidate tiling as rows (b, o_rows, o_cols, ic, oc)."""
    spatial = _tile_sizes(max(shape.oh, shape.ow))
    # the host-im2col layer tiles output channels by plain powers of two, the rest by M * 2^k
    ocs = _tile_sizes(shape.oc) if im2col else _tile_sizes(shape.oc, cols)
    grid = np.array(list(itertools.product(_tile_sizes(batch), spatial, _tile_sizes(shape.ic),
                                           ocs)), dtype=np.int64)
    b, o, ic, oc = grid.T
    return np.stack([b, np.minimum(o, shape.oh), np.minimum(o, shape.ow), ic, oc], axis=1)


def _promote(footprint: np.ndarray, trips: np.ndarray, operand: int, half: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """DRAM traffic and largest resident block of one operand, for every (order, tiling).

    Walking loops inside out, a loop that indexes the operand grows its resident block while
    the block still fits in half the buffer; a loop that does not index it reuses the block.
    From the first loop where the block no longer fits, every outer loop refetches it.
    """
    size = np.broadcast_to(footprint, (len(_ORDERS), footprint.size)).copy()
    largest = size.copy()
    resident = np.ones_like(size, dtype=bool)
    for depth in range(4, -1, -1):
        loop = _ORDERS[:, depth]
        indexes = _INDEXES[loop, operand][:, None]
        size = np.where(indexes | ~resident, size * trips[loop], size)
        grows = resident & indexes
        fits = size <= half
        largest = np.where(grows & fits, size, largest)
        resident &= ~(grows & ~fits)
    return size, largest


def search(shape: ConvShape, a_bits: int, w_bits: int, batch: int, im2col: bool,
           cfg: BitFusionConfig) -> dict[str, Any]:
    """Best tiling of one layer: cycles, stalls, energy (nJ) and buffer/DRAM traffic (bits)."""
    n, m = cfg.rows, cfg.cols
    pf = cfg.fusion(a_bits, w_bits)
    lanes = n * pf
    t = _tilings(shape, batch, im2col, m)
    b, th, tw, ic, oc = t.T
    taps = shape.kh * shape.kw
    in_h = (th - 1) * shape.sh + shape.kh
    in_w = (tw - 1) * shape.sw + shape.kw
    w_fp = _cdiv(taps * ic, lanes) * lanes * oc * w_bits
    a_fp = (th * tw * taps if im2col else in_h * in_w) * ic * b * a_bits
    o_fp = th * tw * _cdiv(oc, m) * m * b * PSUM_BITS
    halves = (cfg.wbuf_bytes * 4, cfg.ibuf_bytes * 4, cfg.obuf_bytes * 4)  # bits in half a buffer
    keep = (w_fp <= halves[0]) & (a_fp <= halves[1]) & (o_fp <= halves[2])
    if not keep.any():
        raise CostModelError(
            f"no BitFusion tiling of layer {shape} at w{w_bits}a{a_bits} fits half of the "
            "buffers; enlarge wbuf/ibuf/obuf or split the layer")
    b, th, tw, ic, oc = t[keep].T
    w_fp, a_fp, o_fp = w_fp[keep], a_fp[keep], o_fp[keep]
    trips = np.stack([_cdiv(batch, b), _cdiv(shape.ow, tw), _cdiv(shape.oh, th),
                      _cdiv(shape.ic, ic), _cdiv(shape.oc, oc)])
    tiles = trips.prod(axis=0)
    if im2col:
        per_tile = b * th * tw * _cdiv(oc, m) * _cdiv(taps * ic, lanes)
    else:
        per_tile = b * _cdiv(oc, m) * th * tw * taps * _cdiv(ic, lanes)
    compute = per_tile * tiles

    w_dram, w_top = _promote(w_fp, trips, 0, halves[0])
    a_dram, a_top = _promote(a_fp, trips, 1, halves[1])
    o_dram, o_top = _promote(o_fp, trips, 2, halves[2])  # partial-sum fills == drains
    dram_reads = w_dram + a_dram + o_dram
    dram_writes = o_dram
    width = cfg.dram_bits_per_cycle
    # the first blocks load before compute starts and the last outputs drain after it ends
    prologue = w_top + a_top + o_top
    edges = _cdiv(prologue, width) + _cdiv(o_top, width)
    middle = dram_reads + dram_writes - prologue - o_top
    stalls = np.maximum(0, _cdiv(middle, width) - compute) + edges
    cycles = compute + stalls

    # Output-stationary buffer traffic per tile: each output's 32-bit partial sum is touched
    # once, activations and weights are streamed per MAC. The original picks the cheapest of
    # input-, output- and weight-stationary per tile; with 32-bit partial sums that is always
    # output-stationary (docs/cost-models.md), as in all 545 reference records.
    macs = b * th * tw * taps * ic * oc
    act_reads = macs * a_bits * tiles
    wgt_reads = macs * w_bits * tiles
    psum = b * th * tw * oc * PSUM_BITS * tiles
    e = cfg.energy
    sram_pj = (e.wbuf_read * wgt_reads + e.ibuf_read * act_reads
               + (e.obuf_read + e.obuf_write) * (psum + o_dram)
               + e.wbuf_write * w_dram + e.ibuf_write * a_dram) / 32.0
    core_pj = e.core_per_16_units * (n * m / 16.0) * compute
    energy_nj = (core_pj + sram_pj + e.dram_per_bit * (dram_reads + dram_writes)) / 1000.0

    best = cycles.min()
    rows, cols = np.nonzero(cycles == best)
    k = int(np.argmin(energy_nj[rows, cols]))
    o, i = rows[k], cols[k]
    return {
        "cycles": int(cycles[o, i]),
        "mem_stall_cycles": int(stalls[o, i]),
        "energy_nJ": float(energy_nj[o, i]),
        "reads": {"act": int(act_reads[i]), "wgt": int(wgt_reads[i]),
                  "out": int(psum[i] + o_dram[o, i]), "dram": int(dram_reads[o, i])},
        "writes": {"act": int(a_dram[o, i]), "wgt": int(w_dram[o, i]),
                   "out": int(psum[i] + o_dram[o, i]), "dram": int(dram_writes[o, i])},
    }
