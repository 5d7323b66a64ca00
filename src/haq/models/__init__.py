"""Reference models: small trained Fashion-MNIST nets and cost-only ImageNet shapes.

``create(name)`` builds a model, ``create(name, pretrained=True)`` loads the shipped weights,
``example_input(name)`` gives an input of the right shape, ``info(name)`` says what the model is,
what it was trained on, and with what recipe and accuracy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from haq.errors import ConfigError
from haq.models._blocks import init_weights
from haq.models._zoo import WEIGHTS_DIR, ZOO, ModelEntry

__all__ = ["WEIGHTS_DIR", "ModelInfo", "available", "create", "example_input", "info"]


@dataclass(frozen=True)
class ModelInfo:
    """What a zoo model is and, when weights ship, how they were made.

    Attributes:
        name: zoo name, e.g. ``"resnet20-fmnist"``.
        dataset: dataset the model is shaped for (``"fashion-mnist"`` or ``"imagenet"``).
        input_shape: (channels, height, width) of one sample.
        num_classes: classifier outputs.
        description: architecture summary (width, strides, feature-map sizes).
        has_weights: trained weights ship with haq.
        test_accuracy: recorded float top-1 (%) on the official test split, if trained.
        recipe: training recipe (``TrainConfig`` fields); the recorded one if weights ship,
            otherwise the default ``haq train`` would use (empty for cost-only models).
        sidecar: full JSON sidecar of the shipped weights (command, date, versions, seconds).
    """

    name: str
    dataset: str
    input_shape: tuple[int, int, int]
    num_classes: int
    description: str
    has_weights: bool
    test_accuracy: float | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    sidecar: dict[str, Any] = field(default_factory=dict)


def available() -> list[str]:
    """Names of every zoo model, trained Fashion-MNIST models first."""
    return list(ZOO)


def _entry(name: str) -> ModelEntry:
    if name not in ZOO:
        raise ConfigError(
            f"unknown model {name!r}; available models: {', '.join(ZOO)}. "
            "Run `haq models` to list them with their datasets and accuracy.")
    return ZOO[name]


def create(name: str, pretrained: bool = False, seed: int = 0) -> nn.Module:
    """Build a zoo model in eval mode.

    Args:
        name: one of ``available()``.
        pretrained: load the shipped weights (Fashion-MNIST models only).
        seed: seed for the random initialisation (ignored when ``pretrained``); the global
            torch RNG is left as it was.

    Raises:
        ConfigError: unknown name, a cost-only model asked for weights, or the weight file is
            missing or does not fit the architecture.
    """
    entry = _entry(name)
    if pretrained and not entry.trainable:
        raise ConfigError(
            f"{name} is a cost-only model shape: haq ships no {entry.dataset} weights for it. "
            f"Use create({name!r}) for specs and costs, or a trained model "
            f"({', '.join(n for n, e in ZOO.items() if e.trainable)}) for accuracy.")
    if pretrained and not entry.weights_path.is_file():
        raise ConfigError(
            f"no trained weights for {name} at {entry.weights_path}; train them with "
            f"`haq train {name}` or use pretrained=False")
    # Constructors draw default inits from the global RNG; fork it so callers see no change,
    # then overwrite every weight from our own seeded generator.
    with torch.random.fork_rng(devices=[]):
        model = entry.build()
    init_weights(model, torch.Generator().manual_seed(seed))
    if pretrained:
        state = torch.load(entry.weights_path, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise ConfigError(
                f"{entry.weights_path} does not fit the {name} architecture ({err}); the "
                f"weights are stale, retrain with `haq train {name}`") from err
    return model.eval()


def example_input(name: str, batch: int = 1) -> torch.Tensor:
    """A deterministic standard-normal input batch of the model's shape, ``(batch, C, H, W)``."""
    entry = _entry(name)
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    return torch.randn(batch, *entry.input_shape, generator=torch.Generator().manual_seed(0))


def info(name: str) -> ModelInfo:
    """Describe a zoo model; reads the weights' JSON sidecar when weights ship."""
    entry = _entry(name)
    sidecar: dict[str, Any] = {}
    if entry.sidecar_path.is_file():
        sidecar = json.loads(entry.sidecar_path.read_text())
    has_weights = entry.trainable and entry.weights_path.is_file()
    accuracy = sidecar.get("test_accuracy") if has_weights else None
    recipe = sidecar.get("recipe", entry.recipe) if has_weights else dict(entry.recipe)
    return ModelInfo(
        name=name, dataset=entry.dataset, input_shape=entry.input_shape,
        num_classes=entry.num_classes, description=entry.description,
        has_weights=has_weights, test_accuracy=accuracy, recipe=recipe,
        sidecar=sidecar if has_weights else {},
    )
