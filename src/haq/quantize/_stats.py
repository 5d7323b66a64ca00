"""Calibration statistics of one layer's input, collected once and good for any bit width.

``ActStats`` keeps the exact min and max, the number of exact zeros, and two histograms on a
shared range [0, R]: one of the positive values and one of |x| for the negative values. When a
batch exceeds R, R doubles and adjacent bins merge pairwise, which is exact because the old bin
edges are a subset of the new ones. With ``BINS`` bins, at least half of them cover the data.
From these, the max, percentile, MSE and KL clips of every bit width and either grid (signed or
unsigned) are computed without running data again.
"""

from __future__ import annotations

import math

import torch

from haq.errors import DatasetError
from haq.quantize._clip import effective_method, kl_threshold_bins, mse_clip
from haq.quantize._grid import grid_max

BINS = 2048
SUBPOINTS = 4  # evaluation points per bin for the MSE search (mass spread evenly in the bin)


class ActStats:
    """Streaming statistics of a tensor's values (see module docstring)."""

    def __init__(self) -> None:
        self.count = 0
        self.zeros = 0
        self.min = float("inf")
        self.max = float("-inf")
        self.range = 0.0
        self.positive = torch.zeros(BINS, dtype=torch.float64)
        self.negative = torch.zeros(BINS, dtype=torch.float64)

    @property
    def has_negative(self) -> bool:
        return self.min < 0

    def update(self, x: torch.Tensor, where: str = "input") -> None:
        """Add the values of ``x`` (any shape) to the statistics."""
        flat = x.detach().reshape(-1)
        if flat.numel() == 0:
            return
        low, high = (float(v) for v in torch.aminmax(flat))
        if not (math.isfinite(low) and math.isfinite(high)):
            raise DatasetError(f"calibration saw a non-finite value in the {where} "
                               f"(min {low}, max {high}); check the data and the float model")
        zeros = int((flat == 0).sum())
        self.count += flat.numel()
        self.zeros += zeros
        self.min, self.max = min(self.min, low), max(self.max, high)
        self._grow(max(-low, high))
        if self.range == 0:
            return
        # histc ignores values outside [min, max], so one call per sign needs no masking; the
        # exact zeros land in the bin touching 0 and are taken out again.
        if high > 0:
            positive = torch.histc(flat.float(), BINS, 0.0, self.range).double().cpu()
            positive[0] -= zeros
            self.positive += positive
        if low < 0:
            negative = torch.histc(flat.float(), BINS, -self.range, 0.0).double().cpu().flip(0)
            negative[0] -= zeros
            self.negative += negative

    def _grow(self, amax: float) -> None:
        if amax <= 0:
            return
        if self.range == 0:
            self.range = amax
            return
        while self.range < amax:
            self.positive = _merge_pairs(self.positive)
            self.negative = _merge_pairs(self.negative)
            self.range *= 2

    # -- derived distributions -------------------------------------------------------------
    def magnitude_hist(self, signed: bool) -> torch.Tensor:
        """Histogram of the magnitudes a grid sees (zeros excluded).

        Signed grids see |x|; an unsigned grid clamps negatives to 0, so only the positive
        values decide its clip.
        """
        return self.positive + self.negative if signed else self.positive.clone()

    def magnitude_max(self, signed: bool) -> float:
        return max(-self.min, self.max) if signed else max(self.max, 0.0)

    def clip(self, method: str, bits: int, signed: bool, percentile: float = 99.99,
             kl_below_bits: int | None = None) -> float:
        """Clip of a ``bits``-bit grid (signed or unsigned) by ``method``; always > 0."""
        if self.count == 0:
            raise DatasetError("no calibration data was recorded for this layer")
        amax = self.magnitude_max(signed)
        if amax <= 0:
            return 1.0  # all values are <= 0 on an unsigned grid: 0 is exact for any clip
        hist = self.magnitude_hist(signed)
        rule = effective_method(method, bits, signed, kl_below_bits)
        if rule == "max":
            value = amax
        elif rule == "mean":
            value = self._mean_magnitude(hist)
        elif rule == "percentile":
            value = self._percentile(hist, signed, percentile)
        elif rule == "mse":
            value = self._mse(hist, amax, bits, signed)
        else:
            kept = kl_threshold_bins(hist.numpy(), grid_max(bits, signed) + 1)
            value = kept * self.range / BINS
        return float(min(max(value, 0.0), amax)) if value > 0 else amax

    def _points(self, hist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Evaluation points and their weights: SUBPOINTS per bin, plus the exact zeros."""
        width = self.range / BINS
        offsets = (torch.arange(SUBPOINTS, dtype=torch.float64) + 0.5) / SUBPOINTS
        centres = (torch.arange(BINS, dtype=torch.float64).unsqueeze(1) + offsets) * width
        weights = (hist / SUBPOINTS).unsqueeze(1).expand(-1, SUBPOINTS)
        points = torch.cat([centres.reshape(-1), torch.zeros(1, dtype=torch.float64)])
        weights = torch.cat([weights.reshape(-1), torch.tensor([float(self.zeros)])])
        keep = weights > 0
        return points[keep], weights[keep]

    def _mean_magnitude(self, hist: torch.Tensor) -> float:
        points, weights = self._points(hist)
        return float((points * weights).sum() / weights.sum())

    def _percentile(self, hist: torch.Tensor, signed: bool, percentile: float) -> float:
        # Values the grid maps to 0 (zeros, and negatives on an unsigned grid) sit below bin 0.
        below = self.zeros + (0 if signed else float(self.negative.sum()))
        target = percentile / 100.0 * (below + float(hist.sum()))
        if target <= below:
            return 0.0
        cumulative = below + torch.cumsum(hist, 0)
        index = int(torch.searchsorted(cumulative, torch.tensor([target], dtype=torch.float64)))
        index = min(index, BINS - 1)
        before = below if index == 0 else float(cumulative[index - 1])
        inside = float(hist[index])
        fraction = (target - before) / inside if inside > 0 else 1.0
        return (index + fraction) * self.range / BINS

    def _mse(self, hist: torch.Tensor, amax: float, bits: int, signed: bool) -> float:
        points, weights = self._points(hist)
        m = points.unsqueeze(0)
        clip = mse_clip(m, torch.tensor([amax], dtype=torch.float64), bits, signed, weights)
        return float(clip[0])


def _merge_pairs(hist: torch.Tensor) -> torch.Tensor:
    merged = hist.reshape(-1, 2).sum(1)
    return torch.cat([merged, torch.zeros_like(merged)])
