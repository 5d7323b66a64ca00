"""The ``ohq`` strategy: data-free MQE sensitivity, then the exact budgeted ILP.

OHQ (Huang et al., arXiv 2309.01945) searches on the target device itself with no training data:
it measures each operator's cost on the hardware and estimates each layer's accuracy impact by
masking (quantizing one layer at a time) and a KL divergence, then combines both in an integer
program. Here the cost side is whatever ``CostTable`` the problem carries (simulated, a user
table, or ``haq hw profile`` measured on this host), and the sensitivity side is
``haq.search.ohq.mqe_sensitivity`` on synthetic probe inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from haq.device import on_cpu
from haq.errors import ConfigError, StrategyError
from haq.quantize import QuantConfig
from haq.search._base import SearchProblem, register_strategy
from haq.search.ohq._mqe import mqe_sensitivity, score_table
from haq.search.ohq._oneshot import ScoreIlpStrategy, calibration_inputs
from haq.search.ohq._synthetic import SYNTHETIC_KINDS, has_batchnorm, synthetic_inputs
from haq.specs import LayerSpec

INPUT_KINDS = ("auto", *SYNTHETIC_KINDS, "calibration")


def input_shape(problem: SearchProblem) -> tuple[int, ...]:
    """Per-sample model input shape: from a calibration batch's shape if there is one (its
    values are not used), else from the first layer's input."""
    inputs = calibration_inputs(problem)
    if inputs:
        return tuple(inputs[0].shape[1:])
    first: LayerSpec = problem.specs[0]
    if first.kind == "linear":
        return (first.in_channels,)
    return (first.in_channels, *first.in_size)


def as_quant_config(config: QuantConfig | Mapping[str, Any] | None) -> QuantConfig:
    if config is None or isinstance(config, QuantConfig):
        return config or QuantConfig()
    return QuantConfig.from_dict(dict(config))


@register_strategy("ohq")
class OhqStrategy(ScoreIlpStrategy):
    """OHQ: mask-guided KL sensitivity on synthetic inputs + exact ILP over the cost table.

    Args:
        inputs: probe inputs: ``"bn"`` (noise distilled to match the BatchNorm statistics,
            data-free), ``"gaussian"`` (plain noise, data-free), ``"calibration"`` (the
            problem's calibration batches), or ``"auto"`` = ``"bn"`` when the model has
            BatchNorm, else ``"gaussian"``.
        batch_size: samples per synthetic probe batch.
        batches: number of probe batches.
        bn_steps: optimisation steps per batch for ``"bn"`` inputs.
        quant_config: how layers are quantized while probing; use the same as the final
            model (a ``QuantConfig`` or its ``to_dict()``).
        ilp_time_limit: seconds the ILP may take.
    """

    def __init__(self, inputs: str = "auto", batch_size: int = 16, batches: int = 1,
                 bn_steps: int = 30, quant_config: QuantConfig | Mapping[str, Any] | None = None,
                 ilp_time_limit: float = 60.0) -> None:
        super().__init__(ilp_time_limit)
        if inputs not in INPUT_KINDS:
            raise ConfigError(f"inputs={inputs!r} is not supported; choose one of "
                              f"{', '.join(INPUT_KINDS)}")
        for name, value in (("batch_size", batch_size), ("batches", batches),
                            ("bn_steps", bn_steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        self.inputs, self.batch_size, self.batches = inputs, batch_size, batches
        self.bn_steps = bn_steps
        self.quant_config = as_quant_config(quant_config)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "inputs": self.inputs, "batch_size": self.batch_size,
                "batches": self.batches, "bn_steps": self.bn_steps,
                "quant_config": self.quant_config.to_dict()}

    def probe_inputs(self, problem: SearchProblem, seed: int) -> tuple[list, str]:
        """(probe batches, the input kind actually used)."""
        model = problem.model
        kind = self.inputs
        if kind == "auto":
            kind = "bn" if has_batchnorm(model) else "gaussian"
        if kind == "calibration":
            inputs = calibration_inputs(problem)
            if not inputs:
                raise StrategyError("ohq with inputs='calibration' needs calibration batches in "
                                    "the search problem; use a data-free input kind instead")
            return inputs[: self.batches], kind
        shape = (self.batch_size, *input_shape(problem))
        return synthetic_inputs(model, shape, kind, batches=self.batches, seed=seed,
                                steps=self.bn_steps), kind

    def score(self, problem: SearchProblem, seed: int) -> np.ndarray:
        if problem.model is None:
            raise StrategyError("ohq needs the float model in the search problem "
                                "(SearchProblem.model) to probe layer sensitivities")
        problem = replace(problem, model=on_cpu(problem.model))  # probes run on the CPU
        inputs, _ = self.probe_inputs(problem, seed)
        sens = mqe_sensitivity(problem.model, problem.specs, inputs, problem.space,
                               config=self.quant_config, executor=problem.executor)
        return score_table(sens, problem.space, problem.specs)
