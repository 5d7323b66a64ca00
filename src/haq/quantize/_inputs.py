"""What calibration keeps of one layer's float inputs beyond the range statistics.

* the mean input (per position: a conv's mean input map), which is all that bias correction
  needs, since a layer is linear in its weight: E[(W_q - W) x] = (W_q - W) E[x];
* when learned rounding asks for it, a bounded sample of whole inputs (at most
  ``SAMPLE_MAX`` samples and ``SAMPLE_ELEMENTS`` numbers per layer);
* when ``weight_clip="output"`` asks for them, the moments of the input patches
  (``PatchMoments``).
"""

from __future__ import annotations

import torch

from haq.quantize._recon import PatchMoments

SAMPLE_MAX = 256
SAMPLE_ELEMENTS = 1 << 21  # 8 MB of float32 per layer


class InputRecord:
    """Running sum of a layer's inputs and, optionally, the first inputs themselves."""

    def __init__(self, keep_sample: bool, linear: bool,
                 moments: PatchMoments | None = None) -> None:
        self.keep_sample = keep_sample
        self.linear = linear
        self.moments = moments
        self.total: torch.Tensor | None = None
        self.count = 0
        self._sample: list[torch.Tensor] = []
        self._kept = 0

    def update(self, x: torch.Tensor) -> None:
        x = x.detach()
        rows = x.reshape(-1, x.shape[-1]) if self.linear else x
        total = rows.sum(0, dtype=torch.float64)
        self.total = total if self.total is None else self.total + total
        self.count += rows.shape[0]
        if self.moments is not None:
            self.moments.update(x)
        if self.keep_sample:
            per_sample = max(1, x[0].numel())
            limit = min(SAMPLE_MAX, max(1, SAMPLE_ELEMENTS // per_sample))
            take = min(x.shape[0], limit - self._kept)
            if take > 0:
                self._sample.append(x[:take].clone())
                self._kept += take

    def mean(self) -> torch.Tensor | None:
        """Mean input (one sample's shape; a Linear's: one feature vector), or None if empty."""
        if self.total is None or self.count == 0:
            return None
        return self.total / self.count

    def sample(self) -> torch.Tensor | None:
        """The kept inputs, batch first (None if none were kept)."""
        return torch.cat(self._sample) if self._sample else None
