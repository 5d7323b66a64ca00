"""The ``hawq`` strategy: HAWQ-V3-style curvature-aware sensitivity + the same exact ILP as OHQ.

HAWQ-V3 (Yao et al., ICML 2021) scores quantizing layer l at b bits by the second-order change
of the loss under an isotropic-curvature assumption,
``Omega_l(b) = 1/2 (Tr(H_l)/n_l) ||Q_b(W_l) - W_l||^2``, and picks bits with an ILP under the
hardware budgets. Here ``Tr(H_l)`` is the Gauss-Newton trace (``haq.search.hawq._hessian``):
equal to the Hessian trace for piecewise-linear networks and never negative, so every free
layer's score falls strictly as its bits rise. HAWQ-V3 keeps activations at a fixed width; haq
also searches activation bits, so the same term is added for each layer's *input*,
``1/2 (Tr(H_x)/n_x) ||Q_a(x) - x||^2``, and the two are summed (the additive assumption shared
with OHQ).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from haq.device import on_cpu
from haq.errors import ConfigError, StrategyError
from haq.executors import Executor, map_parts
from haq.policy import FLOAT_INDEX, GRID_SIZE, bits_index
from haq.quantize import (
    QuantConfig,
    calibrate_,
    fold_batchnorm_,
    prepare_,
    quantized_layers,
    set_policy_,
)
from haq.runs import atomic_write_text
from haq.search._base import Progress, SearchProblem, SearchResult, register_strategy
from haq.search.hawq._hessian import CurvatureTraces, gauss_newton_traces
from haq.search.ohq._mqe import probe_bits
from haq.search.ohq._oneshot import ScoreIlpStrategy, calibration_inputs, labelled_batches
from haq.search.ohq._strategy import as_quant_config
from haq.specs import LayerSpec

CURVATURE_FILE = "hawq_curvature.json"


def curvature_inputs(problem: SearchProblem, count: int) -> tuple[list[torch.Tensor], str]:
    """Up to ``count`` input batches and where they came from: the training data if the
    problem has it, otherwise its calibration inputs (labels are never needed)."""
    if problem.train_data is not None:
        batches = labelled_batches(problem.train_data, count)
        if batches:
            return [x for x, _ in batches], "train"
    inputs = calibration_inputs(problem)
    if not inputs:
        raise StrategyError("hawq needs input batches to estimate curvature: give the search "
                            "problem training data (SearchProblem.train_data) or calibration "
                            "inputs")
    return inputs[:count], "calibration"


def perturbations(model: nn.Module, specs: Sequence[LayerSpec], inputs: Sequence[torch.Tensor],
                  space: Any, config: QuantConfig, executor: Executor | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``||Q_b(W)-W||^2`` and mean-per-batch ``||Q_b(x)-x||^2``: two ``[L, 9]`` arrays (NaN
    where ``space`` does not allow ``b``, 0 at float). ``executor`` spreads the layers over its
    workers (each calibrates its own copy alike); ``None`` probes in this process."""
    rows = map_parts(executor, _PerturbationProbe(model, specs, inputs, space, config),
                     len(specs))
    dw = np.stack([rows[i][0] for i in range(len(specs))]) if specs else np.zeros((0, GRID_SIZE))
    da = np.stack([rows[i][1] for i in range(len(specs))]) if specs else np.zeros((0, GRID_SIZE))
    return dw, da


class _PerturbationProbe:
    """Perturbation rows of some layers: ``{index: (weight row, input row)}``."""

    def __init__(self, model: nn.Module, specs: Sequence[LayerSpec],
                 inputs: Sequence[torch.Tensor], space: Any, config: QuantConfig) -> None:
        self.model, self.specs, self.inputs = model, list(specs), list(inputs)
        self.space, self.config = space, config

    def __call__(self, indices: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        specs = self.specs
        net = copy.deepcopy(self.model).eval()
        prepare_(net, [s.name for s in specs], self.config)
        calibrate_(net, self.inputs, max_batches=None)
        layers = quantized_layers(net)
        captured: dict[str, list[torch.Tensor]] = {specs[i].name: [] for i in indices}
        handles = [layers[name].register_forward_pre_hook(
            lambda m, args: captured[m.layer_name].append(args[0].detach()))
            for name in captured]
        try:
            with torch.no_grad():
                for x in self.inputs:
                    net(x)
        finally:
            for handle in handles:
                handle.remove()
        rows = {}
        with torch.no_grad():
            for i in indices:
                spec, layer = specs[i], layers[specs[i].name]
                dw, da = np.full(GRID_SIZE, np.nan), np.full(GRID_SIZE, np.nan)
                dw[FLOAT_INDEX] = da[FLOAT_INDEX] = 0.0
                w_bits, a_bits = probe_bits(self.space, spec)
                for b in w_bits:
                    set_policy_(net, {spec.name: (b, None)})
                    dw[bits_index(b)] = float(((layer.effective_weight() - layer.weight) ** 2)
                                              .sum())
                for b in a_bits:
                    set_policy_(net, {spec.name: (None, b)})
                    da[bits_index(b)] = float(np.mean(
                        [float(((layer.act_quant(x) - x) ** 2).sum())
                         for x in captured[spec.name]]))
                set_policy_(net, {spec.name: (None, None)})
                rows[i] = (dw, da)
        return rows


def curvature_score(weight_trace: np.ndarray, act_trace: np.ndarray, dw: np.ndarray,
                    da: np.ndarray) -> np.ndarray:
    """``[L, 9, 9]`` score ``1/2 (t_W dW[w] + t_x dx[a])`` from per-element traces ``[L]``."""
    w_term = 0.5 * weight_trace[:, None] * dw
    a_term = 0.5 * act_trace[:, None] * da
    return w_term[:, :, None] + a_term[:, None, :]


def convergence_warning(traces: CurvatureTraces, names: Sequence[str], rtol: float) -> str:
    """What did not converge, and how to get a better estimate."""
    rel = traces.relative_error().max(axis=1)
    worst = [f"{names[i]} ({rel[i]:.0%})" for i in np.argsort(-rel)[:3] if rel[i] > rtol]
    return (f"hawq: curvature traces did not reach {rtol:.0%} relative standard error after "
            f"{traces.probes} probes per batch (worst: {', '.join(worst)}); the policy rests on "
            f"noisy sensitivities: raise max_samples or batches")


@register_strategy("hawq")
class HawqStrategy(ScoreIlpStrategy):
    """Gauss-Newton trace x quantization perturbation sensitivity, then the exact ILP.

    Args:
        batches: input batches (of 128) for the curvature and perturbations.
        samples: curvature probes per batch in the first round (>= 2).
        max_samples: cap on probes per batch while the estimate is not precise enough.
        rtol: relative standard error every free layer's trace must reach; if the cap comes
            first the result carries a warning in ``extra["warnings"]``. 10 % moves a
            layer's score by far less than one bit does (about 4x per bit).
        quant_config: the quantizer whose perturbation is measured (use the final model's).
        ilp_time_limit: seconds the ILP may take.
    """

    def __init__(self, batches: int = 2, samples: int = 16, max_samples: int = 128,
                 rtol: float = 0.1, quant_config: QuantConfig | Mapping[str, Any] | None = None,
                 ilp_time_limit: float = 60.0) -> None:
        super().__init__(ilp_time_limit)
        for name, value in (("batches", batches), ("samples", samples),
                            ("max_samples", max_samples)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if samples < 2 or max_samples < samples:
            raise ConfigError(f"need 2 <= samples <= max_samples, got samples={samples}, "
                              f"max_samples={max_samples}")
        if isinstance(rtol, bool) or not isinstance(rtol, int | float) or not rtol > 0:
            raise ConfigError(f"rtol must be a number > 0 (e.g. 0.05), got {rtol!r}")
        self.batches, self.samples, self.max_samples = batches, samples, max_samples
        self.rtol = float(rtol)
        self.quant_config = as_quant_config(quant_config)
        self.traces: CurvatureTraces | None = None
        self.diagnostics: dict[str, Any] | None = None
        self._run_dir: Path | None = None

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "batches": self.batches, "samples": self.samples,
                "max_samples": self.max_samples, "rtol": self.rtol,
                "quant_config": self.quant_config.to_dict()}

    def score(self, problem: SearchProblem, seed: int) -> np.ndarray:
        if problem.model is None:
            raise StrategyError("hawq needs the float model in the search problem "
                                "(SearchProblem.model)")
        inputs, _ = curvature_inputs(problem, self.batches)
        model = on_cpu(problem.model)  # the probes are written for the CPU
        if self.quant_config.fold_bn:  # curvature and perturbation of the weights quantized
            model = copy.deepcopy(model).eval()
            with torch.no_grad():
                fold_batchnorm_(model, inputs[0][:1])
        free = [i for i, s in enumerate(problem.specs) if s.name not in problem.space.pinned]
        n = len(problem.specs)
        weight_trace, act_trace = np.zeros(n), np.zeros(n)
        if free:
            self.traces = gauss_newton_traces(
                model, [problem.specs[i] for i in free], inputs, probes=self.samples,
                max_probes=self.max_samples, rtol=self.rtol, seed=seed)
            weight_trace[free], act_trace[free] = self.traces.weight, self.traces.act
            self._save_diagnostics(self.traces, [problem.specs[i].name for i in free])
        dw, da = perturbations(model, problem.specs, inputs, problem.space,
                               self.quant_config, problem.executor)
        table = curvature_score(weight_trace, act_trace, dw, da)
        for i, spec in enumerate(problem.specs):
            if spec.name in problem.space.pinned:
                table[i] = 0.0
        return table

    def _save_diagnostics(self, traces: CurvatureTraces, names: list[str]) -> None:
        self.diagnostics = {**traces.to_dict(), "layers": names, "rtol": self.rtol}
        if not traces.converged:
            self.diagnostics["warning"] = convergence_warning(traces, names, self.rtol)
        if self._run_dir is not None:  # a resumed run reads them back instead of re-probing
            atomic_write_text(self._run_dir / CURVATURE_FILE,
                              json.dumps(self.diagnostics, indent=1) + "\n")

    def run(self, problem: SearchProblem, *, seed: int = 0, run_dir: Path | None = None,
            resume: bool = False, progress: Progress | None = None) -> SearchResult:
        self._run_dir = Path(run_dir) if run_dir is not None else None
        self.traces, self.diagnostics = None, None
        result = super().run(problem, seed=seed, run_dir=run_dir, resume=resume,
                             progress=progress)
        diagnostics = self.diagnostics
        if diagnostics is None and self._run_dir is not None \
                and (self._run_dir / CURVATURE_FILE).exists():
            diagnostics = json.loads((self._run_dir / CURVATURE_FILE).read_text())
        if diagnostics is not None:
            result.extra["curvature"] = diagnostics
            if "warning" in diagnostics:
                result.extra.setdefault("warnings", []).append(diagnostics["warning"])
        return result
