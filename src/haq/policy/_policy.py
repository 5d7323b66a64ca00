"""Policy: which bit widths each layer runs at. A plain data structure that round-trips to JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from haq.errors import PolicyError
from haq.specs import LayerSpec

FORMAT_NAME = "haq-policy"
FORMAT_VERSION = 1
MIN_BITS, MAX_BITS = 1, 8


def _check_bits(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise PolicyError(f"{where}: bits must be an integer {MIN_BITS}-{MAX_BITS} or null "
                          f"(keep float), got {value!r}")
    if not MIN_BITS <= int(value) <= MAX_BITS:
        raise PolicyError(f"{where}: {int(value)} bits is outside {MIN_BITS}-{MAX_BITS}; "
                          "use null to keep the layer in float")
    return int(value)


@dataclass(frozen=True)
class LayerBits:
    """Bit widths of one layer: weights and the layer's input activation. ``None`` keeps float."""

    w_bits: int | None
    a_bits: int | None

    def __post_init__(self) -> None:
        _check_bits(self.w_bits, "w_bits")
        _check_bits(self.a_bits, "a_bits")


@dataclass
class Policy:
    """Per-layer bit widths, keyed by module path, in execution order.

    ``provenance`` records where the policy came from (haq version, cost model, budget, seed,
    strategy); it is carried through JSON untouched.

    Example:
        >>> p = Policy({"conv1": LayerBits(8, 8), "fc": LayerBits(4, None)})
        >>> Policy.from_json(p.to_json()) == p
        True
    """

    layers: dict[str, LayerBits]
    provenance: dict[str, Any] = field(default_factory=dict)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def uniform(cls, specs: Sequence[LayerSpec], w_bits: int | None, a_bits: int | None,
                **provenance: Any) -> Policy:
        return cls({s.name: LayerBits(w_bits, a_bits) for s in specs}, dict(provenance))

    @classmethod
    def from_arrays(cls, specs: Sequence[LayerSpec], w_bits: Iterable[int],
                    a_bits: Iterable[int], **provenance: Any) -> Policy:
        w, a = list(w_bits), list(a_bits)
        if not len(w) == len(a) == len(specs):
            raise PolicyError(f"got {len(w)} weight and {len(a)} activation bit widths for "
                              f"{len(specs)} layers; give one of each per layer")
        pairs = zip(specs, w, a, strict=True)
        layers = {s.name: LayerBits(int(wb), int(ab)) for s, wb, ab in pairs}
        return cls(layers, dict(provenance))

    # -- access -------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> LayerBits:
        return self.layers[name]

    def __len__(self) -> int:
        return len(self.layers)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and self.layers == other.layers

    def arrays(self, specs: Sequence[LayerSpec]) -> tuple[np.ndarray, np.ndarray]:
        """Bits as two int arrays in spec order; a float (``None``) entry becomes 0."""
        from haq.policy._codec import policy_arrays

        self.validate(specs)
        return policy_arrays(self, [s.name for s in specs])

    def validate(self, specs: Sequence[LayerSpec]) -> None:
        """Raise PolicyError unless the policy names exactly the layers in ``specs``."""
        known = [s.name for s in specs]
        unknown = [n for n in self.layers if n not in set(known)]
        if unknown:
            more = " ..." if len(known) > 8 else ""
            raise PolicyError(f"policy names layer(s) the model does not have: {unknown[:5]}; "
                              f"the model's layers are {known[:8]}{more} "
                              "(`haq specs MODEL` lists them)")
        missing = [n for n in known if n not in self.layers]
        if missing:
            raise PolicyError(f"policy has no entry for layer(s) {missing[:5]}; give every layer "
                              "an entry (null bits keep a layer in float)")

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "layers": {n: {"w_bits": b.w_bits, "a_bits": b.a_bits} for n, b in self.layers.items()},
            "provenance": self.provenance,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any],
                  specs: Sequence[LayerSpec] | None = None) -> Policy:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT_NAME:
            raise PolicyError(f"not a haq policy: expected a JSON object with \"format\": "
                              f"\"{FORMAT_NAME}\"")
        version = data.get("version")
        if version != FORMAT_VERSION:
            raise PolicyError(f"policy format version {version!r} is not supported; this haq "
                              f"reads version {FORMAT_VERSION}")
        raw_layers = data.get("layers")
        if not isinstance(raw_layers, Mapping) or not raw_layers:
            raise PolicyError("policy \"layers\" must be a non-empty object of "
                              "{layer name: {\"w_bits\": int|null, \"a_bits\": int|null}}")
        layers = {}
        for name, entry in raw_layers.items():
            if not isinstance(entry, Mapping) or set(entry) != {"w_bits", "a_bits"}:
                raise PolicyError(f"layer {name!r}: expected exactly {{\"w_bits\": ..., "
                                  f"\"a_bits\": ...}} (null keeps float), got {entry!r}")
            layers[name] = LayerBits(_check_bits(entry["w_bits"], f"layer {name!r} w_bits"),
                                     _check_bits(entry["a_bits"], f"layer {name!r} a_bits"))
        provenance = data.get("provenance", {})
        if not isinstance(provenance, Mapping):
            raise PolicyError("policy \"provenance\" must be a JSON object")
        policy = cls(layers, dict(provenance))
        if specs is not None:
            policy.validate(specs)
        return policy

    @classmethod
    def from_json(cls, text: str, specs: Sequence[LayerSpec] | None = None) -> Policy:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise PolicyError(f"policy is not valid JSON: {err}") from err
        return cls.from_dict(data, specs)

    def save(self, path: str | Path) -> None:
        """Write atomically: a crash never leaves a half-written policy file."""
        from haq.runs import atomic_write_text

        atomic_write_text(Path(path), self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path, specs: Sequence[LayerSpec] | None = None) -> Policy:
        path = Path(path)
        if not path.is_file():
            raise PolicyError(f"policy file {path} does not exist")
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            raise PolicyError(f"policy file {path} is not UTF-8 text ({err.reason} at byte "
                              f"{err.start}); save it as UTF-8 JSON") from None
        return cls.from_json(text, specs)

    def summary(self) -> str:
        """Short text like 'w[8,4,4] a[8,6,5]' for logs and progress bars."""
        w = ",".join("f" if b.w_bits is None else str(b.w_bits) for b in self.layers.values())
        a = ",".join("f" if b.a_bits is None else str(b.a_bits) for b in self.layers.values())
        return f"w[{w}] a[{a}]"
