"""The input-activation quantizer of one layer: calibration statistics, clip, signedness.

``a_bits`` of layer k is the bit width of layer k's *input*. The clip for a bit width is
computed from the statistics that ``calibrate_`` collected once, so changing bits re-runs no
data. The clip and the signedness are state (``clip``, ``signed``) so that a checkpoint of a
fine-tuned model carries them; the clip is a PACT-style trainable parameter when
``QuantConfig.learnable_clip`` is set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from haq.errors import ConfigError
from haq.quantize._config import QuantConfig
from haq.quantize._grid import fake_quant_ste, grid_max, quant_codes
from haq.quantize._stamp import Stamp
from haq.quantize._stats import ActStats

CANDIDATES = ("max", "mse", "percentile")  # the clips act_clip="best" chooses among
Scorer = Callable[[float, int, bool], float]  # (clip, bits, signed) -> the layer's output error


class ActQuantizer(nn.Module):
    """Fake-quantizes a tensor to ``bits`` on a signed or unsigned grid with clip ``clip``."""

    def __init__(self, config: QuantConfig, layer_name: str = "", *,
                 device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.layer_name = layer_name
        self.method = config.act_clip
        self.percentile = config.percentile
        self.kl_below_bits = config.kl_below_bits
        self.signed_mode = config.act_signed
        self.bits: int | None = None
        self.stats: ActStats | None = None
        self.observing = False
        clip = torch.full((), float("nan"), device=device, dtype=dtype)
        if config.learnable_clip:
            self.clip = nn.Parameter(clip)
        else:
            self.register_buffer("clip", clip)
        self.register_buffer("signed", torch.tensor(config.act_signed is True, device=device))
        self._clips: dict[tuple[int, bool], float] = {}
        self.scorer: Scorer | None = None  # set by the layer for act_clip="best"
        self._previous_stats: ActStats | None = None
        self._ready = False  # clip and signedness checked since the last load or change
        self._signed_value = config.act_signed is True
        self._clip_value: tuple[Stamp, float] | None = None  # python copy of clip, no-grad path

    # -- calibration ------------------------------------------------------------------------
    def begin_observe(self) -> None:
        """Start collecting fresh statistics; forward passes then return the input unchanged."""
        self._previous_stats = self.stats
        self.stats = ActStats()
        self.observing = True

    def end_observe(self, keep: bool = True) -> None:
        """Stop collecting; ``keep=False`` restores the statistics held before ``begin_observe``."""
        self.observing = False
        if not keep:
            self.stats = self._previous_stats
        self._previous_stats = None
        self._clips.clear()
        self.set_bits(self.bits)

    def observe(self, x: torch.Tensor) -> None:
        if self.stats is None:
            self.stats = ActStats()
        self.stats.update(x, where=f"input of layer {self.layer_name!r}")

    # -- bits and clip ----------------------------------------------------------------------
    def resolved_signed(self) -> bool:
        """The grid's signedness: forced by the config, or from calibration (``min < 0``)."""
        if self.signed_mode == "auto":
            return self.stats.has_negative if self.stats is not None else self._signed_value
        return bool(self.signed_mode)

    def clip_for(self, bits: int) -> float:
        """Clip of a ``bits``-bit grid from the calibration statistics (cached per bits)."""
        if self.stats is None:
            raise ConfigError(f"layer {self.layer_name!r} has no calibration statistics; "
                              "pass calibration_data to apply_policy_ or call calibrate_")
        signed = self.resolved_signed()
        key = (bits, signed)
        if key not in self._clips:
            self._clips[key] = self._best(bits, signed) if self.method == "best" else \
                self.stats.clip(self.method, bits, signed, self.percentile, self.kl_below_bits)
        return self._clips[key]

    def _best(self, bits: int, signed: bool) -> float:
        """The candidate clip with the least output error (MSE if nothing can score them)."""
        stats, scorer = self.stats, self.scorer
        if stats is None:
            raise ConfigError(f"layer {self.layer_name!r} has no calibration statistics")
        clips = [stats.clip(m, bits, signed, self.percentile, self.kl_below_bits)
                 for m in CANDIDATES]
        if scorer is None:
            return clips[CANDIDATES.index("mse")]
        return min(clips, key=lambda clip: scorer(clip, bits, signed))

    def set_bits(self, bits: int | None) -> None:
        """Quantize to ``bits`` (``None`` = float); resets the clip to its calibrated value.

        Without calibration statistics the clip is left as it is (e.g. loaded from a
        checkpoint); a forward pass then refuses to run if it was never set.
        """
        self.bits = bits
        if bits is None or self.stats is None or self.stats.count == 0:
            return
        signed = self.resolved_signed()
        value = self.clip_for(bits)
        with torch.no_grad():
            self.clip.fill_(value)
            self.signed.fill_(signed)
        self._signed_value = signed
        self._ready = True

    # -- forward ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            self.observe(x)
            return x
        if self.bits is None:
            return x
        if torch.is_grad_enabled() and (self.clip.requires_grad or x.requires_grad):
            self._check_ready()
            return fake_quant_ste(x, self.clip, self.bits, self._signed_value)
        codes, scale = self.codes(x)
        return codes.mul_(scale)

    def codes(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        """No-grad fast path: integer codes (as floats) and the scale, ``x_q = codes * scale``.

        The wrapper folds ``scale`` into its cached weight, which saves a pass over ``x``.
        """
        if self.bits is None:
            raise ConfigError(f"layer {self.layer_name!r}: codes() needs a_bits to be set")
        self._check_ready()
        stamped = self._clip_value
        if stamped is None or not stamped[0].matches(self.clip):
            stamped = self._clip_value = (Stamp(self.clip), float(self.clip.detach()))
        clip = stamped[1]
        n = grid_max(self.bits, self._signed_value)
        return quant_codes(x, clip, self.bits, self._signed_value), (clip / n if n else clip)

    def _check_ready(self) -> None:
        if self._ready:
            return
        value = float(self.clip.detach())
        if not value > 0:  # NaN (never set) fails too
            raise ConfigError(
                f"layer {self.layer_name!r} quantizes its input to {self.bits} bits but has no "
                "activation range: pass calibration_data to apply_policy_ (or call calibrate_), "
                "or load a state_dict saved from a calibrated model")
        self._signed_value = bool(self.signed)
        self._ready = True

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str,
                              *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._ready = False  # re-read the loaded clip and signedness at the next forward

    def extra_repr(self) -> str:
        return f"bits={self.bits}, clip={self.method}, signed={self.signed_mode}"
