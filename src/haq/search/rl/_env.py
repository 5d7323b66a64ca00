"""HAQ's decision process: which steps an episode has, what the agent sees, action -> bits.

An episode walks the layers in execution order with one step per free operand: the weight bits
and then the input-activation bits of each layer (linear mode), or weight bits only
(``BitSpace.weights_only``, HAQ's k-means/size mode). Pinned operands are not steps.

State of a step, every entry in [0, 1] (reference/haq.md section 2, with the official bugs
fixed):

====  =========================================================================================
 0-7  static, min-max normalised over layers (a constant column is 0): layer index,
      is-depthwise, in channels (Linear: in features), out channels, stride (Linear: 0),
      kernel (Linear: 1), weight count, input feature-map H*W (Linear: in features)
 8    1 for a weight step, 0 for an activation step (the official flag was inconsistent)
 9    the previous step's executed action in [0, 1]; 1.0 before the first step
10    (budget features) how much of the budgets' room above the all-minimum policy the
      decisions so far use, undecided operands counted at their minimum; max over budgets
11    (budget features) this layer's share of the total cost range; max over budgets
====  =========================================================================================

The dynamic entries are a pure function of the decisions so far, so every episode starts from a
clean state (the official code carried the previous episode's action into the next).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from haq.cost import Projector
from haq.policy import grid_indices
from haq.specs import LayerSpec

STATIC_FEATURES = 8


@dataclass(frozen=True)
class Step:
    """One decision: ``operand`` ("w" or "a") of layer ``layer``, bits among ``choices``.

    ``choices`` are the candidate widths in ascending order, ``lo`` and ``hi`` the first and
    last; left empty, they are every integer in [lo, hi].
    """

    layer: int
    operand: str
    lo: int
    hi: int
    choices: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.choices:
            object.__setattr__(self, "choices", tuple(range(self.lo, self.hi + 1)))


def _static_features(specs: Sequence[LayerSpec]) -> np.ndarray:
    rows = []
    for s in specs:
        linear = s.kind == "linear"
        rows.append([
            s.index, float(s.is_depthwise), s.in_channels, s.out_channels,
            0 if linear else max(s.stride), 1 if linear else max(s.kernel), s.weight_params,
            s.in_channels if linear else s.in_size[0] * s.in_size[1],
        ])
    raw = np.asarray(rows, dtype=np.float64)
    lo, span = raw.min(axis=0), np.ptp(raw, axis=0)
    return np.where(span > 0, (raw - lo) / np.where(span > 0, span, 1.0), 0.0)


class BitEnv:
    """Steps, states and the action <-> bits mapping for one search problem.

    Args:
        specs: the layers, in execution order.
        projector: the problem's projection; it carries the bounds, pins, costs and limits.
        budget_features: append state entries 10 and 11 (see the module docstring).
    """

    def __init__(self, specs: Sequence[LayerSpec], projector: Projector,
                 budget_features: bool) -> None:
        self.specs, self.projector, self.budget_features = list(specs), projector, budget_features
        p = projector
        self.steps: list[Step] = []
        for i in range(len(self.specs)):
            for op, choices in (("w", p.w_choices[i]), ("a", p.a_choices[i])):
                if len(choices) > 1:
                    self.steps.append(Step(i, op, choices[0], choices[-1], choices))
        self.static = _static_features(self.specs)
        self.state_dim = STATIC_FEATURES + 2 + (2 if budget_features else 0)
        self._setup_budget_features()

    # -- action <-> bits ------------------------------------------------------------------------
    @staticmethod
    def action_to_bits(step: Step, action: float) -> int:
        """Equal-width bins: [0, 1] is cut into one bin per candidate, in ascending order.

        For a range this is the paper's round(a * (hi - lo + 1) + lo - 0.5), written with floor
        so that a bin edge never depends on round-half-to-even; for a candidate set such as
        {2, 4, 8} the action picks a candidate, never a width between two of them.
        """
        levels = len(step.choices)
        return step.choices[int(min(np.floor(action * levels), levels - 1))]

    @staticmethod
    def bits_to_action(step: Step, bits: int) -> float:
        """Centre of the bin of ``bits``: the action stored when the projection changed bits."""
        return (step.choices.index(int(bits)) + 0.5) / len(step.choices)

    def assemble(self, step_bits: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Per-step bits -> (w_bits, a_bits) arrays; operands that are not steps keep their pin."""
        w, a = self.projector.w_lo.copy(), self.projector.a_lo.copy()
        for step, bits in zip(self.steps, step_bits, strict=True):
            (w if step.operand == "w" else a)[step.layer] = bits
        return w, a

    def step_bits(self, w: np.ndarray, a: np.ndarray) -> list[int]:
        """(w_bits, a_bits) arrays -> per-step bits (the inverse of ``assemble``)."""
        return [int((w if s.operand == "w" else a)[s.layer]) for s in self.steps]

    # -- states ---------------------------------------------------------------------------------
    def _setup_budget_features(self) -> None:
        p = self.projector
        rows = np.arange(len(self.specs))
        self._low = p.costs[:, rows, grid_indices(p.w_lo), grid_indices(p.a_lo)]
        high = p.costs[:, rows, grid_indices(p.w_hi), grid_indices(p.a_hi)]
        cost_range = np.maximum(high - self._low, 0.0)
        total = cost_range.sum(axis=1, keepdims=True)
        share = np.where(total > 0, cost_range / np.where(total > 0, total, 1.0), 0.0)
        self._share = share.max(axis=0) if len(share) else np.zeros(len(self.specs))
        self._room = p.limits - self._low.sum(axis=1)

    def _budget_used(self, w: np.ndarray, a: np.ndarray) -> float:
        p = self.projector
        if not len(p.limits):
            return 0.0
        now = p.costs[:, np.arange(len(w)), grid_indices(w), grid_indices(a)].sum(axis=1)
        extra = now - self._low.sum(axis=1)
        used = np.where(self._room > 0, extra / np.where(self._room > 0, self._room, 1.0), 1.0)
        return float(np.clip(used, 0.0, 1.0).max())

    def state(self, t: int, decided: Sequence[int], prev_action: float) -> np.ndarray:
        """State of step ``t`` given the bits decided at steps 0..t-1."""
        step = self.steps[t]
        parts = [self.static[step.layer], [1.0 if step.operand == "w" else 0.0, prev_action]]
        if self.budget_features:
            w, a = self.assemble(list(decided) + self.step_bits(*self._minimum())[t:])
            parts.append([self._budget_used(w, a), self._share[step.layer]])
        return np.concatenate(parts).astype(np.float32)

    def states(self, actions: Sequence[float], bits: Sequence[int]) -> np.ndarray:
        """States of every step of an episode that executed ``actions`` / ``bits``: [T, D]."""
        prev = [1.0, *actions[:-1]]
        return np.stack([self.state(t, bits[:t], prev[t]) for t in range(len(self.steps))])

    def _minimum(self) -> tuple[np.ndarray, np.ndarray]:
        return self.projector.w_lo, self.projector.a_lo
