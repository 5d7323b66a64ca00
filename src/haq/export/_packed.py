"""``packed``: bit-packed integer weights in safetensors, loadable back into the same model.

The file is the quantized model's ``state_dict`` with every quantized weight replaced by its
integer codes packed at their width (a continuous little-endian bit stream, so 3-bit codes take
3 bits) plus what reconstructs it exactly: the clip per output channel (linear grid) or the
``2^b`` centroids (k-means). Everything else (biases, activation clips, float layers,
normalisation) is stored as it is. The safetensors metadata holds one JSON header: format
version, policy, quantizer config, and per layer the width, shape and kind of its weight.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from haq.device import model_device
from haq.errors import ExportError
from haq.export._codes import WeightCodes
from haq.export._registry import ExportJob, Runner, register_format
from haq.policy import Policy
from haq.quantize import QuantConfig, apply_policy_, fold_batchnorm_, quantized_layers, strip_

PACKED_VERSION = 1
HEADER_KEY = "haq"
_QUANT_STATE = ("weight", "weight_quant.clip", "weight_quant.labels", "weight_quant.centroids")


@register_format("packed", suffix=".safetensors", description="bit-packed integer weights + "
                 "scales (k-means: codebook + packed indices) in safetensors; loads back into haq")
class Packed:
    @staticmethod
    def write(job: ExportJob) -> bytes:
        from safetensors.torch import save

        tensors, layers = _tensors(job)
        header = {"format": "haq-packed", "version": PACKED_VERSION,
                  "policy": job.policy.to_dict(), "quant_config": job.config.to_dict(),
                  "input_shape": list(job.example_input.shape[1:]), "layers": layers}
        return save(tensors, metadata={HEADER_KEY: json.dumps(header)})

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


def _tensors(job: ExportJob) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = {k: v.detach().cpu().contiguous() for k, v in job.model.state_dict().items()}
    tensors, layers = {}, {}
    for name, codes in job.layers.items():
        weight = codes.weight
        if weight is None:
            continue
        for key in _QUANT_STATE:
            state.pop(f"{name}.{key}", None)
        tensors.update(_weight_tensors(name, weight))
        layers[name] = {"bits": weight.bits, "shape": list(weight.codes.shape),
                        "kind": "kmeans" if weight.kmeans else "linear"}
    tensors.update(state)
    return tensors, layers


def _weight_tensors(name: str, weight: WeightCodes) -> dict[str, torch.Tensor]:
    if weight.codebook is not None:  # k-means: labels + codebook
        offsets, extra = weight.codes, {"codebook": torch.from_numpy(weight.codebook)}
    elif weight.n == 0:  # binary grid: codes -1/+1 -> bits 0/1
        offsets, extra = (weight.codes + 1) // 2, {"clip": torch.from_numpy(weight.clip)}
    else:  # codes in [-n, n] -> [0, 2n], which fits in `bits` bits
        offsets, extra = weight.codes + weight.n, {"clip": torch.from_numpy(weight.clip)}
    packed = torch.from_numpy(pack_bits(offsets, weight.bits))
    return {f"{name}.weight.codes": packed, **{f"{name}.weight.{k}": v for k, v in extra.items()}}


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
                          f"reads version {PACKED_VERSION}")
    return header


def load_packed(path: str | Path, model: nn.Module) -> nn.Module:
    """Load a packed file into ``model`` (the float architecture it was exported from), in place.

    The policy and quantizer config come from the file; the result computes exactly what the
    exported quantized model computed (bit-identical outputs).

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
    for name, info in header["layers"].items():
        tensors.update(_decode_weight(name, info, tensors, quantized_layers(model).get(name)))
    missing, unexpected = _mismatch(model, tensors)
    if missing or unexpected:
        raise ExportError(f"{path} does not fit this model: missing {missing[:5]}, unexpected "
                          f"{unexpected[:5]}; pass the architecture the file was exported from "
                          "(prepared the same way, e.g. batch norm folded)")
    model.load_state_dict(tensors, strict=True)
    return model


def _decode_weight(name: str, info: dict[str, Any], tensors: dict[str, torch.Tensor],
                   layer: nn.Module | None) -> dict[str, torch.Tensor]:
    if layer is None:
        raise ExportError(f"packed layer {name!r} is not in this model; pass the architecture "
                          "the file was exported from")
    bits, shape = int(info["bits"]), tuple(info["shape"])
    raw = tensors.pop(f"{name}.weight.codes").numpy()
    offsets = unpack_bits(raw, bits, int(np.prod(shape))).reshape(shape)
    if info["kind"] == "kmeans":
        codebook = tensors.pop(f"{name}.weight.codebook")
        centroids = torch.zeros_like(layer.weight_quant.centroids)
        centroids[: codebook.numel()] = codebook
        labels = torch.from_numpy(offsets.astype(np.uint8))
        weight = WeightCodes(bits, offsets.astype(np.int16), np.ones(1, np.float32),
                             codebook.numpy())
        return {f"{name}.weight": torch.from_numpy(weight.values()),
                f"{name}.weight_quant.labels": labels,
                f"{name}.weight_quant.centroids": centroids}
    clip = tensors.pop(f"{name}.weight.clip")
    n = (1 << (bits - 1)) - 1
    codes = offsets * 2 - 1 if n == 0 else offsets - n
    weight = WeightCodes(bits, codes.astype(np.int16), clip.numpy())
    return {f"{name}.weight": torch.from_numpy(weight.values()),
            f"{name}.weight_quant.clip": clip}


def _mismatch(model: nn.Module, tensors: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    return sorted(expected - set(tensors)), sorted(set(tensors) - expected)


def size_breakdown(path: str | Path) -> dict[str, int]:
    """Bytes of a packed file by part: packed weight codes + codebooks, the rest, the header."""
    from safetensors import safe_open

    path = Path(path)
    header = read_header(path)
    # layers the policy keeps in float store their weights as float32, as the size model counts
    float_weights = {f"{name}.weight" for name, bits in header["policy"]["layers"].items()
                     if bits["w_bits"] is None}
    parts = {"weights": 0, "other": 0}
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():
            t = handle.get_tensor(key)
            nbytes = t.numel() * t.element_size()
            layer = key.rsplit(".weight.", 1)[0]
            is_weight = ((key.endswith((".weight.codes", ".weight.codebook"))
                          and layer in header["layers"]) or key in float_weights)
            parts["weights" if is_weight else "other"] += nbytes
    parts["header"] = path.stat().st_size - parts["weights"] - parts["other"]
    return parts

