"""The uniform quantization grid shared by weights and activations, and its straight-through form.

A ``b``-bit grid with clip ``c`` is:

* unsigned: ``{0, s, 2s, ..., n*s}`` with ``n = 2^b - 1`` and ``s = c / n``;
* signed, ``b >= 2``: ``{-n*s, ..., 0, ..., n*s}`` with ``n = 2^(b-1) - 1`` (symmetric, so the
  code ``-2^(b-1)`` is unused; 2^b - 1 levels, as in the official HAQ code);
* signed, ``b = 1``: the binary grid ``{-c, +c}`` (``n = 0`` marks it).

Every grid has at most 2^b levels. Because the signed grids are symmetric, the error of
quantizing ``x`` depends only on ``|x|``; clip searches therefore work on magnitudes.
"""

from __future__ import annotations

import torch


def grid_max(bits: int, signed: bool) -> int:
    """Largest integer code ``n`` of the grid; 0 marks the binary grid {-c, +c}."""
    return (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1


def fake_quant(x: torch.Tensor, clip: torch.Tensor | float, bits: int,
               signed: bool) -> torch.Tensor:
    """Quantize-dequantize ``x`` on the grid above. ``clip`` broadcasts against ``x``."""
    n = grid_max(bits, signed)
    if n == 0:
        return torch.where(x >= 0, clip, -clip)
    inv_scale = n / clip
    low = -n if signed else 0
    # Multiply by the inverse scale, as torch.fake_quantize_* does, so both paths round alike.
    return torch.clamp(torch.round(x * inv_scale), low, n) / inv_scale


def magnitude_quant(m: torch.Tensor, clip: torch.Tensor | float, bits: int,
                    signed: bool) -> torch.Tensor:
    """Quantized value of magnitudes ``m >= 0``: what ``|fake_quant(x)|`` is for ``|x| = m``."""
    n = grid_max(bits, signed)
    if n == 0:
        return torch.zeros_like(m) + clip
    inv_scale = n / clip
    return torch.clamp(torch.round(m * inv_scale), 0, n) / inv_scale


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
    return torch.mul(x, n / clip).round_().clamp_(-n if signed else 0, n)


def sqnr_db(reference: torch.Tensor, approx: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB: 10 log10(sum ref^2 / sum (ref - approx)^2)."""
    reference, approx = reference.detach().double(), approx.detach().double()
    noise = (reference - approx).pow(2).sum()
    signal = reference.pow(2).sum()
    if noise == 0:
        return float("inf")
    return float(10 * torch.log10(signal / noise))
