"""Read a quantized layer's grids as integers: weight codes + scales (or a codebook), input grid.

Every format writes the same numbers, so they are derived once here from the layer's quantizer
state. A linear weight is ``codes * scale`` per output channel with integer codes in
``[-n, n]`` (``n = 2^(b-1) - 1``; codes +-1 with scale = clip on the 1-bit binary grid). A
k-means weight is ``codebook[labels]``. An input activation is quantized on ``{lo..hi} * scale``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from haq.errors import ExportError
from haq.quantize import KMeansWeightQuantizer, QuantModule, quantized_layers

# A code recovered from the effective weight must sit this close to an integer, else the
# layer's weight is not on its grid and an integer export would change it.
_CODE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class WeightCodes:
    """A quantized weight as integers.

    Attributes:
        bits: weight bit width.
        codes: linear grid: signed integer codes shaped like the weight (int16); k-means:
            labels into ``codebook`` (int16).
        clip: linear grid: the quantizer's clip per output channel (or one value), float32.
        codebook: k-means centroids in use (``2^bits`` float32), else None.
    """

    bits: int
    codes: np.ndarray
    clip: np.ndarray
    codebook: np.ndarray | None = None

    @property
    def kmeans(self) -> bool:
        return self.codebook is not None

    @property
    def n(self) -> int:
        """Largest code of the linear grid; 0 marks the binary grid {-clip, +clip}."""
        return (1 << (self.bits - 1)) - 1

    @property
    def per_channel(self) -> bool:
        return self.clip.size > 1

    def scale(self) -> np.ndarray:
        """Step per output channel (linear grids): ``clip / n``, or ``clip`` on the binary grid."""
        return (self.clip / self.n if self.n else self.clip).astype(np.float32)

    def values(self) -> np.ndarray:
        """The float weight, computed exactly as haq's fake-quant computes it (same float ops)."""
        if self.codebook is not None:
            return self.codebook[self.codes.astype(np.int64)]
        clip = torch.from_numpy(self.clip).reshape((-1,) + (1,) * (self.codes.ndim - 1))
        codes = torch.from_numpy(self.codes.astype(np.float32))
        if self.n == 0:
            return (codes * clip).numpy()
        return (codes / (self.n / clip)).numpy()


@dataclass(frozen=True)
class ActGrid:
    """The grid of a layer's input: ``{lo..hi} * scale``; the binary grid is ``{-clip, +clip}``."""

    bits: int
    signed: bool
    clip: float

    @property
    def binary(self) -> bool:
        return self.signed and self.bits == 1

    @property
    def n(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def low(self) -> int:
        return -self.n if self.signed else 0

    @property
    def scale(self) -> float:
        return self.clip / self.n if self.n else self.clip


@dataclass(frozen=True)
class LayerCodes:
    """What an export needs of one quantized layer (None = that part stays float)."""

    name: str
    weight: WeightCodes | None
    act: ActGrid | None
    bias: np.ndarray | None
    float_weight: np.ndarray


def read_layers(model: torch.nn.Module) -> dict[str, LayerCodes]:
    """``read_layer`` for every quantized layer of ``model``, by module path."""
    return {name: read_layer(layer, name) for name, layer in quantized_layers(model).items()}


def read_layer(layer: QuantModule, name: str) -> LayerCodes:
    """The integer view of one layer; refuses a weight that is not on its grid."""
    with torch.no_grad():
        weight = layer.effective_weight().detach().cpu().float()
        bias = layer.effective_bias()
        bias_np = None if bias is None else bias.detach().cpu().float().numpy().copy()
        codes = None if layer.w_bits is None else _weight_codes(layer, weight, name)
        act = None
        if layer.a_bits is not None:
            clip = float(layer.act_quant.clip.detach())
            if not clip > 0:
                raise ExportError(f"layer {name!r} quantizes its input to {layer.a_bits} bits but "
                                  "has no activation range; calibrate the model first "
                                  "(pass calibration_data)")
            act = ActGrid(layer.a_bits, bool(layer.act_quant.signed), clip)
    return LayerCodes(name, codes, act, bias_np, weight.numpy().copy())


def _weight_codes(layer: QuantModule, weight: torch.Tensor, name: str) -> WeightCodes:
    bits = int(layer.w_bits)  # type: ignore[arg-type]
    quant = layer.weight_quant
    if isinstance(quant, KMeansWeightQuantizer):
        labels = quant.labels.detach().cpu().to(torch.int16).numpy()
        codebook = quant.centroids.detach().cpu().float()[: 1 << bits].numpy().copy()
        if labels.max(initial=0) >= codebook.size:
            raise ExportError(f"layer {name!r}: k-means labels exceed its {codebook.size} "
                              "centroids; re-apply the policy before exporting")
        return WeightCodes(bits, labels, np.ones(1, np.float32), codebook)
    clip = quant.clip.detach().cpu().float()
    view = clip.reshape((-1,) + (1,) * (weight.dim() - 1)).double()
    n = (1 << (bits - 1)) - 1
    if n == 0:
        codes = torch.where(weight >= 0, 1.0, -1.0).double()
    else:
        exact = weight.double() * n / view
        codes = torch.round(exact)
        codes = torch.where(view > 0, codes, torch.zeros_like(codes))
        off = float((exact - codes).abs().where(view > 0, torch.zeros_like(exact)).max())
        if off > _CODE_TOLERANCE:
            raise ExportError(f"layer {name!r}: its {bits}-bit weight is not on the grid of its "
                              f"clip (off by {off:.3g} of a step); re-apply the policy (set_bits) "
                              "after editing weights or clips")
    return WeightCodes(bits, codes.to(torch.int16).numpy(), clip.numpy().copy())
