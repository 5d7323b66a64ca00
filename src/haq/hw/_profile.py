"""Measure each layer's latency on this host, at the precisions the CPU really runs natively.

A CPU has real kernels for two precisions only: fp32, and int8 through PyTorch's quantized
engine (``torch.ao.nn.quantized`` Conv/Linear on x86/fbgemm/onednn/qnnpack). So each layer is
timed twice, on synthetic inputs of its real shape:

* every integer pair (w, a) in 1..8 x 1..8 gets the **int8 kernel time** (narrower widths would
  be stored in int8 containers: there is no faster kernel for them);
* the float pair, and the mixed pairs with one float operand (computed in fp32 on a CPU), get
  the **fp32 time**.

The result is a ``CostTable`` with one metric, ``latency`` in ms, ready to save in the cost
table file format (``haq hw profile --out table.json``).
"""

from __future__ import annotations

import copy
import platform
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.ao.nn import quantized as nnq

from haq.cost import CostTable
from haq.errors import UnsupportedModelError
from haq.hw._timing import median_ms, torch_settings
from haq.policy import GRID_SIZE, MAX_BITS
from haq.specs import LayerSpec, extract_specs

_QUANT_TYPES = {nn.Conv1d: nnq.Conv1d, nn.Conv2d: nnq.Conv2d}


def layer_input(spec: LayerSpec, module: nn.Module, batch: int, generator: torch.Generator
                ) -> torch.Tensor:
    """A standard-normal input of the layer's real shape (``batch`` samples)."""
    if spec.kind == "linear":
        return torch.randn(batch * spec.tokens, spec.in_channels, generator=generator)
    if isinstance(module, nn.Conv1d):
        return torch.randn(batch, spec.in_channels, spec.in_size[1], generator=generator)
    return torch.randn(batch, spec.in_channels, *spec.in_size, generator=generator)


def _weight_qparams(weight: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric int8 weight."""
    flat = weight.detach().reshape(weight.shape[0], -1)
    scales = (flat.abs().amax(dim=1).clamp(min=1e-8) / 127.0).double()
    zeros = torch.zeros(weight.shape[0], dtype=torch.int64)
    return torch.quantize_per_channel(weight.detach().float(), scales, zeros, 0, torch.qint8)


def int8_layer(module: nn.Module) -> nn.Module:
    """A real int8 (``torch.ao.nn.quantized``) copy of a float Conv1d/Conv2d/Linear."""
    bias = None if module.bias is None else module.bias.detach().float()
    if isinstance(module, nn.Linear):
        q = nnq.Linear(module.in_features, module.out_features, bias_=module.bias is not None)
    else:
        qtype = next((q for f, q in _QUANT_TYPES.items() if isinstance(module, f)), None)
        if qtype is None:
            raise UnsupportedModelError(f"no int8 kernel for {type(module).__name__}")
        if module.padding_mode != "zeros":
            raise UnsupportedModelError("int8 convolutions support zero padding only")
        q = qtype(module.in_channels, module.out_channels, module.kernel_size,
                  stride=module.stride, padding=module.padding, dilation=module.dilation,
                  groups=module.groups, bias=module.bias is not None)
    q.set_weight_bias(_weight_qparams(module.weight), bias)
    # Output scale only affects requantization arithmetic, not the kernel's speed.
    q.scale, q.zero_point = 0.05, 64
    return q.eval()


def _quantize_input(x: torch.Tensor) -> torch.Tensor:
    scale = float(x.abs().max().clamp(min=1e-8)) / 127.0
    return torch.quantize_per_tensor(x, scale, 128, torch.quint8)


def time_layer(module: nn.Module, x: torch.Tensor, *, repeats: int, warmup: int
               ) -> tuple[float, float]:
    """(fp32 ms, int8 ms) of one layer on input ``x``; the int8 input is pre-quantized, as in
    an int8 model where activations stay quantized between layers."""
    fp32 = copy.deepcopy(module).eval().float()
    fp32_ms = median_ms(lambda: fp32(x), repeats=repeats, warmup=warmup)
    q = int8_layer(module)
    qx = _quantize_input(x)
    int8_ms = median_ms(lambda: q(qx), repeats=repeats, warmup=warmup)
    return fp32_ms, int8_ms


def _grid(fp32_ms: float, int8_ms: float) -> np.ndarray:
    grid = np.full((GRID_SIZE, GRID_SIZE), fp32_ms)
    grid[:MAX_BITS, :MAX_BITS] = int8_ms
    return grid


def profile(model: nn.Module, example_input: torch.Tensor, *, repeats: int = 15,
            warmup: int = 3, engine: str | None = None, threads: int | None = None,
            specs: Sequence[LayerSpec] | None = None, seed: int = 0) -> CostTable:
    """Time every quantizable layer of ``model`` on this host, in fp32 and in int8.

    Args:
        model: the float model (not modified).
        example_input: one input batch; its batch size is the batch the layers are timed at.
        repeats: timed runs per layer and precision; the median is kept (>= 15 recommended).
        warmup: untimed calls first.
        engine: PyTorch quantized engine (``x86``, ``fbgemm``, ``onednn``, ``qnnpack``);
            ``None`` keeps the current one.
        threads: intra-op threads while timing; ``None`` keeps the current setting.
        specs: the layers (default: traced from ``example_input``).
        seed: seeds the synthetic layer inputs.

    Returns:
        A ``CostTable`` with metric ``latency`` in ms: int8 time at every integer (w, a),
        fp32 time where an operand is float. ``source`` records host, engine, threads, repeats.
    """
    specs = list(specs) if specs is not None else extract_specs(model, example_input)
    batch = int(example_input.shape[0])
    generator = torch.Generator().manual_seed(int(seed))
    grids, raw = [], []
    with torch_settings(threads, engine) as used_engine, warnings.catch_warnings():
        # torch 2.13 flags quantized tensors as deprecated; they are what int8 kernels run on
        warnings.filterwarnings("ignore", message=".*quantiz.*deprecated.*")
        for spec in specs:
            module = model.get_submodule(spec.name)
            x = layer_input(spec, module, batch, generator)
            fp32_ms, int8_ms = time_layer(module, x, repeats=repeats, warmup=warmup)
            grids.append(_grid(fp32_ms, int8_ms))
            raw.append({"layer": spec.name, "fp32_ms": fp32_ms, "int8_ms": int8_ms})
        used_threads = torch.get_num_threads()
    source = {"model": "host-measured", "engine": used_engine, "threads": used_threads,
              "repeats": repeats, "warmup": warmup, "batch": batch, "torch": torch.__version__,
              "host": platform.node(), "cpu": platform.processor() or platform.machine(),
              "note": "int8 kernel time at every integer (w, a); fp32 time with a float operand"}
    return CostTable([s.name for s in specs], {"latency": np.stack(grids)}, {"latency": "ms"},
                     source)
