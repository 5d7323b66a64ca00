"""BitSpace: which bit widths a search may choose, per operand and per layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from haq.errors import ConfigError
from haq.policy._codec import GRID_SIZE, bits_index
from haq.policy._policy import MAX_BITS, MIN_BITS, LayerBits, Policy
from haq.specs import LayerSpec


def _check_range(name: str, lo: int, hi: int) -> None:
    if not MIN_BITS <= lo <= hi <= MAX_BITS:
        raise ConfigError(f"{name} range ({lo}, {hi}) must satisfy "
                          f"{MIN_BITS} <= min <= max <= {MAX_BITS}")


@dataclass(frozen=True)
class BitSpace:
    """The allowed bit widths.

    Args:
        w_range: inclusive (min, max) weight bits.
        a_range: inclusive (min, max) activation bits.
        pinned: layer name -> fixed LayerBits. Pinning is always explicit: HAQ's habit of keeping
            the first and last layer at 8 bits is ``BitSpace.pin_ends(specs)``, not a side effect.
        weights_only: search weight bits only (HAQ's k-means / model-size mode); activations
            then take ``fixed_a_bits`` (``None`` keeps them in float).
        fixed_a_bits: the activation bits used when ``weights_only``.
    """

    w_range: tuple[int, int] = (2, 8)
    a_range: tuple[int, int] = (2, 8)
    pinned: Mapping[str, LayerBits] = field(default_factory=dict)
    weights_only: bool = False
    fixed_a_bits: int | None = None

    def __post_init__(self) -> None:
        _check_range("w_bits", *self.w_range)
        _check_range("a_bits", *self.a_range)

    def pin_ends(self, specs: Sequence[LayerSpec], bits: int = 8) -> BitSpace:
        """A copy with the first and last layer pinned at ``bits`` for weights and activations."""
        a = None if self.weights_only and self.fixed_a_bits is None else bits
        pins = dict(self.pinned)
        for spec in (specs[0], specs[-1]):
            pins[spec.name] = LayerBits(bits, a)
        return BitSpace(self.w_range, self.a_range, pins, self.weights_only, self.fixed_a_bits)

    def allowed(self, spec: LayerSpec) -> tuple[list[int], list[int | None]]:
        """(weight choices, activation choices) for one layer."""
        if spec.name in self.pinned:
            pin = self.pinned[spec.name]
            return [pin.w_bits], [pin.a_bits]  # type: ignore[list-item]
        w = list(range(self.w_range[0], self.w_range[1] + 1))
        if self.weights_only:
            return w, [self.fixed_a_bits]
        return w, list(range(self.a_range[0], self.a_range[1] + 1))

    def mask(self, specs: Sequence[LayerSpec]) -> np.ndarray:
        """Boolean ``[layers, GRID_SIZE, GRID_SIZE]`` array, True where (w_bits, a_bits) is
        allowed; indexed like ``CostTable.full_array`` (``haq.policy.bits_index``).
        """
        out = np.zeros((len(specs), GRID_SIZE, GRID_SIZE), dtype=bool)
        for i, spec in enumerate(specs):
            ws, as_ = self.allowed(spec)
            for w in ws:
                for a in as_:
                    out[i, bits_index(w), bits_index(a)] = True
        return out

    def contains(self, policy: Policy, specs: Sequence[LayerSpec]) -> bool:
        for spec in specs:
            bits = policy[spec.name]
            ws, as_ = self.allowed(spec)
            if bits.w_bits not in ws or bits.a_bits not in as_:
                return False
        return True
