"""Hutchinson estimates of Hessian traces, per layer, for weights and layer inputs.

``Tr(H) = E[v^T H v]`` for Rademacher ``v`` (entries +-1). ``H v`` is a Hessian-vector product:
the gradient of ``g . v`` where ``g`` is the gradient of the loss built with ``create_graph``.
One product per probe vector serves every layer at once, because ``v`` is drawn for all of them
together and the block-diagonal parts ``v_l^T (H v)_l`` are read off per layer.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the universal spelling
from torch import nn

from haq.errors import ConfigError
from haq.specs import LayerSpec


@dataclass
class HessianTraces:
    """Per-layer Hessian traces of the loss, averaged per element.

    Attributes:
        weight: ``Tr(H_W) / numel(W)`` per layer.
        act: ``Tr(H_x) / numel(x)`` per layer, for the layer's input ``x`` over the batch.
        weight_std / act_std: standard error of the Hutchinson mean (same units).
        samples: probe vectors per batch.
    """

    weight: np.ndarray
    act: np.ndarray
    weight_std: np.ndarray
    act_std: np.ndarray
    samples: int


def _rademacher(shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, tuple(shape), generator=generator).float() * 2.0 - 1.0


def hutchinson_traces(model: nn.Module, specs: Sequence[LayerSpec],
                      batches: Sequence[tuple[torch.Tensor, torch.Tensor]], *, samples: int = 16,
                      seed: int = 0) -> HessianTraces:
    """Estimate the per-element Hessian trace of the cross-entropy loss for every layer.

    Args:
        model: the float model; a copy in eval mode is differentiated (BatchNorm uses its
            running statistics, as at inference), ``model`` is untouched.
        specs: the layers.
        batches: ``(inputs, labels)`` batches; the Hessian is that of each batch's mean loss,
            averaged over batches.
        samples: Rademacher probes per batch.
        seed: seeds the probes.

    Raises:
        ConfigError: no batch, or ``samples < 1``.
    """
    if not batches:
        raise ConfigError("the Hessian estimate needs at least one (inputs, labels) batch")
    if samples < 1:
        raise ConfigError(f"samples must be >= 1, got {samples}")
    net = copy.deepcopy(model).eval()
    modules = [net.get_submodule(s.name) for s in specs]
    for p in net.parameters():
        p.requires_grad_(False)
    weights = [m.weight for m in modules]
    for w in weights:
        w.requires_grad_(True)
    generator = torch.Generator().manual_seed(int(seed))
    w_draws = [[] for _ in specs]
    a_draws = [[] for _ in specs]
    for x, y in batches:
        inputs: list[torch.Tensor] = []
        record = inputs.append
        handles = [m.register_forward_pre_hook(lambda _m, args, rec=record: rec(args[0]))
                   for m in modules]
        try:
            loss = F.cross_entropy(net(x.detach().clone().requires_grad_(True)), y)
        finally:
            for handle in handles:
                handle.remove()
        if len(inputs) != len(modules):
            raise ConfigError("a layer ran more or less than once; Hessian traces need each "
                              "quantized layer to run exactly once per forward pass")
        targets = [*weights, *inputs]
        grads = torch.autograd.grad(loss, targets, create_graph=True)
        for _ in range(samples):
            vs = [_rademacher(t.shape, generator) for t in targets]
            hvs = torch.autograd.grad(grads, targets, grad_outputs=vs, retain_graph=True)
            quad = [float((v * hv).sum()) for v, hv in zip(vs, hvs, strict=True)]
            for i in range(len(specs)):
                w_draws[i].append(quad[i] / weights[i].numel())
                a_draws[i].append(quad[len(specs) + i] / inputs[i].numel())
    w = np.array(w_draws)
    a = np.array(a_draws)
    n = w.shape[1]
    return HessianTraces(weight=w.mean(axis=1), act=a.mean(axis=1),
                         weight_std=w.std(axis=1) / np.sqrt(n), act_std=a.std(axis=1) / np.sqrt(n),
                         samples=samples)
