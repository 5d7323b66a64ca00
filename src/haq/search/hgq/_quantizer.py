"""HGQ's fixed-point quantizer: trainable fractional bits with a surrogate gradient.

A value is stored as ``fixed<k, i, f>``: k sign bits (0 or 1), i integer bits, f fractional bits,
step ``2^-f``. Only f is trained. The forward pass rounds f to an integer and quantizes
``x_q = floor(x * 2^f + 1/2) * 2^-f``; the backward pass treats the quantization error
``delta = x_q - x`` as scaling like ``2^-f`` and so defines ``d x_q / d f = -ln 2 * delta``
(elementwise, signed error), while ``d x_q / d x = 1`` (straight-through).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import nn

from haq.errors import ConfigError

Granularity = Literal["layer", "channel", "element"]
GRANULARITIES: tuple[str, ...] = ("layer", "channel", "element")
F_LIMIT = 23.0  # |f| beyond this is meaningless in float32 (HGQ clips to the same range)
LN2 = math.log(2.0)


class _FixedRound(torch.autograd.Function):
    """x_q = floor(x 2^f + 1/2) 2^-f with the HGQ surrogate gradient on f."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        scale = torch.exp2(f)
        xq = torch.floor(x * scale + 0.5) / scale
        ctx.save_for_backward(x, xq)
        ctx.f_shape = f.shape
        return xq

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, xq = ctx.saved_tensors
        grad_f = grad * (-LN2) * (xq - x)
        return grad, _sum_to(grad_f, ctx.f_shape)


def _sum_to(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Undo broadcasting: sum ``t`` down to ``shape``."""
    if t.shape == shape:
        return t
    lead = t.dim() - len(shape)
    t = t.sum(dim=tuple(range(lead))) if lead > 0 else t
    dims = tuple(i for i, n in enumerate(shape) if n == 1 and t.shape[i] != 1)
    return t.sum(dim=dims, keepdim=True) if dims else t


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer; the gradient passes through unchanged."""
    return x + (torch.round(x) - x).detach()


def fixed_quantize(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Quantize ``x`` on the grid ``2^-round(f)`` with HGQ's gradients.

    Args:
        x: values to quantize.
        f: fractional bits, real-valued, broadcastable to ``x``.

    Returns:
        ``x_q``, with ``d x_q / d x = 1`` and ``d x_q / d f = -ln2 * (x_q - x)`` (summed over
        the elements that share each f).
    """
    return _FixedRound.apply(x, round_ste(f.clamp(-F_LIMIT, F_LIMIT)))


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient by ``scale``."""
    return _ScaleGrad.apply(x, scale)


def f_shape(shape: torch.Size | tuple[int, ...], granularity: str, channel_dim: int) -> tuple:
    """Shape of the f tensor that one tensor of ``shape`` shares at ``granularity``.

    ``channel_dim`` is the axis that "channel" keeps (0 for weights = output channels, 0 for a
    per-sample activation map = input channels).
    """
    if granularity not in GRANULARITIES:
        raise ConfigError(f"granularity {granularity!r} is not supported; choose one of "
                          f"{', '.join(GRANULARITIES)}")
    if granularity == "element":
        return tuple(shape)
    if granularity == "layer":
        return (1,) * len(shape)
    out = [1] * len(shape)
    out[channel_dim] = shape[channel_dim]
    return tuple(out)


class FixedPointQuantizer(nn.Module):
    """Quantizer of one tensor (a weight, or a layer's input per sample) with trainable f.

    Args:
        shape: shape of the quantized tensor; for activations, the per-sample shape.
        granularity: which values share one f: "layer" (all), "channel" (per ``channel_dim``),
            "element" (each value its own).
        init_f: starting fractional bits (a float or a tensor broadcastable to f's shape).
        channel_dim: the axis kept by "channel".

    Attributes:
        f: fractional bits, an ``nn.Parameter`` of shape ``f_shape(shape, granularity)``.
        share: how many values share each f; the cost gradient is scaled by ``1/sqrt(share)``
            so coarse and fine granularities train at comparable speeds (as HGQ does).
    """

    def __init__(self, shape: tuple[int, ...], granularity: str = "layer",
                 init_f: float | torch.Tensor = 4.0, channel_dim: int = 0) -> None:
        super().__init__()
        fs = f_shape(shape, granularity, channel_dim)
        self.granularity = granularity
        init = torch.as_tensor(init_f, dtype=torch.float32)
        self.f = nn.Parameter(torch.broadcast_to(init, fs).clone())
        self.share = max(1, math.prod(shape) // max(1, math.prod(fs)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fixed_quantize(x, self.f)

    def f_int(self) -> torch.Tensor:
        """The integer f the forward pass uses (straight-through to ``f``)."""
        return round_ste(self.f.clamp(-F_LIMIT, F_LIMIT))

    def f_for_cost(self) -> torch.Tensor:
        """Integer f whose gradient from a cost term is normalised by ``1/sqrt(share)``."""
        return scale_grad(self.f_int(), 1.0 / math.sqrt(self.share))


def weight_widths(w_q: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Training-time magnitude width of each quantized weight (sign bit excluded).

    ``max(0, floor(log2|w_q|) + 1 + f)``: the span from the most significant set bit down to
    ``2^-f``, an upper bound on the enclosed-bit width. A zero weight has width 0. Gradient
    reaches ``f`` (slope 1 where the width is positive); the MSB position is a constant.
    """
    mag = w_q.detach().abs()
    msb = torch.floor(torch.log2(torch.where(mag > 0, mag, torch.ones_like(mag)))) + 1
    width = torch.relu(msb + f)
    return torch.where(mag > 0, width, torch.zeros_like(width))


def exact_weight_widths(w_q: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Post-training width: bits enclosed by the highest and lowest set bit of each weight.

    The integer mantissa ``m = |w_q| 2^f`` is exact; its width is ``floor(log2 m) + 1`` minus
    its trailing zero bits (e.g. 0.375 at f=3 is m=3=0b11: width 2; at f=4, m=6=0b110: still 2).
    """
    f_int = torch.round(f.detach().clamp(-F_LIMIT, F_LIMIT))
    m = torch.round(w_q.detach().abs() * torch.exp2(f_int)).to(torch.int64)
    width = torch.zeros_like(m)
    nonzero = m > 0
    if nonzero.any():
        mz = m[nonzero]
        trailing = torch.zeros_like(mz)
        odd = mz.clone()
        for _ in range(64):  # strip trailing zeros; stops as soon as every mantissa is odd
            even = (odd & 1) == 0
            if not even.any():
                break
            odd = torch.where(even, odd >> 1, odd)
            trailing += even.to(torch.int64)
        msb = torch.floor(torch.log2(mz.to(torch.float64))).to(torch.int64) + 1
        width[nonzero] = msb - trailing
    return width.to(torch.float32)


def activation_widths(f: torch.Tensor, int_bits: torch.Tensor, signed: torch.Tensor
                      ) -> torch.Tensor:
    """Width ``max(0, k + i + f)`` of activations with sign bit k, integer bits i, f."""
    return torch.relu(signed + int_bits + f)


def integer_bits(max_abs: torch.Tensor) -> torch.Tensor:
    """Integer bits i needed to hold magnitudes up to ``max_abs``: floor(log2 max) + 1.

    Zero ranges get ``-F_LIMIT`` so that they add no width.
    """
    safe = torch.where(max_abs > 0, max_abs, torch.ones_like(max_abs))
    bits = torch.floor(torch.log2(safe)) + 1
    return torch.where(max_abs > 0, bits, torch.full_like(bits, -F_LIMIT))
