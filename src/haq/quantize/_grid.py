"""The uniform quantization grid shared by weights and activations, and its straight-through form.

A ``b``-bit grid with clip ``c`` is:

* unsigned: ``{0, s, 2s, ..., n*s}`` with ``n = 2^b - 1`` and ``s = c / n``;
* signed, ``b >= 2``: ``{-n*s, ..., 0, ..., n*s}`` with ``n = 2^(b-1) - 1`` (symmetric, so the
  code ``-2^(b-1)`` is unused; 2^b - 1 levels, as in the official HAQ code);
* signed, ``b = 1``: the binary grid ``{-c, +c}`` (``n = 0`` marks it).

Every grid has at most 2^b levels. Because the signed grids are symmetric, the error of
quantizing ``x`` depends only on ``|x|``; clip searches therefore work on magnitudes.

Quantizing divides by the step ``s`` and rounds half to even, ``round(x / s)``, exactly as ONNX
``QuantizeLinear`` and QONNX ``Quant`` do (multiplying by ``1 / s`` instead differs from it in
about one value in four at a boundary-sized ulp), so an exported graph computes the same codes.
The step of a float clip is ``clip / n`` rounded once to float32, which is also what torch
computes for a float32 clip tensor (rounding the double quotient to float32 is exact for a
division, since 53 >= 2 * 24 + 2 bits).
"""

from __future__ import annotations

import numpy as np
import torch


def grid_max(bits: int, signed: bool) -> int:
    """Largest integer code ``n`` of the grid; 0 marks the binary grid {-c, +c}."""
    return (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1


def grid_step(clip: float, bits: int, signed: bool) -> float:
    """The float32 step ``clip / n`` of a float clip (``clip`` itself on the binary grid)."""
    n = grid_max(bits, signed)
    return to_float32(clip / n if n else clip)


def to_float32(value: float) -> float:
    """``value`` rounded to the nearest float32 (what a float32 op does with a Python float)."""
    return float(np.float32(value))


# Shared weights (k-means centroids) are computed on a grid of integers up to this magnitude
# (12-bit signed) times a power-of-two step: fine enough to leave a codebook of at most 256
# values as it is to within 1/4094 of its range, coarse enough that integer products with 8-bit
# input codes and their sums stay exact in float32 (below 2^24) in practice.
SHARED_LEVELS = 2047


def dyadic_step(max_abs: torch.Tensor, levels: int = SHARED_LEVELS) -> torch.Tensor:
    """The smallest power of two ``s`` with ``max_abs / s <= levels`` (1 for ``max_abs = 0``).

    A power of two, so ``values / s`` and ``codes * s`` are exact: a codebook snapped to this
    grid keeps its step when the step is recomputed from the snapped values.
    """
    safe = torch.where(max_abs > 0, max_abs, torch.ones_like(max_abs))
    exponent = torch.ceil(torch.log2(safe.double() / levels))
    return torch.where(max_abs > 0, torch.exp2(exponent), torch.ones_like(exponent)).to(
        max_abs.dtype)


def fake_quant(x: torch.Tensor, clip: torch.Tensor | float, bits: int,
               signed: bool) -> torch.Tensor:
    """Quantize-dequantize ``x`` on the grid above. ``clip`` broadcasts against ``x``."""
    n = grid_max(bits, signed)
    if n == 0:
        return torch.where(x >= 0, clip, -clip)
    step = clip / n
    low = -n if signed else 0
    return torch.clamp(torch.round(x / step), low, n) * step


def magnitude_quant(m: torch.Tensor, clip: torch.Tensor | float, bits: int,
                    signed: bool) -> torch.Tensor:
    """Quantized value of magnitudes ``m >= 0``: what ``|fake_quant(x)|`` is for ``|x| = m``."""
    n = grid_max(bits, signed)
    if n == 0:
        return torch.zeros_like(m) + clip
    step = clip / n
    return torch.clamp(torch.round(m / step), 0, n) * step


def fake_quant_ste(x: torch.Tensor, clip: torch.Tensor, bits: int,
                   signed: bool) -> torch.Tensor:
    """``fake_quant`` with a clipped straight-through gradient.

    ``d out / d x`` is 1 inside the clip range and 0 outside; when ``clip`` requires grad it
    receives PACT's gradient (1 where ``x >= clip``, -1 where ``x <= -clip`` on a signed grid),
    because the clamp is written with tensor bounds and only the rounding residual is detached.
    """
    low = -clip if signed else torch.zeros_like(clip)
    # torch.clamp, unlike minimum/maximum, gives a value on the bound its full gradient.
    clamped = torch.clamp(x, low, clip)
    return clamped + (fake_quant(clamped.detach(), clip.detach(), bits, signed)
                      - clamped.detach())


def quant_codes(x: torch.Tensor, clip: float, bits: int, signed: bool) -> torch.Tensor:
    """Integer grid codes of ``x`` as a float tensor (``fake_quant(x) = codes * clip / n``).

    The fast no-grad path: one allocation and two in-place passes. ``torch.fake_quantize_*``
    is a fused op, but its CPU kernel is scalar and measured ~100x slower than this on
    MobileNet-sized activations. The binary grid returns codes -1 / +1 (scale = clip).
    """
    n = grid_max(bits, signed)
    if n == 0:
        return (x >= 0).to(x.dtype).mul_(2).sub_(1)
    return torch.div(x, grid_step(clip, bits, signed)).round_().clamp_(-n if signed else 0, n)


def integer_ste(t: torch.Tensor) -> torch.Tensor:
    """``round(t)`` for a ``t`` within float error of integers, with the identity gradient.

    The value is exactly the integer: ``t + (round(t) - t)`` rounds to ``round(t)`` because the
    difference of two floats this close is exact (Sterbenz), so integer arithmetic downstream
    sees the same codes as the no-grad path.
    """
    return t + (torch.round(t) - t).detach()


def sqnr_db(reference: torch.Tensor, approx: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB: 10 log10(sum ref^2 / sum (ref - approx)^2)."""
    reference, approx = reference.detach().double(), approx.detach().double()
    noise = (reference - approx).pow(2).sum()
    signal = reference.pow(2).sum()
    if noise == 0:
        return float("inf")
    return float(10 * torch.log10(signal / noise))
