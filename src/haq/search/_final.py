"""The final score of a chosen policy: calibrate, optionally fine-tune, top-1 on ``test``.

The only place the test split is used. ``search`` scores its best policy this way (also when
no fine-tune runs: the post-training accuracy), and ``compare`` scores every row this way.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn

from haq.data import loader
from haq.errors import ConfigError
from haq.finetune import final_finetune_config, finetune
from haq.metrics import as_metric
from haq.policy import Policy
from haq.quantize import QuantConfig, apply_policy_
from haq.search._base import SearchProblem


@dataclass(frozen=True)
class FinalConfig:
    """The fine-tune of the chosen policy before its test score.

    Attributes:
        epochs: fine-tune epochs over ``train`` (0 = score the calibrated policy as is).
        steps: cap the fine-tune at this many SGD steps (``None`` = the whole epochs).
        distill: weight of distillation from the float model (0 = labels only).
    """

    epochs: int = 0
    steps: int | None = None
    distill: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"final fine-tune epochs must be an integer >= 0 (0 = no "
                              f"fine-tune), got {self.epochs!r}")
        if self.steps is not None and (isinstance(self.steps, bool)
                                       or not isinstance(self.steps, int) or self.steps < 1):
            raise ConfigError(f"final fine-tune steps must be an integer >= 1 or None, got "
                              f"{self.steps!r}")
        if isinstance(self.distill, bool) or not isinstance(self.distill, int | float) \
                or not 0.0 <= self.distill <= 1.0:
            raise ConfigError(f"final fine-tune distill must be a weight in [0, 1], got "
                              f"{self.distill!r}")

    @property
    def trains(self) -> bool:
        return self.epochs > 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def final_model(problem: SearchProblem, policy: Policy, final: FinalConfig, *, seed: int = 0
                ) -> tuple[nn.Module, dict[str, Any]]:
    """(quantized model, fine-tune history) of ``policy``: calibrated on the problem's
    calibration batches, then fine-tuned on its training data as ``final`` says."""
    if problem.model is None or problem.calibration is None:
        raise ConfigError("the final score needs the problem's model and calibration batches "
                          "(haq.search.build_problem provides them)")
    quantized = apply_policy_(copy.deepcopy(problem.model), policy, problem.calibration,
                              problem.quant_config or QuantConfig())
    history: dict[str, Any] = {}
    if final.trains:
        if problem.train_data is None:
            raise ConfigError("a final fine-tune needs the problem's training data")
        recipe = final_finetune_config(seed, final.epochs, final.distill)
        if final.steps is not None:
            recipe = dataclasses.replace(recipe, steps=final.steps)
        history = finetune(quantized, problem.train_data, recipe, teacher=problem.model)
    return quantized, history


def final_scorer(problem: SearchProblem, test: Any, final: FinalConfig | None = None, *,
                 seed: int = 0) -> Any:
    """policy -> the problem's metric on ``test`` after ``final_model`` (top-1 in percent by
    default; a score, so minus the value for a ``"min"`` metric); one scorer for every row."""
    settings = final or FinalConfig()
    metric = problem.metric or as_metric(None)

    def score(policy: Policy) -> float:
        quantized, _ = final_model(problem, policy, settings, seed=seed)
        return metric.score(quantized, loader(test, 128))

    return score
