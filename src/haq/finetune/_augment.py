"""Batched, seeded image augmentation: random crop with zero padding and horizontal flip."""

from __future__ import annotations

import torch


def crop_padding(height: int) -> int:
    """Padding for random crops: 2 px at 28x28 (the analogue of 4 px at 32x32), >= 1 px."""
    return max(1, round(height / 14))


def augment_batch(x: torch.Tensor, generator: torch.Generator,
                  fill: float | None = None) -> torch.Tensor:
    """Shift each image by up to ``crop_padding`` pixels and flip half of them left-right.

    Args:
        x: images ``(N, C, H, W)``.
        generator: CPU generator all random draws come from.
        fill: value of the padded border; default the batch minimum (black in normalised
            images, whose background is the darkest value).
    """
    n, _, height, width = x.shape
    pad = crop_padding(height)
    value = float(x.min()) if fill is None else fill
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=value)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    rows = (dy[:, None] + torch.arange(height, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(width, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channels = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    out = padded[batch, channels, rows, cols]
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], out.flip(-1), out)
