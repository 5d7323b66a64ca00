"""``packed``: what a deployed quantized model needs, bit-packed, in a few safetensors buffers.

Per policy layer, in policy order, the file holds only what the layer computes with:

* ``codes`` (uint8): each quantized weight's integer codes (linear grid: shifted to
  ``0..2n``; k-means: labels) as a little-endian bit stream at the weight's width, layers
  concatenated, each starting on a byte;
* ``codebooks`` (float32): the ``2^b`` centroids of each k-means layer;
* ``float_weights`` (float32): weights the policy keeps in float;
* ``per_layer`` (float32): each layer's weight clips (linear grid: one per output channel),
  its effective bias (batch norm folded and bias correction included: one bias) and its input
  clip;
* ``flags`` (uint8, one per layer): input signedness, whether the layer has a bias;

plus, under their own names, any state outside the policy's layers (e.g. a batch norm that
could not be folded). The tensor index is therefore a fixed handful of entries, and the JSON
header holds the format version, the policy, the quantizer config and the input shape. Every
per-layer part is what the ``size`` cost model with ``overhead=True`` counts, so the file is
that many bytes plus the header (and any state outside the policy).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from haq.device import model_device
from haq.errors import ExportError
from haq.export._codes import LayerCodes, WeightCodes
from haq.export._registry import ExportJob, Runner, register_format
from haq.policy import Policy
from haq.quantize import (
    KMeansWeightQuantizer,
    QuantConfig,
    QuantModule,
    apply_policy_,
    fold_batchnorm_,
    quantized_layers,
    strip_,
)

PACKED_VERSION = 2
HEADER_KEY = "haq"
WEIGHT_PARTS = ("codes", "codebooks", "float_weights")
LAYER_PARTS = ("per_layer", "flags")
_SIGNED, _BIAS = 1, 2  # flag bits


@register_format("packed", suffix=".safetensors", description="bit-packed integer weights + "
                 "scales (k-means: codebook + packed indices) in safetensors; loads back into haq")
class Packed:
    @staticmethod
    def write(job: ExportJob) -> bytes:
        from safetensors.torch import save

        header = {"format": "haq-packed", "version": PACKED_VERSION,
                  "policy": job.policy.to_dict(), "quant_config": job.config.to_dict(),
                  "input_shape": list(job.example_input.shape[1:])}
        return save(_tensors(job), metadata={HEADER_KEY: json.dumps(header,
                                                                    separators=(",", ":"))})

    @staticmethod
    def load(path: Path, reference: nn.Module) -> Runner:
        import copy

        model = load_packed(path, strip_(copy.deepcopy(reference))).eval()
        device = model_device(model)  # the reference's device: loaded tensors are copied in

        def run(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return model(x.to(device, non_blocking=True))

        return run


def pack_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """Non-negative integers < 2^bits as a little-endian bit stream of ``ceil(n*bits/8)`` bytes."""
    flat = values.reshape(-1).astype(np.uint16)
    planes = (flat[:, None] >> np.arange(bits, dtype=np.uint16)) & 1
    return np.packbits(planes.astype(np.uint8).reshape(-1), bitorder="little")


def unpack_bits(data: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of ``pack_bits``: ``count`` integers of ``bits`` bits each."""
    planes = np.unpackbits(data, bitorder="little", count=count * bits).reshape(count, bits)
    return (planes.astype(np.int64) << np.arange(bits)).sum(axis=1)


def packed_bytes(numel: int, bits: int) -> int:
    return -(-numel * bits // 8)


def _offsets(weight: WeightCodes) -> np.ndarray:
    """Codes as non-negative integers below 2^bits."""
    if weight.codebook is not None:
        return weight.codes
    if weight.n == 0:  # binary grid: codes -1/+1 -> 0/1
        return (weight.codes + 1) // 2
    return weight.codes + weight.n  # [-n, n] -> [0, 2n]


def _tensors(job: ExportJob) -> dict[str, torch.Tensor]:
    parts: dict[str, list[np.ndarray]] = {k: [] for k in WEIGHT_PARTS + LAYER_PARTS}
    for name in job.policy.layers:
        codes = job.layers[name]
        weight = codes.weight
        if weight is None:
            parts["float_weights"].append(codes.float_weight.reshape(-1))
        else:
            parts["codes"].append(pack_bits(_offsets(weight), weight.bits))
            if weight.codebook is not None:
                parts["codebooks"].append(weight.codebook)
            else:
                parts["per_layer"].append(weight.clip)
        parts["per_layer"] += _layer_scalars(codes)
        flags = (_SIGNED if codes.act is not None and codes.act.signed else 0) | \
            (_BIAS if codes.bias is not None else 0)
        parts["flags"].append(np.array([flags], np.uint8))
    tensors = {key: torch.from_numpy(np.concatenate(arrays)) for key, arrays in parts.items()
               if arrays and sum(a.size for a in arrays)}
    prefixes = tuple(f"{name}." for name in job.policy.layers)
    for key, value in job.model.state_dict().items():
        if not key.startswith(prefixes):  # state outside the policy's layers, as it is
            tensors[key] = value.detach().cpu().contiguous()
    return tensors


def _layer_scalars(codes: LayerCodes) -> list[np.ndarray]:
    out = [] if codes.bias is None else [codes.bias.astype(np.float32)]
    if codes.act is not None:
        out.append(np.array([codes.act.clip], np.float32))
    return out


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of a packed file; a typed error if it is not one."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except Exception as err:  # safetensors raises its own untyped errors on foreign files
        raise ExportError(f"{path} is not a haq packed file ({err}); write one with "
                          "`haq export ... --format packed`") from err
    if HEADER_KEY not in meta:
        raise ExportError(f"{path} is a safetensors file without a haq header; write it with "
                          "`haq export ... --format packed`")
    header = json.loads(meta[HEADER_KEY])
    if header.get("version") != PACKED_VERSION:
        raise ExportError(f"{path} is packed format version {header.get('version')!r}; this haq "
                          f"reads version {PACKED_VERSION} (export the model again)")
    return header


def load_packed(path: str | Path, model: nn.Module) -> nn.Module:
    """Load a packed file into ``model`` (the float architecture it was exported from), in place.

    The policy and quantizer config come from the file; the result computes exactly what the
    exported quantized model computed (bit-identical outputs). It holds what a deployed model
    needs, not the float weights the codes came from: each layer's bias is its effective bias
    (no separate bias correction), and learned rounding loads as the codes it chose.

    Raises:
        ExportError: not a packed file, or its tensors do not fit ``model``.
    """
    from safetensors.torch import load_file

    path = Path(path)
    header = read_header(path)
    policy = Policy.from_dict(header["policy"])
    config = QuantConfig.from_dict(header["quant_config"])
    if config.fold_bn and "input_shape" in header:  # fold as the exported model was folded
        with torch.no_grad():
            fold_batchnorm_(model, torch.zeros(1, *header["input_shape"]))
    apply_policy_(model, policy, None, config)
    tensors = load_file(str(path))
    state = model.state_dict()
    layers = quantized_layers(model)
    streams = {key: _Stream(tensors.pop(key, torch.zeros(0))) for key in WEIGHT_PARTS + LAYER_PARTS}
    try:
        for name in policy.layers:
            if name not in layers:
                raise ExportError(f"packed layer {name!r} is not in this model")
            state.update(_decode_layer(name, layers[name], streams))
    except (ExportError, ValueError, RuntimeError) as err:
        raise ExportError(f"{path} does not fit this model ({err}); pass the architecture the "
                          "file was exported from") from err
    left = [key for key, stream in streams.items() if not stream.done()]
    prefixes = tuple(f"{name}." for name in policy.layers)
    rest = {k for k in state if not k.startswith(prefixes)}
    if left or set(tensors) != rest:
        raise ExportError(f"{path} does not fit this model: unread {left}, missing "
                          f"{sorted(rest - set(tensors))[:5]}, unexpected "
                          f"{sorted(set(tensors) - rest)[:5]}; pass the architecture the file "
                          "was exported from (prepared the same way, e.g. batch norm folded)")
    state.update(tensors)
    model.load_state_dict(state, strict=True)
    return model


class _Stream:
    """Reads consecutive pieces of one concatenated buffer."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.data, self.at = tensor, 0

    def take(self, count: int) -> torch.Tensor:
        if self.at + count > self.data.numel():
            raise ExportError("a buffer of the file ended early")
        piece = self.data[self.at:self.at + count]
        self.at += count
        return piece

    def done(self) -> bool:
        return self.at == self.data.numel()


def _decode_layer(name: str, layer: QuantModule, streams: dict[str, _Stream]
                  ) -> Iterator[tuple[str, torch.Tensor]]:
    weight = layer.weight
    bits = layer.w_bits
    out: dict[str, torch.Tensor] = {}
    if bits is None:
        out["weight"] = streams["float_weights"].take(weight.numel()).reshape(weight.shape)
    else:
        raw = streams["codes"].take(packed_bytes(weight.numel(), bits)).numpy()
        offsets = unpack_bits(raw, bits, weight.numel()).reshape(weight.shape)
        out.update(_decode_weight(layer, bits, offsets, streams))
    flags = int(streams["flags"].take(1)[0])
    if flags & _BIAS:
        bias = streams["per_layer"].take(weight.shape[0])
        if layer.bias is not None:
            out["bias"] = bias
            out["bias_correction"] = torch.zeros_like(bias)
        else:  # the effective bias of a layer without one is -bias_correction
            out["bias_correction"] = -bias
    if layer.a_bits is not None:
        out["act_quant.clip"] = streams["per_layer"].take(1).reshape(())
        out["act_quant.signed"] = torch.tensor(bool(flags & _SIGNED))
    return ((f"{name}.{key}", value) for key, value in out.items())


def _decode_weight(layer: QuantModule, bits: int, offsets: np.ndarray,
                   streams: dict[str, _Stream]) -> dict[str, torch.Tensor]:
    quant = layer.weight_quant
    if isinstance(quant, KMeansWeightQuantizer):  # labels + codebook
        codebook = streams["codebooks"].take(1 << bits)
        centroids = torch.zeros_like(quant.centroids)
        centroids[: codebook.numel()] = codebook
        return {"weight": codebook[torch.from_numpy(offsets)],
                "weight_quant.labels": torch.from_numpy(offsets.astype(np.uint8)),
                "weight_quant.centroids": centroids}
    clip = streams["per_layer"].take(quant.clip.numel())
    n = (1 << (bits - 1)) - 1
    codes = offsets * 2 - 1 if n == 0 else offsets - n
    step = (clip / n if n else clip).reshape((-1,) + (1,) * (offsets.ndim - 1))
    out = {"weight_quant.clip": clip}
    if quant.learned:  # learned rounding: floor(w / step) + 0 gives the code back
        out["weight"] = (torch.from_numpy(codes.astype(np.float32)) + 0.5) * step
        out["weight_quant.rounding"] = torch.zeros_like(quant.rounding)
    else:
        weight = WeightCodes(bits, codes.astype(np.int16), clip.numpy(), step.reshape(-1).numpy())
        out["weight"] = torch.from_numpy(weight.values())
    return out


def size_breakdown(path: str | Path) -> dict[str, int]:
    """Bytes of a packed file by part.

    ``weights``: packed codes, k-means codebooks and float weights (the ``size`` model's
    weights-only count); ``per_layer``: clips, biases and flags (what ``overhead=True`` adds);
    ``other``: state outside the policy's layers; ``header``: safetensors index + JSON header.
    """
    from safetensors import safe_open

    path = Path(path)
    read_header(path)
    parts = {"weights": 0, "per_layer": 0, "other": 0}
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():
            t = handle.get_tensor(key)
            part = "weights" if key in WEIGHT_PARTS else \
                "per_layer" if key in LAYER_PARTS else "other"
            parts[part] += t.numel() * t.element_size()
    parts["header"] = path.stat().st_size - sum(parts.values())
    return parts
