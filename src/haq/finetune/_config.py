"""TrainConfig: every knob of the training / fine-tuning loop, validated once."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from haq.errors import ConfigError

_OPTIONAL = ("steps", "max_batches")


def _is_int(value: Any, optional: bool) -> bool:
    return (value is None and optional) or (isinstance(value, int) and not isinstance(value, bool))


@dataclass(frozen=True)
class TrainConfig:
    """How to train or fine-tune a model.

    The length is ``steps`` optimizer steps if given, else ``epochs`` passes over the data
    (each pass capped at ``max_batches`` batches if given).

    Attributes:
        optimizer: ``"sgd"`` (with ``momentum``) or ``"adam"``.
        lr: peak learning rate.
        momentum: SGD momentum (ignored by Adam).
        weight_decay: L2 penalty on every trainable parameter (as in the HAQ code, clip
            parameters such as PACT alphas included).
        epochs: passes over the training data when ``steps`` is None.
        steps: total optimizer steps; overrides ``epochs``.
        batch_size: samples per step when the data is a Dataset (a DataLoader keeps its own).
        cosine: cosine-decay the learning rate from ``lr`` to 0 over the run, per step.
        label_smoothing: cross-entropy label smoothing in [0, 1).
        seed: seeds data order, augmentation, and stochastic layers such as dropout.
        augment: random crop with zero padding (2 px at 28x28) and horizontal flip, per sample.
        max_batches: cap on batches per epoch (e.g. a short search-time recovery).
        distill: weight in [0, 1] of knowledge distillation from a teacher (the float model):
            loss = (1 - distill) * cross-entropy + distill * T^2 * KL(teacher || student) at
            temperature T = ``temperature``. Needs a ``teacher`` passed to ``train``.
        temperature: softmax temperature of the distillation term.
        device: device the model and batches are moved to (``"cpu"``, ``"cuda"``, ``"auto"``);
            ``None`` = where the model is.
        bn_qat: on a model whose BatchNorms were folded (the default ``QuantConfig``), train
            a BatchNorm after each folded layer with per-channel weights and fold it back at
            the end (folded-BN QAT); otherwise the folded weight and bias train directly.
        bn_freeze: fraction of the steps after which those BatchNorms stop using batch
            statistics and freeze their running statistics (1 = never before the end).
    """

    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 4e-5
    epochs: int = 1
    steps: int | None = None
    batch_size: int = 128
    cosine: bool = True
    label_smoothing: float = 0.0
    seed: int = 0
    augment: bool = False
    max_batches: int | None = None
    distill: float = 0.0
    temperature: float = 1.0
    device: str | None = None
    bn_qat: bool = True
    bn_freeze: float = 0.5

    def __post_init__(self) -> None:
        problems = [f"{name} must be an integer, got {getattr(self, name)!r}"
                    for name in ("epochs", "steps", "batch_size", "seed", "max_batches")
                    if not _is_int(getattr(self, name), optional=name in _OPTIONAL)]
        if problems:
            raise ConfigError("invalid TrainConfig: " + "; ".join(problems))
        if self.optimizer not in ("sgd", "adam"):
            problems.append(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1), got {self.momentum}")
        if not self.weight_decay >= 0:  # written so that NaN fails too
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.steps is None and self.epochs < 1:
            problems.append(f"epochs must be >= 1 (or give steps), got {self.epochs}")
        if self.steps is not None and self.steps < 1:
            problems.append(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.max_batches is not None and self.max_batches < 1:
            problems.append(f"max_batches must be >= 1, got {self.max_batches}")
        if not 0 <= self.distill <= 1:
            problems.append(f"distill must be in [0, 1], got {self.distill}")
        if not self.temperature > 0:
            problems.append(f"temperature must be > 0, got {self.temperature}")
        problems += self._bn_problems()
        if problems:
            raise ConfigError("invalid TrainConfig: " + "; ".join(problems))

    def _bn_problems(self) -> list[str]:
        problems = []
        if not isinstance(self.bn_qat, bool):
            problems.append(f"bn_qat must be True or False, got {self.bn_qat!r}")
        if not 0 <= self.bn_freeze <= 1:  # written so that NaN fails too
            problems.append(f"bn_freeze must be in [0, 1], got {self.bn_freeze}")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict, ignoring keys that are not TrainConfig fields (e.g. dataset)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def search_finetune_config(seed: int = 0, steps: int = 200) -> TrainConfig:
    """Short recovery between quantizing and scoring a policy during a search.

    The HAQ code fine-tunes one epoch of a 20k-image subset with SGD (momentum 0.9, lr 1e-3,
    weight decay 4e-5); a fixed number of steps is the same idea at a bounded cost.
    """
    return TrainConfig(optimizer="sgd", lr=1e-3, momentum=0.9, weight_decay=4e-5, steps=steps,
                       batch_size=128, cosine=False, seed=seed)


def final_finetune_config(seed: int = 0, epochs: int = 3, distill: float = 0.0) -> TrainConfig:
    """Full quantization-aware fine-tune of the chosen policy.

    The HAQ code uses SGD (momentum 0.9), lr 0.01 with cosine decay and weight decay 4e-5
    (30 ImageNet epochs); a few Fashion-MNIST epochs are enough for the small zoo models.
    ``distill`` > 0 blends in distillation from the float model (pass it as ``teacher``);
    ``haq.search`` uses 1.0 (docs/deviations.md).
    """
    return TrainConfig(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=4e-5, epochs=epochs,
                       batch_size=128, cosine=True, augment=True, seed=seed, distill=distill)
