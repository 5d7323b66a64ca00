"""The one encoding between policies and the arrays that strategies, cost tables and budgets use.

Two array forms exist, and this module is the only place that converts between them:

- **bit arrays**: one int per layer, the bit width itself, ``FLOAT_BITS`` (0) for a float
  operand. Strategies propose these, the projection lowers them, journals store them (as JSON
  lists with ``null`` for float).
- **grid indices**: the position of a bit width on the ``GRID_SIZE``-long axis of cost and
  mask arrays (``[layers, GRID_SIZE, GRID_SIZE]``): ``bits - 1`` for ``MIN_BITS..MAX_BITS`` and
  ``FLOAT_INDEX`` for float.

The grid always spans every representable width (1..8 plus float), whatever a search may
choose: which widths are *allowed* is the ``BitSpace``'s business (its mask over this grid),
so a space restricted to a candidate set such as {2, 4, 8} needs no other encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from haq.errors import PolicyError
from haq.policy._policy import MAX_BITS, MIN_BITS, LayerBits, Policy
from haq.specs import LayerSpec

FLOAT_BITS = 0  # a float operand in bit arrays
FLOAT_INDEX = MAX_BITS  # a float operand on the grid axis
GRID_SIZE = MAX_BITS + 1  # grid axis length: widths MIN_BITS..MAX_BITS, then float
INT_BITS: tuple[int, ...] = tuple(range(MIN_BITS, MAX_BITS + 1))  # the integer widths, in order
GRID_BITS: tuple[int | None, ...] = (*INT_BITS, None)  # the width at each grid index


def bits_index(bits: int | None) -> int:
    """Grid index of one bit width: ``bits - 1`` for 1..8, ``FLOAT_INDEX`` for float (None)."""
    return FLOAT_INDEX if bits is None else int(bits) - 1


def index_bits(index: int) -> int | None:
    """Bit width at one grid index (``None`` = float); the inverse of ``bits_index``."""
    return GRID_BITS[int(index)]


def grid_indices(bits: np.ndarray) -> np.ndarray:
    """Bit arrays (0 = float) -> grid indices, element-wise."""
    bits = np.asarray(bits)
    return np.where(bits == FLOAT_BITS, FLOAT_INDEX, bits - 1)


def check_bit_arrays(w_bits: Any, a_bits: Any, layers: int) -> tuple[np.ndarray, np.ndarray]:
    """``(w, a)`` as int arrays of shape ``[..., layers]`` holding 0 (float) or 1-8.

    Raises:
        PolicyError: wrong shapes, non-integers, or widths outside the grid.
    """
    w, a = np.asarray(w_bits), np.asarray(a_bits)
    if w.shape != a.shape or w.ndim == 0 or w.shape[-1] != layers:
        raise PolicyError(f"bit arrays must both have shape [..., {layers}] (one entry per "
                          f"layer); got {w.shape} and {a.shape}")
    if not (np.issubdtype(w.dtype, np.integer) and np.issubdtype(a.dtype, np.integer)):
        raise PolicyError(f"bit arrays must hold integers ({FLOAT_BITS} = float, "
                          f"{MIN_BITS}-{MAX_BITS} = bits)")
    for name, arr in (("w_bits", w), ("a_bits", a)):
        if arr.size and (arr.min() < FLOAT_BITS or arr.max() > MAX_BITS):
            raise PolicyError(f"{name} must be {FLOAT_BITS} (float) or {MIN_BITS}-{MAX_BITS}; "
                              f"got values in [{arr.min()}, {arr.max()}]")
    return w, a


def policy_arrays(policy: Policy, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A policy's bits as two int arrays in the order of ``names`` (float -> 0).

    Raises:
        PolicyError: the policy and ``names`` disagree on the layers.
    """
    unknown = [n for n in policy.layers if n not in set(names)]
    missing = [n for n in names if n not in policy.layers]
    if unknown or missing:
        raise PolicyError(f"policy and layer list disagree: unknown to the model "
                          f"{unknown[:5]}, missing from the policy {missing[:5]}; use the "
                          "policy made for this model")
    w = np.array([policy.layers[n].w_bits or FLOAT_BITS for n in names], dtype=np.int64)
    a = np.array([policy.layers[n].a_bits or FLOAT_BITS for n in names], dtype=np.int64)
    return w, a


def policy_from_bits(specs: Sequence[LayerSpec], w: Any, a: Any, /, **provenance: Any) -> Policy:
    """The policy of two bit arrays in spec order (0 = float)."""
    layers = {s.name: LayerBits(int(wb) or None, int(ab) or None)
              for s, wb, ab in zip(specs, w, a, strict=True)}
    return Policy(layers, dict(provenance))


def bits_to_json(bits: Any) -> list[int | None]:
    """A bit array as a JSON list (``null`` = float), as journals store it."""
    return [int(b) or None for b in bits]


def bits_from_json(bits: Sequence[int | None]) -> np.ndarray:
    """The inverse of ``bits_to_json``."""
    return np.array([b or FLOAT_BITS for b in bits], dtype=np.int64)


def record_key(record: dict[str, Any]) -> tuple[int, ...]:
    """A journal record's executed bits as one hashable key (weights then activations)."""
    pol = record["policy"]
    return (*map(int, bits_from_json(pol["w_bits"])), *map(int, bits_from_json(pol["a_bits"])))


def policy_from_record(specs: Sequence[LayerSpec], record: dict[str, Any], /,
                       **provenance: Any) -> Policy:
    """The executed policy of a journal record (``record["policy"]``)."""
    pol = record["policy"]
    return policy_from_bits(specs, bits_from_json(pol["w_bits"]), bits_from_json(pol["a_bits"]),
                            **provenance)
