"""BitSpace: which bit widths a search may choose, per operand and per layer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from haq.errors import ConfigError
from haq.policy._codec import GRID_SIZE, bits_index
from haq.policy._policy import MAX_BITS, MIN_BITS, LayerBits, Policy
from haq.specs import LayerSpec

DEFAULT_RANGE = (2, 8)


def _check_range(name: str, lo: int, hi: int) -> None:
    if not MIN_BITS <= lo <= hi <= MAX_BITS:
        raise ConfigError(f"{name} range ({lo}, {hi}) must satisfy "
                          f"{MIN_BITS} <= min <= max <= {MAX_BITS}")


def candidate_set(name: str, values: Iterable[Any]) -> tuple[int, ...]:
    """A validated candidate set, sorted ascending.

    Raises:
        ConfigError: empty, not integers, outside ``MIN_BITS..MAX_BITS`` or repeated.
    """
    values = list(values)
    if not values:
        raise ConfigError(f"{name} needs at least one bit width ({MIN_BITS}-{MAX_BITS})")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise ConfigError(f"{name}: bit widths must be integers {MIN_BITS}-{MAX_BITS}, "
                              f"got {v!r}")
        if not MIN_BITS <= int(v) <= MAX_BITS:
            raise ConfigError(f"{name}: {int(v)} bits is outside {MIN_BITS}-{MAX_BITS}")
    ints = [int(v) for v in values]
    if len(set(ints)) != len(ints):
        raise ConfigError(f"{name} lists a bit width twice ({ints}); give each width once")
    return tuple(sorted(ints))


def _resolve(name: str, rng: Sequence[int] | None, bits: Iterable[Any] | None
             ) -> tuple[tuple[int, int], tuple[int, ...]]:
    """(envelope range, candidate set) from a range, a set, or neither (the default range).

    Both may be given only if they agree (the range is the set's min and max), so that
    ``dataclasses.replace`` on a normalised space keeps working.
    """
    if bits is None:
        lo, hi = (int(rng[0]), int(rng[1])) if rng is not None else DEFAULT_RANGE
        _check_range(name, lo, hi)
        return (lo, hi), tuple(range(lo, hi + 1))
    cands = candidate_set(f"{name} candidates", bits)
    if rng is not None and (int(rng[0]), int(rng[1])) != (cands[0], cands[-1]):
        raise ConfigError(f"{name}: give either a range ({tuple(rng)}) or a candidate set "
                          f"({list(cands)}), not both")
    return (cands[0], cands[-1]), cands


def _set_text(bits: Sequence[int]) -> str:
    """``8`` for one width, ``2-8`` for a contiguous set, ``{2, 4, 8}`` otherwise."""
    if len(bits) == 1:
        return str(bits[0])
    if list(bits) == list(range(bits[0], bits[-1] + 1)):
        return f"{bits[0]}-{bits[-1]}"
    return "{" + ", ".join(map(str, bits)) + "}"


@dataclass(frozen=True)
class BitSpace:
    """The allowed bit widths.

    Each operand takes an inclusive range (``w_range=(2, 8)``, shorthand for every integer in
    it) or an explicit candidate set (``w_bits=(2, 4, 8)``); a single candidate fixes that
    operand for every free layer (``a_bits=(8,)`` is a weights-only search at 8-bit
    activations). After construction both fields are filled: ``w_bits`` is the sorted set,
    ``w_range`` its (min, max).

    Args:
        w_range: inclusive (min, max) weight bits; 2-8 if neither it nor ``w_bits`` is given.
        a_range: inclusive (min, max) activation bits; 2-8 likewise.
        pinned: layer name -> fixed LayerBits. Pinning is always explicit: HAQ's habit of keeping
            the first and last layer at 8 bits is ``BitSpace.pin_ends(specs)``, not a side effect.
        weights_only: search weight bits only (HAQ's k-means / model-size mode); activations
            then take ``fixed_a_bits`` (``None`` keeps them in float).
        fixed_a_bits: the activation bits used when ``weights_only``.
        w_bits: candidate weight widths (1-8, each once), e.g. ``(2, 4, 8)``.
        a_bits: candidate activation widths.

    Raises:
        ConfigError: a range or set outside 1-8, an empty or repeated set, or a range and a
            set that disagree.

    Example:
        >>> BitSpace(w_bits=(8, 2, 4), a_bits=(8,)).w_bits
        (2, 4, 8)
    """

    w_range: tuple[int, int] | None = None
    a_range: tuple[int, int] | None = None
    pinned: Mapping[str, LayerBits] = field(default_factory=dict)
    weights_only: bool = False
    fixed_a_bits: int | None = None
    w_bits: tuple[int, ...] | None = None
    a_bits: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for op in ("w", "a"):
            rng, bits = _resolve(f"{op}_bits", getattr(self, f"{op}_range"),
                                 getattr(self, f"{op}_bits"))
            object.__setattr__(self, f"{op}_range", rng)
            object.__setattr__(self, f"{op}_bits", bits)

    @property
    def w_candidates(self) -> tuple[int, ...]:
        """The weight candidates of free layers, ascending."""
        return self.w_bits or ()

    @property
    def a_candidates(self) -> tuple[int | None, ...]:
        """The activation candidates of free layers, ascending (``(None,)`` = float)."""
        if self.weights_only:
            return (self.fixed_a_bits,)
        return self.a_bits or ()

    def describe(self) -> str:
        """The free layers' candidates in words, e.g. ``w {2, 4, 8}, a 8``."""
        acts = self.a_candidates
        if acts == (None,):
            a = "a float"
        else:
            a = "a " + _set_text([b for b in acts if b is not None])
        return f"w {_set_text(self.w_candidates)}, {a}"

    def pin_ends(self, specs: Sequence[LayerSpec], bits: int = 8) -> BitSpace:
        """A copy with the first and last layer pinned at ``bits`` for weights and activations."""
        a = None if self.weights_only and self.fixed_a_bits is None else bits
        pins = dict(self.pinned)
        for spec in (specs[0], specs[-1]):
            pins[spec.name] = LayerBits(bits, a)
        return BitSpace(pinned=pins, weights_only=self.weights_only,
                        fixed_a_bits=self.fixed_a_bits, w_bits=self.w_bits, a_bits=self.a_bits)

    def allowed(self, spec: LayerSpec) -> tuple[list[int], list[int | None]]:
        """(weight choices, activation choices) for one layer, each ascending."""
        if spec.name in self.pinned:
            pin = self.pinned[spec.name]
            return [pin.w_bits], [pin.a_bits]  # type: ignore[list-item]
        return list(self.w_candidates), list(self.a_candidates)

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

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; a contiguous set is written as its range (the haq 0.1.0 form)."""
        out: dict[str, Any] = {}
        for op, bits in (("w", self.w_candidates), ("a", self.a_bits or ())):
            if list(bits) == list(range(bits[0], bits[-1] + 1)):
                out[f"{op}_range"] = [bits[0], bits[-1]]
            else:
                out[f"{op}_bits"] = list(bits)
        out["pinned"] = {k: [v.w_bits, v.a_bits] for k, v in sorted(self.pinned.items())}
        out["weights_only"] = self.weights_only
        out["fixed_a_bits"] = self.fixed_a_bits
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BitSpace:
        """The inverse of ``to_dict``.

        Raises:
            ConfigError: malformed fields.
        """
        try:
            pins = {k: LayerBits(*v) for k, v in dict(data.get("pinned", {})).items()}
            return cls(w_range=_pair(data.get("w_range")), a_range=_pair(data.get("a_range")),
                       pinned=pins, weights_only=bool(data.get("weights_only", False)),
                       fixed_a_bits=data.get("fixed_a_bits"),
                       w_bits=_tuple(data.get("w_bits")), a_bits=_tuple(data.get("a_bits")))
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"malformed bit space {dict(data)!r}: {exc}") from exc


def _pair(value: Any) -> tuple[int, int] | None:
    return None if value is None else (int(value[0]), int(value[1]))


def _tuple(value: Any) -> tuple[int, ...] | None:
    return None if value is None else tuple(value)
