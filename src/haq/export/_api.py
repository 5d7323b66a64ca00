"""``export(model, policy, format, path)``: quantize if needed, check, write atomically."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from haq.errors import ConfigError, ExportError, PolicyError
from haq.export._codes import read_layers
from haq.export._registry import ExportJob, get_format
from haq.policy import Policy
from haq.quantize import QuantConfig, QuantModule, apply_policy_, quantized_layers
from haq.runs import atomic_write


def export(model: nn.Module, policy: Policy, format: str, path: str | Path, *,
           calibration_data: Iterable[Any] | None = None, config: QuantConfig | None = None,
           example_input: torch.Tensor | None = None, integer_kernels: bool = False) -> Path:
    """Write ``model`` quantized as ``policy`` says in ``format`` (``onnx``, ``qonnx``, ``packed``).

    Args:
        model: a float model (then ``calibration_data`` is needed and the policy is applied to
            a copy, exactly as ``apply_policy_`` does) or a model already quantized with
            ``policy`` (e.g. after fine-tuning); it is not modified.
        policy: the bit widths; must match the quantized layers of an already quantized model.
        format: a registered format name (``haq.export.available_formats()``).
        path: file to write; written atomically, so on any error no partial file is left and
            an existing file is kept as it was.
        calibration_data: input batches for a float model (the first 8 are used).
        config: how to quantize a float model; ``QuantConfig()`` if omitted.
        example_input: one input batch to trace ONNX graphs with; defaults to the first
            calibration batch.
        integer_kernels: ``onnx`` only: write every integer-weight layer as a standard QDQ
            group, which ONNX Runtime may run on 8-bit integer kernels after rounding the
            bias to int32 (not simulated by haq: parity drops slightly, see docs/export.md).
            By default layers with a bias dequantize their input with Cast + Mul and compute
            exactly what haq computes, in float.

    Returns:
        ``path``.

    Raises:
        ExportError: unknown format, a layer the format cannot express, an unwritable path.
        PolicyError: the policy does not match the model.
    """
    fmt = get_format(format)
    if integer_kernels and fmt.name != "onnx":
        raise ExportError(f"integer_kernels applies to the onnx format only, not {fmt.name!r}")
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path} is a directory; give a file name, e.g. "
                          f"{path / ('model' + fmt.suffix)}")
    quantized = _quantized_copy(model, policy, calibration_data, config)
    job = ExportJob(quantized, policy, read_layers(quantized),
                    _example(example_input, calibration_data), _config_of(quantized),
                    integer_kernels)
    data = fmt.write(job)

    def write(handle: IO[bytes]) -> None:
        handle.write(data)

    try:
        atomic_write(path, write)
    except OSError as err:
        raise ExportError(f"cannot write {path}: {err.strerror or err}; choose a writable "
                          "location for the output file") from err
    return path


def _quantized_copy(model: nn.Module, policy: Policy, calibration_data: Iterable[Any] | None,
                    config: QuantConfig | None) -> nn.Module:
    if not isinstance(policy, Policy):
        raise PolicyError(f"policy must be a haq Policy (Policy.load(path)), got "
                          f"{type(policy).__name__}")
    layers = quantized_layers(model)
    if layers:
        _check_matches(layers, policy)
        return copy.deepcopy(model).cpu().eval()
    if calibration_data is None:
        raise ConfigError("the model is not quantized yet: pass calibration_data (input batches) "
                          "so the policy can be applied, or pass a model quantized with "
                          "apply_policy_")
    net = copy.deepcopy(model).cpu().eval()
    return apply_policy_(net, policy, calibration_data, config)


def _check_matches(layers: dict[str, QuantModule], policy: Policy) -> None:
    for name, bits in policy.layers.items():
        if name not in layers:
            raise PolicyError(f"the policy names layer {name!r}, which is not quantized in this "
                              f"model (quantized: {list(layers)[:6]}); pass the policy the model "
                              "was quantized with, or a float model plus calibration_data")
        have = (layers[name].w_bits, layers[name].a_bits)
        if have != (bits.w_bits, bits.a_bits):
            raise PolicyError(f"layer {name!r} is quantized to W{have[0]}A{have[1]} but the "
                              f"policy says W{bits.w_bits}A{bits.a_bits}; pass the policy the "
                              "model was quantized with (or re-apply it with apply_policy_)")
    extra = [n for n, m in layers.items()
             if n not in policy.layers and (m.w_bits, m.a_bits) != (None, None)]
    if extra:
        raise PolicyError(f"layer(s) {extra[:5]} are quantized but not in the policy; pass the "
                          "policy the model was quantized with")


def _config_of(model: nn.Module) -> QuantConfig:
    configs = {m.quant_config for m in quantized_layers(model).values()}
    if len(configs) != 1:
        raise ExportError(f"the model's layers use {len(configs)} different QuantConfigs; "
                          "quantize it with one apply_policy_ call before exporting")
    return configs.pop()


def _example(example: torch.Tensor | None, data: Iterable[Any] | None) -> torch.Tensor:
    if example is not None:
        return example.detach().cpu()[:1]
    if data is not None:
        for batch in data:
            x = batch[0] if isinstance(batch, list | tuple) else batch
            return x.detach().cpu()[:1]
    raise ConfigError("pass example_input (one input batch) to trace the model for export")
