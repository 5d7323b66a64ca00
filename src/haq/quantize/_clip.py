"""Choosing the clip (the largest representable magnitude) of a grid: max, percentile, MSE, KL.

Everything works on magnitudes: the signed grids are symmetric, so |x| decides the error. Weight
clips are computed row by row (one row per output channel, or one row for the whole tensor);
activation clips reuse the same MSE and KL searches on the calibration histogram.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from haq.quantize._grid import grid_max, magnitude_quant

MSE_COARSE = 40  # candidate clips as fractions of the max, then a finer pass around the best
MSE_FINE = 21
MSE_CHUNK = 1 << 22  # elements per vectorised batch of candidate clips
KL_MAX_CANDIDATES = 256
KL_SMOOTHING = 1e-4  # TensorRT-style: mass given to empty bins of the quantized histogram


def effective_method(method: str, bits: int, signed: bool, kl_below_bits: int | None) -> str:
    """The clip rule actually used at ``bits``.

    The binary grid {-c, +c} always takes ``c = mean |x|``, its squared-error optimum (max or a
    percentile would put both levels at the extremes). ``"kl"`` turns into ``"max"`` at and above
    ``kl_below_bits``, as in the official code (KL below 5 bits, max|x| otherwise).
    """
    if grid_max(bits, signed) == 0:
        return "mean"
    if method == "kl" and kl_below_bits is not None and bits >= kl_below_bits:
        return "max"
    return method


def search_clip(amax: torch.Tensor, errors: Callable[[torch.Tensor], torch.Tensor],
                dtype: torch.dtype, per_candidate: int = 1) -> torch.Tensor:
    """Per row, the clip in (0, amax] that ``errors`` scores least.

    ``errors(fractions)`` maps candidate fractions [rows, k] of ``amax`` to errors [rows, k].
    A coarse grid of ``MSE_COARSE`` fractions is followed by ``MSE_FINE`` points spanning one
    coarse step either side of the best, so the result is within amax/800 of the grid optimum.
    Candidates are scored together in chunks of about ``MSE_CHUNK`` elements (``per_candidate``
    elements each): a few large kernels instead of one small kernel per candidate.
    """
    amax = amax.clamp_min(torch.finfo(dtype).tiny)
    rows = amax.shape[0]
    per_chunk = max(1, MSE_CHUNK // max(per_candidate, 1))

    def scored(fractions: torch.Tensor) -> torch.Tensor:
        return torch.cat([errors(part) for part in fractions.split(per_chunk, dim=1)], dim=1)

    step = 1.0 / MSE_COARSE
    coarse = torch.linspace(step, 1.0, MSE_COARSE, device=amax.device, dtype=dtype)
    coarse = coarse.expand(rows, -1)
    best = coarse.gather(1, scored(coarse).argmin(1, keepdim=True))
    offsets = torch.linspace(-step, step, MSE_FINE, device=amax.device, dtype=dtype)
    fine = (best + offsets).clamp(step / MSE_FINE, 1.0)
    return fine.gather(1, scored(fine).argmin(1, keepdim=True)).squeeze(1) * amax


def mse_clip(m: torch.Tensor, amax: torch.Tensor, bits: int, signed: bool,
             weights: torch.Tensor | None = None) -> torch.Tensor:
    """Per row of magnitudes ``m`` [rows, n], the clip in (0, amax] with least squared error.

    ``weights`` [n] weights each column (histogram counts); ``None`` = all 1.
    """
    safe = amax.clamp_min(torch.finfo(m.dtype).tiny)

    def errors(fractions: torch.Tensor) -> torch.Tensor:
        clip = (fractions * safe.unsqueeze(1)).unsqueeze(2)  # [rows, k, 1]
        values = m.unsqueeze(1)  # [rows, 1, n]
        sq = (magnitude_quant(values, clip, bits, signed) - values).pow_(2)
        return (sq if weights is None else sq * weights).sum(2)

    return search_clip(amax, errors, m.dtype, m.numel())


def kl_threshold_bins(hist: np.ndarray, levels: int) -> int:
    """How many leading bins of a magnitude histogram to keep so that KL(P || Q) is least.

    TensorRT-style entropy calibration: for a candidate threshold of ``i`` bins, P is the first
    ``i`` bins with the mass above them added to the last one, and Q merges those ``i`` bins
    into ``levels`` groups and spreads each group's mass evenly over its non-empty bins.
    Returns the number of bins up to the last non-empty one when that is no more than
    ``levels`` (nothing worth clipping).
    """
    nonzero = np.flatnonzero(hist > 0)
    if nonzero.size == 0:
        return len(hist)
    last = int(nonzero[-1]) + 1
    if last <= levels:
        return last
    count = min(KL_MAX_CANDIDATES, last - levels + 1)
    candidates = np.unique(np.linspace(levels, last, count).round().astype(np.int64))
    divergences = [_kl_at(hist, int(i), levels) for i in candidates]
    return int(candidates[int(np.argmin(divergences))])


def _kl_at(hist: np.ndarray, i: int, levels: int) -> float:
    kept = hist[:i]
    p = kept.copy()
    p[-1] += hist[i:].sum()
    group = (np.arange(i) * levels) // i
    occupied = kept > 0
    mass = np.bincount(group, weights=kept, minlength=levels)
    filled = np.bincount(group, weights=occupied.astype(np.float64), minlength=levels)
    per_bin = np.divide(mass, filled, out=np.zeros_like(mass), where=filled > 0)
    q = np.where(occupied, per_bin[group], 0.0)
    p = p / p.sum()
    q = np.maximum(q / max(q.sum(), 1e-300), KL_SMOOTHING / i)
    support = p > 0
    return float(np.sum(p[support] * np.log(p[support] / q[support])))


def percentile_rows(m: torch.Tensor, percentile: float) -> torch.Tensor:
    """Per row of ``m`` [rows, n], the ``percentile``-th value (the k-th smallest, k = ceil)."""
    n = m.shape[1]
    k = min(n, max(1, math.ceil(percentile / 100.0 * n)))
    return m.kthvalue(k, dim=1).values


def weight_clip(weight: torch.Tensor, bits: int, method: str, per_channel: bool,
                percentile: float, kl_below_bits: int | None) -> torch.Tensor:
    """Clip of a symmetric ``bits``-bit weight grid: shape [out_channels] or [1], float32.

    A row whose weights are all zero gets clip 1 (any positive clip represents it exactly).
    """
    rows = weight.shape[0] if per_channel else 1
    m = weight.detach().float().abs().reshape(rows, -1)
    amax = m.amax(1)
    rule = effective_method(method, bits, True, kl_below_bits)
    if rule == "max":
        clip = amax
    elif rule == "mean":
        clip = m.mean(1)
    elif rule == "percentile":
        clip = percentile_rows(m, percentile)
    elif rule == "mse":
        clip = mse_clip(m, amax, bits, True)
    else:
        clip = _weight_kl_clip(m, amax, bits)
    return torch.where(amax > 0, clip, torch.ones_like(clip))


def _weight_kl_clip(m: torch.Tensor, amax: torch.Tensor, bits: int) -> torch.Tensor:
    """KL clip as one fraction of each row's max, from the pooled histogram of |w| / row max.

    A depthwise channel has 9 weights, too few for a histogram of its own; pooling the
    normalised magnitudes gives one well-populated histogram (bins = sqrt(count), as the
    official code's ``bins='sqrt'``, kept within 64..2048).
    """
    safe = amax.clamp_min(torch.finfo(m.dtype).tiny).unsqueeze(1)
    normalised = (m / safe)[m > 0]
    bins = int(min(2048, max(64, math.isqrt(max(normalised.numel(), 1)))))
    hist = torch.histc(normalised, bins=bins, min=0.0, max=1.0).double().cpu().numpy()
    kept = kl_threshold_bins(hist, grid_max(bits, True) + 1)
    return amax * (kept / bins)
