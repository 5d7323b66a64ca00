"""MobileNet-V1 (Howard et al. 2017): a stem conv, 13 depthwise-separable blocks, a classifier.

Layer names: ``features.0.conv`` (stem), ``features.<i>.dw.conv`` and ``features.<i>.pw.conv``
for block i = 1..13, ``classifier``. That is 27 convolutions + 1 linear = 28 quantizable layers.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from haq.models._blocks import ConvBNAct, make_divisible

# (output channels at width 1.0, stride) of the 13 depthwise-separable blocks, as in the paper.
IMAGENET_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv (``dw``) then 1x1 pointwise conv (``pw``), each with BN + ReLU6."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.dw = ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pw = ConvBNAct(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pw(self.dw(x))


class MobileNetV1(nn.Module):
    """MobileNet-V1 with a width multiplier and configurable strides.

    Args:
        num_classes: classifier outputs.
        in_channels: image channels (3 for RGB, 1 for grayscale).
        width: width multiplier applied to every layer (rounded to multiples of 8).
        stem_stride: stride of the first 3x3 conv (2 at 224x224, 1 for 28x28 inputs).
        blocks: (channels at width 1.0, stride) of each depthwise-separable block.
        dropout: dropout before the classifier.
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, width: float = 1.0,
                 stem_stride: int = 2, blocks: Sequence[tuple[int, int]] = IMAGENET_BLOCKS,
                 dropout: float = 0.0) -> None:
        super().__init__()
        channels = make_divisible(32 * width)
        layers: list[nn.Module] = [ConvBNAct(in_channels, channels, 3, stem_stride)]
        for out, stride in blocks:
            out_channels = make_divisible(out * width)
            layers.append(DepthwiseSeparable(channels, out_channels, stride))
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(x))
