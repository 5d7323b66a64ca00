"""Folded-BN quantization-aware training (Jacob et al. 2018; Krishnamoorthi 2018).

A layer that a BatchNorm was folded into (``haq.quantize.is_folded``) computes ``y = z + b``
with ``z`` the output of its quantized folded weight. For the fine-tune, a BatchNorm is put
back after it, started so that it computes the identity in eval mode (running mean and
scale from the first training batch). For the first ``bn_freeze`` of the steps it normalises
with the batch statistics and updates its running statistics, which follow the quantized
network's real activations; then the statistics freeze and only its scale and shift train.
At the end it is folded into the layer (``absorb_affine_``): with per-channel grids a
channel's scale multiplies its weights and its grid alike, so the folded quantized weight is
exactly what the frozen BatchNorm computed with, and the model is again one layer per pair,
the form that is evaluated and exported.

Per channel, ``BN(y) = s * z + (s * (b - mean) + beta)`` with ``s = gamma / sqrt(var +
eps)``: the scheme's usual form "fold with the running statistics, correct by the batch
ones" up to where the scale is applied, which a per-channel grid makes equivalent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F  # noqa: N812 - the universal spelling
from torch import nn

from haq.quantize import (
    QuantModule,
    absorb_affine_,
    is_folded,
    quantized_layers,
    scales_exactly,
)

EPS = 1e-5
MOMENTUM = 0.1


class FoldedNorm(nn.Module):
    """The BatchNorm trained after one folded layer during the fine-tune."""

    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, channels: int, like: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels, dtype=like.dtype, device=like.device))
        self.bias = nn.Parameter(torch.zeros(channels, dtype=like.dtype, device=like.device))
        self.register_buffer("running_mean", torch.zeros_like(self.bias.detach()))
        self.register_buffer("running_var", torch.ones_like(self.bias.detach()))
        self.frozen = False
        self.started = False

    @torch.no_grad()
    def _start(self, y: torch.Tensor) -> None:
        """Identity in eval mode, centred on the first batch's statistics."""
        flat = y.detach().transpose(0, 1).reshape(y.shape[1], -1)
        mean, var = flat.mean(1), flat.var(1, unbiased=False)
        self.running_mean.copy_(mean)
        self.running_var.copy_(var)
        self.weight.copy_(torch.sqrt(var + EPS))
        self.bias.copy_(mean)
        self.started = True

    def forward(self, y: torch.Tensor, training: bool) -> torch.Tensor:
        """Normalise ``y``; with batch statistics if ``training`` and not frozen."""
        if not self.started:
            self._start(y)
        batch_stats = training and not self.frozen
        return F.batch_norm(y, self.running_mean, self.running_var, self.weight, self.bias,
                            training=batch_stats, momentum=MOMENTUM, eps=EPS)

    @torch.no_grad()
    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift) per channel of the frozen norm: ``norm(y) = scale * y + shift``."""
        scale = self.weight / torch.sqrt(self.running_var + EPS)
        return scale, self.bias - scale * self.running_mean


def _eligible(model: nn.Module) -> dict[str, QuantModule]:
    return {name: layer for name, layer in quantized_layers(model).items()
            if is_folded(layer) and scales_exactly(layer)}


@contextmanager
def folded_bn_qat(model: nn.Module, enabled: bool = True) -> Iterator[dict[str, FoldedNorm]]:
    """Put a ``FoldedNorm`` after every folded layer for the block; fold them back after it.

    Yields the norms by layer name (empty if ``enabled`` is false or nothing was folded);
    their parameters are the caller's to train and ``freeze`` sets their statistics fixed.
    Layers with per-tensor or k-means weights keep training their folded weight directly.
    """
    norms: dict[str, FoldedNorm] = {}
    handles = []
    if enabled:
        for name, layer in _eligible(model).items():
            norm = FoldedNorm(layer.weight.shape[0], layer.weight)
            norms[name] = norm
            handles.append(layer.register_forward_hook(
                lambda layer, _inputs, output, norm=norm: norm(output, layer.training)))
    try:
        yield norms
    finally:
        for handle in handles:
            handle.remove()
        layers = quantized_layers(model)
        for name, norm in norms.items():
            if norm.started:
                absorb_affine_(layers[name], *norm.affine())


def freeze(norms: dict[str, FoldedNorm]) -> None:
    """From now on the norms use their running statistics (scale and shift still train)."""
    for norm in norms.values():
        norm.frozen = True
