"""Mask-guided quantization estimation (MQE): how much quantizing one layer moves the output.

For every layer l and every candidate bit width b, a mask turns on quantization of *only* layer
l (everything else stays float) and the output distribution is compared with the float one:
``Omega_l(b) = mean over the probe batch of KL(p_float || p_masked)``. Weights and activations
are probed separately (weights at b with a float input, then the input at b with float
weights), so the table costs ``|L| * (|B_w| + |B_a|)`` forward passes, no labels and no
backward pass. The (w, a) score is then assumed additive:
``Omega_l(w, a) = Omega_l^w(w) + Omega_l^a(a)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the universal spelling
from torch import nn

from haq.errors import ConfigError
from haq.executors import Executor, map_parts
from haq.policy import FLOAT_INDEX, GRID_SIZE, BitSpace, bits_index
from haq.quantize import QuantConfig, calibrate_, prepare_, set_policy_
from haq.specs import LayerSpec


@dataclass
class Sensitivity:
    """Per-layer, per-bit sensitivity, probed separately for weights and activations.

    Attributes:
        weight: ``[L, 9]`` score of layer l's weights at ``bits_index(b)``; NaN = not probed,
            0 at the float index.
        act: ``[L, 9]`` the same for layer l's input activation.
        forward_passes: how many probe forward passes it took.
    """

    weight: np.ndarray
    act: np.ndarray
    forward_passes: int = 0

    def table(self) -> np.ndarray:
        """``[L, 9, 9]`` additive score ``weight[l, w] + act[l, a]``."""
        return self.weight[:, :, None] + self.act[:, None, :]


def kl_from_logits(reference: torch.Tensor, probe: torch.Tensor) -> float:
    """Mean over the batch of KL(softmax(reference) || softmax(probe)), in nats, >= 0."""
    ref = F.log_softmax(reference.flatten(1).double(), dim=1)
    new = F.log_softmax(probe.flatten(1).double(), dim=1)
    kl = (ref.exp() * (ref - new)).sum(dim=1).mean()
    return max(0.0, float(kl))


def probe_bits(space: BitSpace, spec: LayerSpec) -> tuple[list[int], list[int]]:
    """Integer (weight, activation) bit widths worth probing for one layer.

    Pinned layers have a single choice, so they need no probe; float choices score 0.
    """
    if spec.name in space.pinned:
        return [], []
    ws, as_ = space.allowed(spec)
    return ([int(b) for b in ws if b is not None], [int(b) for b in as_ if b is not None])


def mqe_sensitivity(model: nn.Module, specs: Sequence[LayerSpec], inputs: Sequence[torch.Tensor],
                    space: BitSpace, *, config: QuantConfig | None = None,
                    divergence: Callable[[torch.Tensor, torch.Tensor], float] = kl_from_logits,
                    executor: Executor | None = None) -> Sensitivity:
    """Probe every layer at every allowed bit width, one layer at a time.

    Args:
        model: the float model; a private copy is quantized, ``model`` is untouched.
        specs: its quantizable layers.
        inputs: probe batches (synthetic or calibration); they also calibrate the activation
            ranges of the copy, so the estimate needs no other data.
        space: which bits each layer may take (pinned layers are skipped).
        config: how to quantize (the same ``QuantConfig`` the final model will use).
        divergence: ``(float_logits, masked_logits) -> score``; KL by default.
        executor: spread the layers over its workers (each calibrates its own copy the same
            way, so the scores do not depend on it); ``None`` probes in this process.

    Returns:
        The separate weight and activation scores (NaN where not probed).
    """
    if not inputs:
        raise ConfigError("MQE needs at least one probe batch")
    rows = map_parts(executor, _MqeProbe(model, specs, inputs, space, config, divergence),
                     len(specs))
    weight = np.full((len(specs), GRID_SIZE), np.nan)
    act = np.full((len(specs), GRID_SIZE), np.nan)
    for i, (weight_row, act_row) in rows.items():
        weight[i], act[i] = weight_row, act_row
    probed = sum(len(w) + len(a) for w, a in (probe_bits(space, s) for s in specs))
    return Sensitivity(weight, act, (1 + probed) * len(inputs))


class _MqeProbe:
    """MQE rows of some layers: ``{index: (weight row, act row)}``; a job for an executor."""

    def __init__(self, model: nn.Module, specs: Sequence[LayerSpec],
                 inputs: Sequence[torch.Tensor], space: BitSpace, config: QuantConfig | None,
                 divergence: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
        self.model, self.specs, self.inputs = model, list(specs), list(inputs)
        self.space, self.config, self.divergence = space, config, divergence

    def __call__(self, layers: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        probe = copy.deepcopy(self.model).eval()
        prepare_(probe, [s.name for s in self.specs], self.config)
        calibrate_(probe, self.inputs, max_batches=None)
        rows = {}
        with torch.no_grad():
            reference = [probe(x) for x in self.inputs]

            def score(layer: str, bits: tuple[int | None, int | None]) -> float:
                set_policy_(probe, {layer: bits})
                try:
                    return float(np.mean([self.divergence(ref, probe(x))
                                          for ref, x in zip(reference, self.inputs,
                                                            strict=True)]))
                finally:
                    set_policy_(probe, {layer: (None, None)})

            for i in layers:
                spec = self.specs[i]
                weight, act = np.full(GRID_SIZE, np.nan), np.full(GRID_SIZE, np.nan)
                weight[FLOAT_INDEX] = act[FLOAT_INDEX] = 0.0
                w_bits, a_bits = probe_bits(self.space, spec)
                for b in w_bits:
                    weight[bits_index(b)] = score(spec.name, (b, None))
                for b in a_bits:
                    act[bits_index(b)] = score(spec.name, (None, b))
                rows[i] = (weight, act)
        return rows


def score_table(sens: Sensitivity, space: BitSpace, specs: Sequence[LayerSpec]) -> np.ndarray:
    """The ``[L, 9, 9]`` ILP score: additive sensitivity, 0 for pinned layers' single choice."""
    table = sens.table()
    for i, spec in enumerate(specs):
        if spec.name in space.pinned:
            table[i] = 0.0
    return table
