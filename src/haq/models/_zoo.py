"""The model zoo: every reference model by name, how to build it, and where its weights live."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from haq.models.mobilenet_v1 import MobileNetV1
from haq.models.mobilenet_v2 import MobileNetV2
from haq.models.resnet import BasicBlock, Bottleneck, ResNet, ResNetCifar
from haq.models.vit import VisionTransformer

WEIGHTS_DIR = Path(__file__).parent / "weights"

# MobileNet-V1 for 28x28: the stem keeps full resolution and block 1's depthwise conv halves it
# (28 -> 14); of the paper's later stride-2 blocks only two remain, so the maps go 28 -> 14 ->
# 7 -> 4 instead of 112 -> ... -> 7. Costs the same as a stride-2 stem, sees full-resolution edges.
FMNIST_V1_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 2), (128, 1), (128, 1), (256, 2), (256, 1), (512, 1),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)
# MobileNet-V2 for 28x28: the paper's (t, c, n, s) table with a stride-1 stem and a stride-1
# 64-channel stage, so the maps go 28 -> 14 -> 7 -> 4 instead of 112 -> ... -> 7.
FMNIST_V2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 1),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


@dataclass(frozen=True)
class ModelEntry:
    """One zoo model: its builder, the data it expects, and the recipe its weights came from.

    ``recipe`` holds ``haq.finetune.TrainConfig`` fields (the defaults of ``haq train``).
    """

    name: str
    build: Callable[[], nn.Module]
    dataset: str
    input_shape: tuple[int, int, int]
    num_classes: int
    description: str
    trainable: bool
    recipe: dict[str, Any] = field(default_factory=dict)

    @property
    def weights_path(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.pt"

    @property
    def sidecar_path(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.json"


_FMNIST = (1, 28, 28)
_IMAGENET = (3, 224, 224)
# Shared recipe: SGD with momentum, per-step cosine decay, flips + 2-px-padded crops. The
# MobileNets use HAQ's weight decay 4e-5 (their depthwise filters have few weights to regularise).
_FMNIST_RECIPE: dict[str, Any] = {
    "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 128,
    "cosine": True, "label_smoothing": 0.1, "augment": True, "dataset": "fashion-mnist",
}

ZOO: dict[str, ModelEntry] = {
    entry.name: entry for entry in (
        ModelEntry(
            "mobilenetv1-fmnist",
            lambda: MobileNetV1(10, 1, width=0.5, stem_stride=1, blocks=FMNIST_V1_BLOCKS),
            "fashion-mnist", _FMNIST, 10,
            "MobileNet-V1 x0.5, 13 depthwise-separable blocks, maps 28->14->7->4",
            True, {**_FMNIST_RECIPE, "epochs": 12, "weight_decay": 4e-5},
        ),
        ModelEntry(
            "mobilenetv2-fmnist",
            lambda: MobileNetV2(10, 1, width=0.5, stem_stride=1, stages=FMNIST_V2_STAGES,
                                last_channels=640, dropout=0.1),
            "fashion-mnist", _FMNIST, 10,
            "MobileNet-V2 x0.5, 17 inverted residuals, last 1x1 640, maps 28->14->7->4",
            True, {**_FMNIST_RECIPE, "epochs": 12, "weight_decay": 4e-5},
        ),
        ModelEntry(
            "resnet20-fmnist",
            lambda: ResNetCifar(20, 10, 1, widths=(16, 32, 64)),
            "fashion-mnist", _FMNIST, 10,
            "CIFAR-style ResNet-20 (16/32/64), option-A shortcuts, maps 28->14->7",
            True, {**_FMNIST_RECIPE, "epochs": 10},
        ),
        ModelEntry(
            "mobilenetv1-imagenet", lambda: MobileNetV1(1000, 3), "imagenet", _IMAGENET, 1000,
            "MobileNet-V1 1.0 at 224x224 (cost only, no weights)", False,
        ),
        ModelEntry(
            "mobilenetv2-imagenet", lambda: MobileNetV2(1000, 3), "imagenet", _IMAGENET, 1000,
            "MobileNet-V2 1.0 at 224x224: 52 convs + classifier (cost only, no weights)", False,
        ),
        ModelEntry(
            "resnet18-imagenet", lambda: ResNet(BasicBlock, (2, 2, 2, 2)), "imagenet",
            _IMAGENET, 1000, "ResNet-18 at 224x224 (cost only, no weights)", False,
        ),
        ModelEntry(
            "resnet50-imagenet", lambda: ResNet(Bottleneck, (3, 4, 6, 3)), "imagenet",
            _IMAGENET, 1000, "ResNet-50 v1.5 at 224x224 (cost only, no weights)", False,
        ),
        ModelEntry(
            "vit-tiny-imagenet", lambda: VisionTransformer(1000), "imagenet", _IMAGENET, 1000,
            "ViT-Ti/16 at 224x224: Linear layers only, 12 blocks of width 192, 197 tokens "
            "(cost only, no weights)", False,
        ),
    )
}
