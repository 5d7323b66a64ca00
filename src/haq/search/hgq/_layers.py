"""HGQ layers: a Conv/Linear with a fixed-point weight quantizer and an input quantizer.

Like HGQ2, every quantized layer quantizes its *input* (so ``a_bits`` means the same thing as in
a haq Policy: the width of the activation the layer reads) and its weight. The bias stays float.
Integer bits are never trained: a weight's come from its own value, an input's from the range
seen since the last ``reset_ranges()`` (HGQ v1 resets them every epoch).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the universal spelling
from torch import nn

from haq.errors import ConfigError, UnsupportedModelError
from haq.search.hgq._quantizer import (
    FixedPointQuantizer,
    activation_widths,
    exact_weight_widths,
    integer_bits,
    weight_widths,
)
from haq.specs import LayerSpec


def _reduce_to(x: torch.Tensor, shape: torch.Size, op: str) -> torch.Tensor:
    """Reduce a batch ``x`` [N, *per_sample] to ``shape`` (the f shape) with max or min."""
    t = x.amax(dim=0) if op == "max" else x.amin(dim=0)
    dims = tuple(i for i, n in enumerate(shape) if n == 1 and t.shape[i] != 1)
    if dims:
        t = t.amax(dim=dims, keepdim=True) if op == "max" else t.amin(dim=dims, keepdim=True)
    return t


class HgqLayer(nn.Module):
    """A quantized stand-in for one ``nn.Conv1d`` / ``nn.Conv2d`` / ``nn.Linear``.

    Args:
        layer: the float layer; its weight and bias are copied into this module.
        in_shape: per-sample shape of the layer's input, e.g. (C, H, W) or (features,).
        weight_granularity / act_granularity: "layer", "channel" or "element".
        tokens: positions a Linear is applied to per sample (1 for a classifier head).

    Attributes:
        weight_quant / act_quant: the two fixed-point quantizers.
        act_max / act_min: range of the input seen since ``reset_ranges`` (f's shape).
    """

    def __init__(self, layer: nn.Module, in_shape: Sequence[int], weight_granularity: str,
                 act_granularity: str, tokens: int = 1) -> None:
        super().__init__()
        if not isinstance(layer, nn.Conv1d | nn.Conv2d | nn.Linear):
            raise UnsupportedModelError(f"HGQ quantizes Conv1d, Conv2d and Linear layers, not "
                                        f"{type(layer).__name__}")
        self.kind = "linear" if isinstance(layer, nn.Linear) else (
            "conv1d" if isinstance(layer, nn.Conv1d) else "conv2d")
        self.weight = nn.Parameter(layer.weight.detach().clone())
        self.bias = None if layer.bias is None else nn.Parameter(layer.bias.detach().clone())
        self.conv_args: dict[str, Any] = {}
        if self.kind != "linear":
            if layer.padding_mode != "zeros":
                raise UnsupportedModelError("HGQ supports zero-padded convolutions only")
            self.conv_args = dict(stride=layer.stride, padding=layer.padding,
                                  dilation=layer.dilation, groups=layer.groups)
        self.in_shape = tuple(int(s) for s in in_shape)
        self.tokens = int(tokens)
        self.weight_quant = FixedPointQuantizer(tuple(self.weight.shape), weight_granularity)
        self.act_quant = FixedPointQuantizer(self.in_shape, act_granularity)
        fs = self.act_quant.f.shape
        self.register_buffer("act_max", torch.zeros(fs))
        self.register_buffer("act_min", torch.zeros(fs))
        self.register_buffer("observed", torch.zeros((), dtype=torch.bool))
        self.tracing = False  # eval-mode range tracing (see ``trace_ranges``)

    # -- ranges and initial widths --------------------------------------------------------------
    def reset_ranges(self) -> None:
        """Forget the observed input range; the next forward passes re-measure it."""
        self.act_max.zero_()
        self.act_min.zero_()
        self.observed.fill_(False)

    def init_bits(self, weight_bits: float, act_bits: float) -> None:
        """Set f so the largest weight (per f group) has ``weight_bits`` magnitude bits and the
        observed input range is covered by ``act_bits`` bits (sign included)."""
        with torch.no_grad():
            wmax = _reduce_to(self.weight.abs()[None], self.weight_quant.f.shape, "max")
            self.weight_quant.f.copy_(weight_bits - integer_bits(wmax).clamp(min=-8))
            i = integer_bits(torch.maximum(self.act_max, -self.act_min)).clamp(min=-8)
            self.act_quant.f.copy_(act_bits - i - self.act_signed())

    def act_signed(self) -> torch.Tensor:
        """k: 1 where negative inputs were seen, else 0."""
        return (self.act_min < 0).to(self.act_max.dtype)

    def act_int_bits(self) -> torch.Tensor:
        return integer_bits(torch.maximum(self.act_max, -self.act_min))

    # -- forward --------------------------------------------------------------------------------
    def quantized_weight(self) -> torch.Tensor:
        return self.weight_quant(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.tracing or not bool(self.observed):
            with torch.no_grad():
                flat = x.detach().reshape(-1, *self.in_shape)
                hi = _reduce_to(flat, self.act_max.shape, "max")
                lo = _reduce_to(flat, self.act_min.shape, "min")
                if bool(self.observed):
                    hi, lo = torch.maximum(hi, self.act_max), torch.minimum(lo, self.act_min)
                self.act_max.copy_(hi)
                self.act_min.copy_(lo)
                self.observed.fill_(True)
        xq = self.act_quant(x)
        return self._compute(xq, self.quantized_weight())

    def _compute(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            return F.linear(x, w, self.bias)
        if self.kind == "conv1d":
            return F.conv1d(x, w, self.bias, **self.conv_args)
        return F.conv2d(x, w, self.bias, **self.conv_args)

    # -- widths and EBOPs -----------------------------------------------------------------------
    def weight_width_map(self, exact: bool = False, normalise: bool = True) -> torch.Tensor:
        """Magnitude width of every weight (sign excluded), same shape as the weight.

        ``normalise`` scales the gradient reaching a shared f by 1/sqrt(share) (for costs that
        sum over the values sharing it, such as EBOPs).
        """
        wq = self.quantized_weight()
        f = self.weight_quant.f
        if exact:
            return exact_weight_widths(wq, torch.broadcast_to(f, wq.shape))
        f = self.weight_quant.f_for_cost() if normalise else self.weight_quant.f_int()
        return weight_widths(wq, f)

    def act_width_map(self, exact: bool = False, normalise: bool = True) -> torch.Tensor:
        """Width of every input element of one sample (sign included), shape ``in_shape``."""
        if exact:
            f = self.act_quant.f_int().detach()
        else:
            f = self.act_quant.f_for_cost() if normalise else self.act_quant.f_int()
        if exact:
            # Exact integer bits cover the largest quantized magnitude: ceil(log2(max + 2^-f)).
            mag = torch.maximum(self.act_max, -self.act_min)
            i = torch.ceil(torch.log2(mag + torch.exp2(-f)))
            i = torch.where(mag > 0, i, torch.full_like(i, -30.0))
        else:
            i = self.act_int_bits()
        return torch.broadcast_to(activation_widths(f, i, self.act_signed()), self.in_shape)

    def _pair_sum(self, act: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Sum over every multiplication of act width x weight width (one sample)."""
        if self.kind == "linear":
            return (weight * act.reshape(1, -1)).sum() * self.tokens
        conv = F.conv1d if self.kind == "conv1d" else F.conv2d
        return conv(act[None], weight, None, **self.conv_args).sum()

    def ebops(self, exact: bool = False) -> torch.Tensor:
        """Effective bit operations of one sample: sum over multiplications of b_a * b_w.

        Training-time (``exact=False``) widths are differentiable in f and over-estimate;
        ``exact=True`` uses enclosed-bit weight widths and the observed input range.
        """
        return self._pair_sum(self.act_width_map(exact), self.weight_width_map(exact))

    def macs(self) -> int:
        ones = torch.ones(self.in_shape)
        return int(self._pair_sum(ones, torch.ones_like(self.weight)).item())

    def mean_widths(self, exact: bool = False, reduce: str = "mean", normalise: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight width incl. sign, activation width) of the layer as a single pair.

        ``reduce="max"`` takes the widest operand (the width hardware must be built for);
        ``"mean"`` is the MAC-weighted mean (each width weighted by the multiplications that
        use it). For per-layer f both are exact descriptions of the layer's format up to
        weights below the largest one.
        """
        bw = self.weight_width_map(exact, normalise)
        ba = self.act_width_map(exact, normalise)
        if reduce == "max":
            return bw.max() + 1.0, ba.max()
        if reduce != "mean":
            raise ConfigError(f"reduce={reduce!r}: choose 'max' or 'mean'")
        macs = float(self.macs())
        w_mean = self._pair_sum(torch.ones(self.in_shape), bw) / macs
        a_mean = self._pair_sum(ba, torch.ones_like(self.weight)) / macs
        return w_mean + 1.0, a_mean

    def pruned_fraction(self) -> float:
        """Fraction of weights that quantize to exactly zero (pruned for free)."""
        with torch.no_grad():
            return float((self.quantized_weight() == 0).float().mean())


def wrap_model(model: nn.Module, specs: Sequence[LayerSpec], calibration: Iterable[torch.Tensor],
               *, weight_granularity: str = "layer", act_granularity: str = "layer",
               init_weight_bits: float = 7.0, init_act_bits: float = 8.0
               ) -> tuple[nn.Module, dict[str, HgqLayer]]:
    """A deep copy of ``model`` with every spec'd layer replaced by an ``HgqLayer``.

    The input ranges are measured on ``calibration`` (a few input batches) and f is initialised
    so weights start with ``init_weight_bits`` magnitude bits and inputs with ``init_act_bits``.
    """
    wrapped = copy.deepcopy(model)
    layers: dict[str, HgqLayer] = {}
    for spec in specs:
        module = wrapped.get_submodule(spec.name)
        if spec.kind == "linear":
            in_shape: tuple[int, ...] = (spec.in_channels,)
        elif isinstance(module, nn.Conv1d):
            in_shape = (spec.in_channels, spec.in_size[1])
        else:
            in_shape = (spec.in_channels, *spec.in_size)
        layer = HgqLayer(module, in_shape, weight_granularity, act_granularity, spec.tokens)
        parent_name, _, child = spec.name.rpartition(".")
        parent = wrapped.get_submodule(parent_name) if parent_name else wrapped
        setattr(parent, child, layer)
        layers[spec.name] = layer
    wrapped.eval()
    seen = 0
    with torch.no_grad():
        for x in calibration:
            wrapped(x)
            seen += 1
    if seen == 0:
        raise ConfigError("HGQ needs at least one calibration batch to measure input ranges")
    for layer in layers.values():
        layer.init_bits(init_weight_bits, init_act_bits)
    return wrapped, layers


def trace_ranges(model: nn.Module, layers: dict[str, HgqLayer],
                 batches: Iterable[torch.Tensor]) -> None:
    """Re-measure every input range exactly, in eval mode, over ``batches`` (HGQ's
    ``trace_minmax``), so exact widths and EBOPs describe the deployed model."""
    was = model.training
    model.eval()
    for layer in layers.values():
        layer.reset_ranges()
        layer.tracing = True
    try:
        with torch.no_grad():
            for x in batches:
                model(x)
    finally:
        for layer in layers.values():
            layer.tracing = False
        model.train(was)


def total_ebops(layers: dict[str, HgqLayer], exact: bool = False) -> torch.Tensor:
    """Sum of every layer's EBOPs (one sample)."""
    return torch.stack([layer.ebops(exact) for layer in layers.values()]).sum()


def reference_ebops(layers: dict[str, HgqLayer], bits: int = 8) -> float:
    """EBOPs of the same layers with every operand ``bits`` wide: bits^2 x MACs."""
    return float(sum(layer.macs() for layer in layers.values())) * bits * bits


def f_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every trainable f of the HGQ layers (their own optimiser group, no weight decay)."""
    return [m.f for m in model.modules() if isinstance(m, FixedPointQuantizer)]


def sum_f(model: nn.Module) -> torch.Tensor:
    """HGQ's "monotone L1" term: the signed sum of every f.

    A shared f stands for ``share`` values; it is counted ``sqrt(share)`` times, the same
    normalisation HGQ applies to the cost gradient, so gamma means the same at any granularity.
    """
    terms = [m.f.sum() * math.sqrt(m.share) for m in model.modules()
             if isinstance(m, FixedPointQuantizer)]
    return torch.stack(terms).sum()
