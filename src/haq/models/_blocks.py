"""Building blocks shared by the reference models: conv + batch-norm + activation, rounding."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of ``divisor``, never dropping below 90%.

    MobileNet width multipliers use this rule so that channel counts stay hardware friendly.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvBNAct(nn.Module):
    """``conv`` (no bias) -> ``bn`` -> ``act``; the quantizable layer is always named ``conv``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel: square kernel size; padding keeps "same" size at stride 1.
        stride: convolution stride.
        groups: 1 for a dense conv, ``in_channels`` for a depthwise conv.
        act: ``"relu"``, ``"relu6"`` or ``None`` (a linear bottleneck).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 groups: int = 1, act: str | None = "relu6") -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride,
                              padding=kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        if act == "relu6":
            self.act: nn.Module = nn.ReLU6(inplace=True)
        elif act == "relu":
            self.act = nn.ReLU(inplace=True)
        else:
            self.act = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


def init_weights(model: nn.Module, generator: torch.Generator) -> None:
    """Kaiming-normal convs, unit batch/layer norms, small normal linear layers (He et al.
    2015); then a module's own ``init_extra_(generator)`` if it has one (ViT's embeddings).

    Every random draw comes from ``generator``, so the same seed gives the same weights.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu",
                                    generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d | nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01, generator=generator)
            nn.init.zeros_(module.bias)
    for module in model.modules():
        extra = getattr(module, "init_extra_", None)
        if callable(extra):
            extra(generator)
