"""Learned rounding (AdaRound-style): round each weight up or down to reconstruct the layer.

Rounding to nearest minimises each weight's own error, not the error of the layer's output.
Here every weight w on a grid of step s becomes ``s * clamp(floor(w / s) + h, -n, n)`` with
``h`` in [0, 1] a rectified sigmoid of a free variable; ``h`` is trained with Adam to minimise
the squared error of the layer's output on a sample of its calibration inputs, plus a penalty
``1 - |2h - 1|^beta`` whose exponent anneals from 20 to 2 so that every ``h`` ends at 0 or 1.
Both terms are scale-free (the output error relative to the output's energy, the penalty
averaged over the weights), so one ``PENALTY`` serves layers of any size and scale.
The result is a 0/1 "round up" mask per weight; the grid (clip) is kept as chosen before.

The inputs are the layer's *float* inputs, so the result depends on the layer and its bits
only and can be cached per (layer, bits) for a search.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from haq.quantize._grid import grid_max

STEPS = 400  # Adam steps per (layer, bits), measured on the zoo models (docs/quantization.md)
BATCH = 32  # calibration samples per step
LR = 1e-2
PENALTY = 1.0  # weight of the (mean) rounding penalty against the relative output error
WARMUP = 0.2  # fraction of the steps with no rounding penalty
BETA = (20.0, 2.0)
_ZETA, _GAMMA = 1.1, -0.1  # stretch of the rectified sigmoid, so h reaches exactly 0 and 1

Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _soft(v: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.sigmoid(v) * (_ZETA - _GAMMA) + _GAMMA, 0.0, 1.0)


def _initial(rest: torch.Tensor) -> torch.Tensor:
    """The free variable whose rectified sigmoid equals ``rest`` (the fractional part)."""
    rest = rest.clamp(0.01, 0.99)
    return -torch.log((_ZETA - _GAMMA) / (rest - _GAMMA) - 1.0)


def nearest_mask(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Round-up mask (0/1, uint8) that reproduces rounding to nearest."""
    scaled = weight / scale
    return (torch.round(scaled) > torch.floor(scaled)).to(torch.uint8)


def apply_mask(weight: torch.Tensor, scale: torch.Tensor, mask: torch.Tensor,
               bits: int) -> torch.Tensor:
    """The quantized weight ``scale * clamp(floor(w / scale) + mask, -n, n)``."""
    n = grid_max(bits, True)
    return torch.clamp(torch.floor(weight / scale) + mask, -n, n) * scale


def learn_mask(weight: torch.Tensor, scale: torch.Tensor, bits: int, inputs: torch.Tensor,
               forward: Forward, generator: torch.Generator,
               steps: int = STEPS) -> torch.Tensor:
    """Learn the round-up mask of ``weight`` on the grid of step ``scale`` (per channel view).

    Args:
        weight: the float weight (not modified).
        scale: grid step, broadcastable against ``weight`` (clip / n).
        bits: signed grid width (>= 2; the binary grid has nothing to round).
        inputs: a sample of the layer's float inputs, batch first.
        forward: ``forward(x, w)`` computes the layer's output without bias.
        generator: draws the mini-batches (CPU generator).
        steps: Adam steps.
    """
    weight = weight.detach()
    n = grid_max(bits, True)
    floor = torch.floor(weight / scale)
    v = _initial(weight / scale - floor).requires_grad_(True)
    optimizer = torch.optim.Adam([v], lr=LR)
    warm = int(WARMUP * steps)
    with torch.enable_grad():
        for step in range(steps):
            pick = torch.randint(0, inputs.shape[0], (min(BATCH, inputs.shape[0]),),
                                 generator=generator).to(inputs.device)
            x = inputs[pick]
            with torch.no_grad():
                target = forward(x, weight)
            h = _soft(v)
            out = forward(x, torch.clamp(floor + h, -n, n) * scale)
            loss = (out - target).pow(2).mean() / target.pow(2).mean().clamp_min(1e-12)
            if step >= warm:
                progress = (step - warm) / max(1, steps - warm)
                beta = BETA[1] + 0.5 * (BETA[0] - BETA[1]) * (1 + math.cos(math.pi * progress))
                loss = loss + PENALTY * (1 - (2 * h - 1).abs().pow(beta)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return (v.detach() >= 0).to(torch.uint8)
