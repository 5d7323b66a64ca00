"""The ``hawq`` strategy: HAWQ-V3-style Hessian-aware sensitivity + the same exact ILP as OHQ.

HAWQ-V3 (Yao et al., ICML 2021) scores quantizing layer l at b bits by the second-order change
of the loss under an isotropic-Hessian assumption, ``Omega_l(b) = (Tr(H_l)/n_l) ||Q_b(W_l)-W_l||^2``
(up to the constant 1/2 kept here), and picks bits with an ILP under the hardware budgets.
HAWQ-V3 quantizes activations at a fixed width; haq also searches activation bits, so the same
second-order term is added for each layer's *input*: ``(Tr(H_x)/n_x) ||Q_a(x)-x||^2`` with the
Hessian taken with respect to the input activation on the same labelled batches. The two terms
are summed (the additive assumption shared with OHQ).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from haq.errors import ConfigError, StrategyError
from haq.policy import FLOAT_INDEX, bits_index
from haq.quantize import QuantConfig, calibrate_, prepare_, quantized_layers, set_policy_
from haq.search._base import SearchProblem, register_strategy
from haq.search.hawq._hessian import HessianTraces, hutchinson_traces
from haq.search.ohq._mqe import probe_bits
from haq.search.ohq._oneshot import ScoreIlpStrategy, calibration_inputs, labelled_batches
from haq.search.ohq._strategy import as_quant_config
from haq.specs import LayerSpec

N_BITS = FLOAT_INDEX + 1


def training_batches(problem: SearchProblem, count: int) -> tuple[list[tuple], str]:
    """Up to ``count`` (x, y) batches: training batches if the problem has them, otherwise the
    calibration inputs labelled with the float model's own predictions."""
    if problem.train_data is not None:
        out = labelled_batches(problem.train_data, count)
        if out:
            return out, "train"
    inputs = calibration_inputs(problem)
    if not inputs:
        raise StrategyError("hawq needs labelled training batches (SearchProblem.train_data) or "
                            "calibration inputs to estimate Hessian traces")
    with torch.no_grad():
        return [(x, problem.model(x).argmax(dim=1)) for x in inputs[:count]], "pseudo-labels"


def perturbations(model: nn.Module, specs: Sequence[LayerSpec], batches: Sequence[tuple],
                  space: Any, config: QuantConfig) -> tuple[np.ndarray, np.ndarray]:
    """``||Q_b(W)-W||^2`` and mean-per-batch ``||Q_b(x)-x||^2``: two ``[L, 9]`` arrays."""
    net = copy.deepcopy(model).eval()
    prepare_(net, [s.name for s in specs], config)
    inputs = [x for x, _ in batches]
    calibrate_(net, inputs, max_batches=None)
    layers = quantized_layers(net)
    captured: dict[str, list[torch.Tensor]] = {s.name: [] for s in specs}
    handles = [layers[s.name].register_forward_pre_hook(
        lambda m, args: captured[m.layer_name].append(args[0].detach())) for s in specs]
    try:
        with torch.no_grad():
            for x in inputs:
                net(x)
    finally:
        for handle in handles:
            handle.remove()
    dw = np.full((len(specs), N_BITS), np.nan)
    da = np.full((len(specs), N_BITS), np.nan)
    dw[:, FLOAT_INDEX] = da[:, FLOAT_INDEX] = 0.0
    with torch.no_grad():
        for i, spec in enumerate(specs):
            layer = layers[spec.name]
            w_bits, a_bits = probe_bits(space, spec)
            for b in w_bits:
                set_policy_(net, {spec.name: (b, None)})
                dw[i, bits_index(b)] = float(((layer.effective_weight() - layer.weight) ** 2)
                                             .sum())
            for b in a_bits:
                set_policy_(net, {spec.name: (None, b)})
                da[i, bits_index(b)] = float(np.mean(
                    [float(((layer.act_quant(x) - x) ** 2).sum()) for x in captured[spec.name]]))
            set_policy_(net, {spec.name: (None, None)})
    return dw, da


@register_strategy("hawq")
class HawqStrategy(ScoreIlpStrategy):
    """Hessian-trace x quantization-perturbation sensitivity, then the exact ILP.

    Args:
        batches: labelled batches for the Hessian traces and perturbations.
        samples: Rademacher probes per batch (Hutchinson).
        quant_config: the quantizer whose perturbation is measured (use the final model's).
        ilp_time_limit: seconds the ILP may take.
    """

    def __init__(self, batches: int = 2, samples: int = 16,
                 quant_config: QuantConfig | Mapping[str, Any] | None = None,
                 ilp_time_limit: float = 60.0) -> None:
        super().__init__(ilp_time_limit)
        for name, value in (("batches", batches), ("samples", samples)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        self.batches, self.samples = batches, samples
        self.quant_config = as_quant_config(quant_config)
        self.traces: HessianTraces | None = None

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "batches": self.batches, "samples": self.samples,
                "quant_config": self.quant_config.to_dict()}

    def score(self, problem: SearchProblem, seed: int) -> np.ndarray:
        if problem.model is None:
            raise StrategyError("hawq needs the float model in the search problem "
                                "(SearchProblem.model)")
        batches, _ = training_batches(problem, self.batches)
        traces = hutchinson_traces(problem.model, problem.specs, batches, samples=self.samples,
                                   seed=seed)
        self.traces = traces
        dw, da = perturbations(problem.model, problem.specs, batches, problem.space,
                               self.quant_config)
        # A negative trace estimate (non-convex point or noise) would reward quantization.
        w_term = 0.5 * np.maximum(traces.weight, 0.0)[:, None] * dw
        a_term = 0.5 * np.maximum(traces.act, 0.0)[:, None] * da
        table = w_term[:, :, None] + a_term[:, None, :]
        for i, spec in enumerate(problem.specs):
            if spec.name in problem.space.pinned:
                table[i] = 0.0
        return table
