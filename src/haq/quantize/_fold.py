"""Batch-norm folding: merge a BatchNorm into the Conv/Linear layer whose output it normalises.

In eval mode ``bn(conv(x)) = conv'(x)`` with, per output channel c and ``k = gamma / sqrt(var +
eps)``: ``w'_c = w_c * k_c`` and ``b'_c = (b_c - mean_c) * k_c + beta_c``. The folded weight is
what a runtime executes, so it is what gets quantized.

Pairs are found from one traced forward pass, not from module order: a BatchNorm is folded only
if its input is exactly the output of one Conv/Linear call and nothing else reads that output
(a shortcut that also takes the conv's output would see the folded, normalised values instead).
Every other BatchNorm is left as it is and listed with the reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from haq.errors import UnsupportedModelError
from haq.quantize._modules import QuantModule
from haq.quantize._weight import LinearWeightQuantizer

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
# Reading a tensor's metadata is not a use of its values.
_METADATA = frozenset({"__get__", "size", "dim", "numel", "stride", "is_contiguous",
                       "is_floating_point", "ndimension", "nelement", "element_size",
                       "data_ptr", "get_device", "__len__"})


@dataclass(frozen=True)
class FoldReport:
    """What ``fold_batchnorm_`` did.

    Attributes:
        folded: ``(layer, batchnorm)`` module paths, the BatchNorm now an ``nn.Identity``.
        skipped: ``(batchnorm, reason)`` for every BatchNorm left as it was.
    """

    folded: tuple[tuple[str, str], ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()


class _Tracer(TorchFunctionMode):
    """Records, for every Conv/Linear output, which module's code read it (``None`` = none)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.names = {id(m): name for name, m in model.named_modules()}
        self.stack: list[str | None] = [None]
        self.calls: Counter[str] = Counter()
        self.outputs: dict[int, tuple[torch.Tensor, str]] = {}  # id -> (output, layer)
        self.readers: dict[int, set[str | None]] = {}
        self.bn_inputs: dict[str, torch.Tensor] = {}

    def __torch_function__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") not in _METADATA:
            for leaf in tree_leaves((args, kwargs)):
                if isinstance(leaf, torch.Tensor) and id(leaf) in self.outputs:
                    self.readers[id(leaf)].add(self.stack[-1])
        return func(*args, **kwargs)

    def before(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        name = self.names[id(module)]
        self.stack.append(name)
        self.calls[name] += 1
        if isinstance(module, _NORMS) and inputs and isinstance(inputs[0], torch.Tensor):
            self.bn_inputs[name] = inputs[0]

    def after(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        name = self.stack.pop()
        if isinstance(module, _LAYERS) and isinstance(output, torch.Tensor):
            self.outputs[id(output)] = (output, name)
            self.readers[id(output)] = set()


@contextmanager
def _hooked(model: nn.Module, tracer: _Tracer) -> Iterator[None]:
    handles = []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(tracer.before))
        handles.append(module.register_forward_hook(tracer.after))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def find_foldable(model: nn.Module, example_input: Any) -> FoldReport:
    """Which BatchNorms of ``model`` can be folded into the layer before them, and which not.

    Runs ``model`` once on ``example_input`` (a tensor or a tuple of positional inputs) in
    eval mode under ``no_grad``; the model's train/eval mode is restored.
    """
    tracer = _Tracer(model)
    was_training = model.training
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    try:
        model.eval()
        with torch.no_grad(), _hooked(model, tracer), tracer:
            model(*inputs)
    finally:
        model.train(was_training)
    folded, skipped = [], []
    for name, norm in model.named_modules():
        if not isinstance(norm, _NORMS):
            continue
        reason, layer = _verdict(model, tracer, name, norm)
        if reason is None:
            folded.append((layer, name))
        else:
            skipped.append((name, reason))
    return FoldReport(tuple(folded), tuple(skipped))


def _verdict(model: nn.Module, tracer: _Tracer, name: str,
             norm: nn.Module) -> tuple[str | None, str]:
    """(None, layer) if ``norm`` folds into ``layer``, else (reason, "")."""
    if tracer.calls[name] == 0:
        return "it never ran in the traced forward pass", ""
    if tracer.calls[name] > 1:
        return f"it runs {tracer.calls[name]} times per forward pass", ""
    if not norm.track_running_stats or norm.running_mean is None:
        return "it normalises with batch statistics at inference (no running statistics)", ""
    x = tracer.bn_inputs.get(name)
    source = tracer.outputs.get(id(x)) if x is not None else None
    if source is None:
        return "its input is not the output of a Conv1d/Conv2d/Linear layer", ""
    layer_name = source[1]
    layer = model.get_submodule(layer_name)
    if tracer.calls[layer_name] > 1:
        return f"its input layer {layer_name!r} runs {tracer.calls[layer_name]} times", ""
    others = sorted(str(r) if r is not None else "the model's own code"
                    for r in tracer.readers[id(x)] - {name})
    if others:
        return (f"the output of {layer_name!r} is also read by {', '.join(others)}, which "
                "would then see normalised values", "")
    channels = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    if isinstance(layer, nn.Linear) and x.dim() != 2:
        return f"{layer_name!r} is a Linear with a {x.dim()}-d output; BatchNorm1d would " \
               "normalise another axis than its output features", ""
    if channels != norm.num_features:
        return f"it has {norm.num_features} features but {layer_name!r} has {channels} outputs", ""
    return None, layer_name


@torch.no_grad()
def fold_pair_(layer: nn.Module, norm: nn.Module) -> None:
    """Fold ``norm`` into ``layer``'s weight and bias in place (``layer`` gains a bias)."""
    weight = layer.weight
    scale = torch.rsqrt(norm.running_var.double() + norm.eps)
    shift = -norm.running_mean.double() * scale
    if norm.affine:
        scale = scale * norm.weight.double()
        shift = shift * norm.weight.double() + norm.bias.double()
    bias = layer.bias.double() if layer.bias is not None else torch.zeros_like(scale)
    new_weight = weight.double() * scale.reshape((-1,) + (1,) * (weight.dim() - 1))
    weight.copy_(new_weight.to(weight.dtype))
    new_bias = (bias * scale + shift).to(weight.dtype)
    if layer.bias is None:
        layer.bias = nn.Parameter(new_bias, requires_grad=weight.requires_grad)
    else:
        layer.bias.copy_(new_bias)
    # weight.copy_ bumps the weight's version counter, so a fake-quant wrapper's per-bits cache
    # (keyed on it, see _stamp.py) is dropped on its next use without being told


FOLDED_MARK = "haq_bn_folded"  # set on a layer that a BatchNorm was folded into


def is_folded(layer: nn.Module) -> bool:
    """Whether a BatchNorm was folded into ``layer`` (by ``fold_batchnorm_``)."""
    return bool(getattr(layer, FOLDED_MARK, False))


def fold_batchnorm_(model: nn.Module, example_input: Any) -> FoldReport:
    """Fold every foldable BatchNorm of ``model`` into the layer before it, in place.

    Each folded BatchNorm is replaced by ``nn.Identity`` and its layer gets the folded weight
    and a bias; in eval mode the model computes the same function (to float rounding). A model
    with no foldable BatchNorm is left unchanged, so calling this twice is harmless.

    Args:
        model: any ``nn.Module``; run once on ``example_input`` to find the pairs.
        example_input: one input batch (or a tuple of positional inputs).

    Returns:
        A ``FoldReport`` of the folded pairs and of the BatchNorms left alone, with reasons.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
        >>> fold_batchnorm_(net, torch.randn(2, 1, 8, 8)).folded
        (('0', '1'),)
        >>> net[1]
        Identity()
    """
    if not any(isinstance(m, _NORMS) for m in model.modules()):
        return FoldReport()
    report = find_foldable(model, example_input)
    for layer_name, norm_name in report.folded:
        norm = model.get_submodule(norm_name)
        layer = model.get_submodule(layer_name)
        fold_pair_(layer, norm)
        setattr(layer, FOLDED_MARK, True)
        replace_module(model, norm, nn.Identity())
    return report


def replace_module(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Point every reference to ``old`` inside ``model`` (shared modules too) at ``new``."""
    slots = [(parent, key) for parent in model.modules()
             for key, child in parent._modules.items() if child is old]
    for parent, key in slots:
        setattr(parent, key, new)


def scales_exactly(layer: nn.Module) -> bool:
    """Whether a per-output-channel scale folds into ``layer``'s quantized weight exactly.

    True for float weights and per-channel linear grids (a channel's grid scales with its
    weights); false for per-tensor grids and k-means codebooks, which channels share.
    """
    if not isinstance(layer, QuantModule) or layer.w_bits is None:
        return True
    quantizer = layer.weight_quant
    return isinstance(quantizer, LinearWeightQuantizer) and quantizer.per_channel


@torch.no_grad()
def absorb_affine_(layer: nn.Module, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """Make ``layer`` compute ``scale * layer(x) + shift`` per output channel, in place.

    The weight and, for a fake-quant wrapper, its per-channel clip are multiplied by ``scale``
    (the clip by ``|scale|``: the grids are symmetric), so the quantized weight becomes
    ``scale`` times the old quantized weight; the bias absorbs the rest. This is how a
    BatchNorm trained after a folded layer is folded back (``haq.finetune``). Only for layers
    where ``scales_exactly`` holds.
    """
    if not scales_exactly(layer):
        raise UnsupportedModelError(
            f"a per-channel scale does not fold exactly into {type(layer).__name__} with "
            "per-tensor or k-means weights; use QuantConfig(weight_granularity='per_channel')")
    weight = layer.weight
    scale = scale.to(weight.dtype)
    shift = shift.to(weight.dtype)
    wrapped = isinstance(layer, QuantModule)
    bias = layer.effective_bias() if wrapped else layer.bias
    new_bias = shift if bias is None else scale * bias + shift
    if wrapped:  # keep the correction buffer: bias - correction is what the layer adds
        new_bias = new_bias + layer.bias_correction
        if isinstance(layer.weight_quant, LinearWeightQuantizer):
            layer.weight_quant.clip.mul_(scale.abs())
    weight.mul_(scale.reshape((-1,) + (1,) * (weight.dim() - 1)))
    if layer.bias is None:
        layer.bias = nn.Parameter(new_bias.clone(), requires_grad=weight.requires_grad)
    else:
        layer.bias.copy_(new_bias)
