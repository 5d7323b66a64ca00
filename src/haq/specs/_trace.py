"""Find every quantizable layer by running one forward pass with hooks, in execution order.

Registration order (``named_modules()``) is not execution order in general — a model may define
its head before its stem — so the order here is the order in which layers actually ran.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from haq.errors import UnsupportedModelError
from haq.specs._spec import LayerKind, LayerSpec

QUANTIZABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)
Quantizable = nn.Conv1d | nn.Conv2d | nn.Linear


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, tuple | list):
        return (1, int(value[0])) if len(value) == 1 else (int(value[0]), int(value[1]))
    return (int(value), int(value))


def _conv_kind(module: nn.Conv1d | nn.Conv2d) -> LayerKind:
    groups = module.groups
    if groups > 1 and groups == module.in_channels:
        return "depthwise"
    return "conv"


def _spatial(shape: torch.Size) -> tuple[int, int]:
    """(H, W) of a conv input/output; a Conv1d's length L becomes (1, L)."""
    if len(shape) == 4:
        return int(shape[2]), int(shape[3])
    if len(shape) == 3:
        return 1, int(shape[2])
    raise UnsupportedModelError(f"unexpected conv activation shape {tuple(shape)}")


def _build_spec(name: str, index: int, module: Quantizable, x: torch.Tensor, y: torch.Tensor,
                calls: int) -> LayerSpec:
    params = sum(p.numel() for p in module.parameters(recurse=False))
    has_bias = getattr(module, "bias", None) is not None
    if isinstance(module, nn.Linear):
        tokens = math.prod(x.shape[1:-1]) if x.dim() > 2 else 1
        return LayerSpec(
            name=name, index=index, kind="linear",
            in_channels=module.in_features, out_channels=module.out_features,
            kernel=(1, 1), stride=(1, 1), padding=(0, 0), groups=1,
            in_size=(1, 1), out_size=(1, 1), params=params,
            macs=module.in_features * module.out_features * tokens * calls,
            has_bias=has_bias, tokens=int(tokens), calls=calls,
        )
    kernel = _pair(module.kernel_size)
    out_size = _spatial(y.shape)
    per_output = (module.in_channels // module.groups) * kernel[0] * kernel[1]
    macs = module.out_channels * out_size[0] * out_size[1] * per_output
    padding = module.padding if isinstance(module.padding, str) else _pair(module.padding)
    if isinstance(padding, str):  # 'same' / 'valid': record what it amounted to
        padding = (0, 0) if padding == "valid" else (kernel[0] // 2, kernel[1] // 2)
    return LayerSpec(
        name=name, index=index, kind=_conv_kind(module),
        in_channels=module.in_channels, out_channels=module.out_channels,
        kernel=kernel, stride=_pair(module.stride), padding=padding, groups=module.groups,
        in_size=_spatial(x.shape), out_size=out_size, params=params, macs=macs * calls,
        has_bias=has_bias, calls=calls,
    )


def extract_specs(model: nn.Module, example_input: torch.Tensor | tuple[torch.Tensor, ...],
                  *, allow_reuse: bool = False) -> list[LayerSpec]:
    """Trace ``model`` once and describe every Conv1d/Conv2d/Linear in execution order.

    Args:
        model: any ``nn.Module``; it is run once in eval mode under ``no_grad`` and left in the
            train/eval mode it had.
        example_input: one input batch (or a tuple of positional inputs). Sizes are per sample.
        allow_reuse: a layer called more than once per forward shares one bit setting by
            construction. By default that is refused; with ``allow_reuse=True`` the layer is
            listed once, at its first call, with shapes of the first call and MACs summed over
            all calls (``LayerSpec.calls`` says how many).

    Raises:
        UnsupportedModelError: no quantizable layer ran, or a layer ran twice without
            ``allow_reuse``.
    """
    names: dict[nn.Module, str] = {}
    for name, module in model.named_modules():
        if isinstance(module, QUANTIZABLE) and module not in names:
            names[module] = name
    if not names:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no nn.Conv1d, nn.Conv2d or nn.Linear layer to quantize")

    order: list[Quantizable] = []
    first_io: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
    calls: dict[nn.Module, int] = {}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        calls[module] = calls.get(module, 0) + 1
        if module not in first_io and isinstance(module, QUANTIZABLE):  # hooked only on those
            order.append(module)
            first_io[module] = (inputs[0].detach(), output.detach())

    handles = [m.register_forward_hook(hook) for m in names]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            args = example_input if isinstance(example_input, tuple) else (example_input,)
            model(*args)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    reused = [names[m] for m in order if calls[m] > 1]
    if reused and not allow_reuse:
        raise UnsupportedModelError(
            f"layer(s) {', '.join(reused)} run more than once per forward pass, so they cannot "
            "hold separate bit widths per call; pass allow_reuse=True (CLI: --allow-reuse with "
            "--input-shape) to quantize each such layer once, with one bit setting shared by all "
            "its calls")
    if not order:
        raise UnsupportedModelError(
            f"none of the {len(names)} Conv/Linear layers of {type(model).__name__} ran in the "
            "forward pass; check the example input")
    return [
        _build_spec(names[m], i, m, *first_io[m], calls=calls[m]) for i, m in enumerate(order)
    ]
