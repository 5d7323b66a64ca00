"""What a quantized layer computes, in integers: the view the exporters read.

Both haq's evaluation and the exported graphs compute ``conv(codes, integer weight)``, then one
multiply by the combined per-channel scale, then the bias, so they agree bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class IntegerView:
    """A quantized layer as it computes: ``conv(x / input_step, weight) * scale[c] + bias[c]``.

    Attributes:
        input_step: float32 step of the input grid (codes = round-half-even(x / step), clamped);
            None for a float input.
        weight: integer-valued weight (a float tensor), or the float weight if not quantized.
        scale: per output channel ``input_step * weight step`` in float32 (one value if only
            the input is quantized; None if nothing is).
        bias: the effective bias (bias correction included), or None.
    """

    input_step: float | None
    weight: torch.Tensor
    scale: torch.Tensor | None
    bias: torch.Tensor | None


def combined_scale(step: float | None, w_step: torch.Tensor | None,
                    like: torch.Tensor) -> torch.Tensor | None:
    """``s_x * s_w[c]`` in float32 (the one multiply after the integer conv)."""
    if w_step is None:
        return None if step is None else torch.full((1,), step, dtype=like.dtype,
                                                    device=like.device)
    return w_step if step is None else w_step * step
