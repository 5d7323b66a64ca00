"""Data-free probe inputs for OHQ's sensitivity estimate.

OHQ runs on the device with no access to the training data, so its probes see synthetic inputs.
Two kinds are offered:

* ``"gaussian"``: standard-normal tensors of the model's input shape (the models see normalised
  inputs, so this matches their first two moments).
* ``"bn"``: Gaussian noise optimised so that the batch statistics at every BatchNorm layer match
  that layer's running mean and variance (the ZeroQ "distilled data" recipe). The network's own
  statistics pull the inputs towards what it was trained on, with no data at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from haq.errors import ConfigError

SYNTHETIC_KINDS = ("bn", "gaussian")


def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None]


def gaussian_inputs(shape: Sequence[int], batches: int, generator: torch.Generator
                    ) -> list[torch.Tensor]:
    """``batches`` standard-normal tensors of ``shape`` (batch dimension included)."""
    return [torch.randn(tuple(shape), generator=generator) for _ in range(batches)]


def bn_matched_inputs(model: nn.Module, shape: Sequence[int], batches: int,
                      generator: torch.Generator, *, steps: int = 30, lr: float = 0.2
                      ) -> list[torch.Tensor]:
    """Inputs whose per-BatchNorm batch statistics match the running statistics (ZeroQ).

    Args:
        model: the float model (not modified; it is run in eval mode).
        shape: input shape with the batch dimension, e.g. (32, 1, 28, 28).
        batches: how many independent batches to distil.
        generator: seeds the starting noise.
        steps: Adam steps per batch (ZeroQ used 500 on ImageNet; small models settle sooner).
        lr: Adam learning rate on the inputs.

    Raises:
        ConfigError: the model has no BatchNorm layer to match (use ``"gaussian"``).
    """
    bns = _bn_layers(model)
    if not bns:
        raise ConfigError("synthetic='bn' needs BatchNorm layers with running statistics; "
                          "this model has none, use synthetic='gaussian'")
    stats: list[tuple[torch.Tensor, torch.Tensor]] = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        x = inputs[0]
        dims = [d for d in range(x.dim()) if d != 1]
        stats.append((x.mean(dim=dims), x.var(dim=dims, unbiased=False)))

    handles = [bn.register_forward_hook(hook) for bn in bns]
    was_training = model.training
    params = list(model.parameters())
    grad_flags = [p.requires_grad for p in params]
    out = []
    try:
        model.eval()
        for p in params:
            p.requires_grad_(False)
        for _ in range(batches):
            x = torch.randn(tuple(shape), generator=generator).requires_grad_(True)
            opt = torch.optim.Adam([x], lr=lr)
            for _ in range(steps):
                stats.clear()
                opt.zero_grad()
                model(x)
                loss = sum(((mu - bn.running_mean) ** 2).sum() / bn.running_mean.numel()
                           + ((var - bn.running_var) ** 2).sum() / bn.running_var.numel()
                           for (mu, var), bn in zip(stats, bns, strict=True))
                loss.backward()
                opt.step()
            out.append(x.detach())
    finally:
        for handle in handles:
            handle.remove()
        for p, flag in zip(params, grad_flags, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)
    return out


def synthetic_inputs(model: nn.Module, shape: Sequence[int], kind: str, *, batches: int = 1,
                     seed: int = 0, steps: int = 30) -> list[torch.Tensor]:
    """Probe inputs of ``kind`` ("bn" or "gaussian"), deterministic in ``seed``."""
    if kind not in SYNTHETIC_KINDS:
        raise ConfigError(f"synthetic={kind!r} is not supported; choose one of "
                          f"{', '.join(SYNTHETIC_KINDS)} (or pass calibration data)")
    generator = torch.Generator().manual_seed(int(seed))
    if kind == "gaussian":
        return gaussian_inputs(shape, batches, generator)
    return bn_matched_inputs(model, shape, batches, generator, steps=steps)


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` has a BatchNorm layer with running statistics."""
    return bool(_bn_layers(model))
