"""MobileNet-V2 (Sandler et al. 2018): inverted residuals with linear bottlenecks.

Layer names: ``features.0.conv`` (stem), then per inverted-residual block i = 1..17
``features.<i>.expand.conv`` (absent in block 1, whose expansion factor is 1),
``features.<i>.dw.conv`` and ``features.<i>.project.conv``; ``features.18.conv`` (the last 1x1)
and ``classifier``. At width 1.0 that is 1 + 2 + 16*3 + 1 = 52 convolutions + 1 linear = 53.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from haq.models._blocks import ConvBNAct, make_divisible

# (expansion t, channels c at width 1.0, repeats n, stride s of the first repeat): Table 2.
IMAGENET_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


class InvertedResidual(nn.Module):
    """1x1 expansion (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear projection (no activation).

    The residual connection is used when stride is 1 and input/output channels match.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.use_residual = stride == 1 and in_channels == out_channels
        self.expand = ConvBNAct(in_channels, hidden, 1) if expansion != 1 else None
        self.dw = ConvBNAct(hidden, hidden, 3, stride, groups=hidden)
        self.project = ConvBNAct(hidden, out_channels, 1, act=None)

    def forward(self, x: Tensor) -> Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.project(self.dw(out))
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """MobileNet-V2 with a width multiplier and configurable strides.

    Args:
        num_classes: classifier outputs.
        in_channels: image channels.
        width: width multiplier for every layer but the last 1x1 (rounded to multiples of 8).
        stem_stride: stride of the first 3x3 conv (2 at 224x224).
        stages: (t, c, n, s) rows as in the paper's Table 2.
        last_channels: output channels of the last 1x1 conv (1280 in the paper; it is only
            widened, never narrowed, by ``width`` > 1).
        dropout: dropout before the classifier (0.2 in the paper's reference code).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, width: float = 1.0,
                 stem_stride: int = 2,
                 stages: Sequence[tuple[int, int, int, int]] = IMAGENET_STAGES,
                 last_channels: int = 1280, dropout: float = 0.2) -> None:
        super().__init__()
        channels = make_divisible(32 * width)
        last = make_divisible(last_channels * max(1.0, width))
        layers: list[nn.Module] = [ConvBNAct(in_channels, channels, 3, stem_stride)]
        for expansion, c, repeats, stride in stages:
            out_channels = make_divisible(c * width)
            for i in range(repeats):
                layers.append(InvertedResidual(channels, out_channels, stride if i == 0 else 1,
                                               expansion))
                channels = out_channels
        layers.append(ConvBNAct(channels, last, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(x))
