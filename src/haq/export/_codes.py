"""Read a quantized layer as integers: weight codes + steps (or a codebook), input grid, scale.

Every format writes the same numbers, so they are derived once here from the layer's
``integer_view``: what the layer itself computes with. A linear weight is ``codes * step`` per
output channel with integer codes in ``[-n, n]`` (``n = 2^(b-1) - 1``; codes +-1 with step =
clip on the 1-bit binary grid). A k-means weight is ``codebook[labels]``, and the codebook is
``integer_codebook * step`` with a power-of-two step. An input activation is quantized to codes
``{lo..hi}`` with step ``input step``. The layer's output is
``conv(input codes, integer weight) * scale[c] + bias[c]`` with ``scale = input step * weight
step``.
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
        step: float32 step of the integer grid per output channel (or one value).
        codebook: k-means centroids in use (``2^bits`` float32), else None.
    """

    bits: int
    codes: np.ndarray
    clip: np.ndarray
    step: np.ndarray
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
        return self.step.size > 1

    def integer_codebook(self) -> np.ndarray:
        """k-means: the codebook on its integer grid (float32 integers), ``codebook / step``."""
        if self.codebook is None:
            raise ExportError("integer_codebook() is for k-means weights")
        return np.round(self.codebook / self.step[0]).astype(np.float32)

    def integers(self) -> np.ndarray:
        """The integer-valued weight the layer computes with (float32)."""
        if self.codebook is not None:
            return self.integer_codebook()[self.codes.astype(np.int64)]
        return self.codes.astype(np.float32)

    def values(self) -> np.ndarray:
        """The float weight, computed exactly as haq's fake-quant computes it (same float ops)."""
        if self.codebook is not None:
            return self.codebook[self.codes.astype(np.int64)]
        clip = torch.from_numpy(self.clip).reshape((-1,) + (1,) * (self.codes.ndim - 1))
        codes = torch.from_numpy(self.codes.astype(np.float32))
        return (codes * (clip / self.n if self.n else clip)).numpy()


@dataclass(frozen=True)
class ActGrid:
    """The grid of a layer's input: codes ``{lo..hi}`` of step ``step``; binary: ``{-1, +1}``."""

    bits: int
    signed: bool
    clip: float
    step: float

    @property
    def binary(self) -> bool:
        return self.signed and self.bits == 1

    @property
    def n(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def low(self) -> int:
        return -self.n if self.signed else 0


@dataclass(frozen=True)
class LayerCodes:
    """What an export needs of one quantized layer (None = that part stays float).

    ``scale`` is the float32 multiplier per output channel applied to the integer accumulator
    (one value when only the input is quantized), None when the layer is entirely float.
    """

    name: str
    weight: WeightCodes | None
    act: ActGrid | None
    bias: np.ndarray | None
    float_weight: np.ndarray
    scale: np.ndarray | None


def read_layers(model: torch.nn.Module) -> dict[str, LayerCodes]:
    """``read_layer`` for every quantized layer of ``model``, by module path."""
    return {name: read_layer(layer, name) for name, layer in quantized_layers(model).items()}


def read_layer(layer: QuantModule, name: str) -> LayerCodes:
    """The integer view of one layer; refuses a weight that is not on its grid."""
    with torch.no_grad():
        if layer.a_bits is not None and not float(layer.act_quant.clip.detach()) > 0:
            raise ExportError(f"layer {name!r} quantizes its input to {layer.a_bits} bits but "
                              "has no activation range; calibrate the model first "
                              "(pass calibration_data)")
        view = layer.integer_view()
        weight = layer.effective_weight().detach().cpu().float()
        bias = None if view.bias is None else view.bias.detach().cpu().float().numpy().copy()
        codes = None if layer.w_bits is None else _weight_codes(layer, weight, view.weight, name)
        act = None
        if layer.a_bits is not None and view.input_step is not None:
            act = ActGrid(layer.a_bits, bool(layer.act_quant.signed),
                          float(layer.act_quant.clip.detach()), view.input_step)
        scale = None if view.scale is None else view.scale.detach().cpu().float().numpy().copy()
    return LayerCodes(name, codes, act, bias, weight.numpy().copy(), scale)


def _weight_codes(layer: QuantModule, weight: torch.Tensor, integers: torch.Tensor,
                  name: str) -> WeightCodes:
    bits = int(layer.w_bits)  # type: ignore[arg-type]
    quant = layer.weight_quant
    step = quant.step().detach().cpu().float()
    if isinstance(quant, KMeansWeightQuantizer):
        labels = quant.labels.detach().cpu().to(torch.int16).numpy()
        codebook = quant.centroids.detach().cpu().float()[: 1 << bits].numpy().copy()
        if labels.max(initial=0) >= codebook.size:
            raise ExportError(f"layer {name!r}: k-means labels exceed its {codebook.size} "
                              "centroids; re-apply the policy before exporting")
        return WeightCodes(bits, labels, np.ones(1, np.float32), step.numpy().copy(), codebook)
    clip = quant.clip.detach().cpu().float()
    codes = integers.detach().cpu()
    view = step.reshape((-1,) + (1,) * (weight.dim() - 1))
    exact = weight.double() / view.double()
    off = float((exact - codes.double()).abs().where(view > 0, torch.zeros_like(exact)).max())
    if off > _CODE_TOLERANCE:
        raise ExportError(f"layer {name!r}: its {bits}-bit weight is not on the grid of its "
                          f"clip (off by {off:.3g} of a step); re-apply the policy (set_bits) "
                          "after editing weights or clips")
    return WeightCodes(bits, codes.to(torch.int16).numpy(), clip.numpy().copy(),
                       step.numpy().copy())
