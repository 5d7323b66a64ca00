"""Weight quantizers: linear (uniform symmetric grid) and k-means (shared centroids).

Both cache, per bit width, what ``set_bits`` derives from the float weight (the clip, or the
labels and centroids) together with the resulting quantized weight, so setting a layer to a bit
width it has had before costs a copy of a few numbers. The cache belongs to one float weight:
when the weight's storage or version counter changes, its values are compared with a snapshot
and the cache is dropped if they differ. Restoring the same values (``load_state_dict`` of a
saved copy, as a search does between episodes) therefore keeps the cache.

Forward passes in train mode, or whenever autograd needs the weight's gradient, never use a
cache: they quantize the live weight through the straight-through estimator.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from haq.policy import MAX_BITS
from haq.quantize._clip import weight_clip
from haq.quantize._config import QuantConfig
from haq.quantize._grid import dyadic_step, fake_quant, fake_quant_ste, grid_max
from haq.quantize._kmeans import kmeans_1d
from haq.quantize._recon import output_clip
from haq.quantize._rounding import Forward, apply_mask, learn_mask, nearest_mask
from haq.quantize._stamp import Stamp


def layer_seed(seed: int, name: str) -> int:
    """A per-layer seed that is stable across processes (``hash`` of a str is not)."""
    return (seed * 0x9E3779B1 + zlib.crc32(name.encode())) % (1 << 62)


@dataclass
class _Entry:
    """What ``set_bits`` derived for one bit width: quantizer state and the quantized weight."""

    state: tuple[torch.Tensor, ...]
    qweight: torch.Tensor
    correction: torch.Tensor | None = None  # the layer's bias correction, set by the layer


class WeightQuantizer(nn.Module):
    """Base class: bit width, per-bits cache keyed on the float weight, eval-time slot."""

    def __init__(self) -> None:
        super().__init__()
        self.bits: int | None = None
        self._cache: dict[int, _Entry] = {}
        self._source: tuple[Stamp, torch.Tensor] | None = None  # (stamp, snapshot)
        self._slot: tuple[Any, Stamp, torch.Tensor] | None = None  # (bits, stamp, qweight)

    def clear_cache(self) -> None:
        """Forget everything derived from the float weight (call after editing it via .data)."""
        self._cache.clear()
        self._source = None
        self._slot = None

    def current_entry(self) -> _Entry | None:
        """What ``set_bits`` derived for the current bits (None in float)."""
        return None if self.bits is None else self._cache.get(self.bits)

    def drop_corrections(self) -> None:
        """Forget the layers' bias corrections (they depend on the calibration inputs)."""
        for entry in self._cache.values():
            entry.correction = None

    def set_bits(self, bits: int | None, weight: torch.Tensor) -> None:
        """Quantize ``weight`` to ``bits`` (``None`` = float) from now on."""
        self.bits = bits
        self._slot = None
        if bits is None:
            return
        self._check_source(weight)
        entry = self._cache.get(bits)
        if entry is None:
            entry = self._derive(weight, bits)
            self._cache[bits] = entry
        with torch.no_grad():
            self._load_state(entry.state)
        self._slot = (bits, Stamp(*self._stamped(weight)), entry.qweight)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.bits is None:
            return weight
        if self.training or (torch.is_grad_enabled() and self._needs_grad(weight)):
            return self._quantize_live(weight, self.bits)
        slot = self._slot
        tensors = self._stamped(weight)
        if slot is None or slot[0] != self.bits or not slot[1].matches(*tensors):
            with torch.no_grad():
                slot = self._slot = (self.bits, Stamp(*tensors),
                                     self._quantize_live(weight, self.bits))
        return slot[2]

    def _check_source(self, weight: torch.Tensor) -> None:
        if self._source is not None:
            stamp, snapshot = self._source
            if stamp.matches(weight):
                return
            same_layout = (snapshot.shape == weight.shape and snapshot.dtype == weight.dtype
                           and snapshot.device == weight.device)
            if same_layout and torch.equal(snapshot, weight.detach()):
                self._source = (Stamp(weight), snapshot)
                return
        self._cache.clear()
        self._source = (Stamp(weight), weight.detach().clone())

    # -- implemented by subclasses -----------------------------------------------------------
    def step(self) -> torch.Tensor:
        """Step of the quantized weight's integer grid per output channel (or one), detached.

        ``quantized weight / step`` is integer-valued (up to float error): the layer computes
        with those integers and multiplies its output by the step.
        """
        raise NotImplementedError

    def _derive(self, weight: torch.Tensor, bits: int) -> _Entry:
        raise NotImplementedError

    def _load_state(self, state: tuple[torch.Tensor, ...]) -> None:
        raise NotImplementedError

    def _stamped(self, weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The tensors the quantized weight is a function of."""
        raise NotImplementedError

    def _needs_grad(self, weight: torch.Tensor) -> bool:
        raise NotImplementedError

    def _quantize_live(self, weight: torch.Tensor, bits: int) -> torch.Tensor:
        raise NotImplementedError


class LinearWeightQuantizer(WeightQuantizer):
    """Symmetric uniform grid; one clip per output channel or per tensor (buffer ``clip``).

    The clip is chosen by ``set_bits`` from the float weight and then held fixed, so
    fine-tuning trains the weights against a stable grid (the official code does the same).
    With ``QuantConfig(rounding="learned")`` a 0/1 round-up mask per weight (buffer
    ``rounding``) replaces rounding to nearest; it is learned from the layer's calibration
    inputs (``reconstruction``) and fine-tuning keeps it: ``floor(w / s) + mask``.
    """

    def __init__(self, weight: torch.Tensor, config: QuantConfig, seed: int = 0) -> None:
        super().__init__()
        self.per_channel = config.weight_granularity == "per_channel"
        self.method = config.weight_clip
        self.percentile = config.percentile
        self.kl_below_bits = config.kl_below_bits
        self.learned = config.rounding == "learned"
        self.seed = seed
        # (float input sample, forward(x, w) without bias): what learned rounding reconstructs
        self.reconstruction: tuple[torch.Tensor, Forward] | None = None
        self.metric: torch.Tensor | None = None  # input-patch moments for clip="output"
        rows = weight.shape[0] if self.per_channel else 1
        self.register_buffer("clip", torch.ones(rows, dtype=weight.dtype, device=weight.device))
        if self.learned:
            self.register_buffer("rounding", torch.zeros_like(weight, dtype=torch.uint8))

    def _clip_view(self, weight: torch.Tensor) -> torch.Tensor:
        return self.clip.reshape((-1,) + (1,) * (weight.dim() - 1))

    def _clip(self, weight: torch.Tensor, bits: int) -> torch.Tensor:
        if self.method == "output" and self.metric is not None and grid_max(bits, True) > 0:
            return output_clip(weight, bits, self.metric, self.per_channel)
        # before calibration the output criterion has no inputs; weight MSE is its stand-in
        method = "mse" if self.method == "output" else self.method
        return weight_clip(weight, bits, method, self.per_channel, self.percentile,
                           self.kl_below_bits)

    def _derive(self, weight: torch.Tensor, bits: int) -> _Entry:
        clip = self._clip(weight, bits).to(self.clip.dtype)
        view = clip.reshape((-1,) + (1,) * (weight.dim() - 1))
        if not self.learned:
            return _Entry((clip,), fake_quant(weight.detach(), view, bits, True))
        n = grid_max(bits, True)
        if n == 0:  # the binary grid {-c, +c} has nothing to round
            mask = torch.zeros_like(weight, dtype=torch.uint8)
            return _Entry((clip, mask), fake_quant(weight.detach(), view, bits, True))
        scale = view / n
        if self.reconstruction is None:
            mask = nearest_mask(weight.detach(), scale)
        else:
            inputs, forward = self.reconstruction
            generator = torch.Generator().manual_seed((self.seed * 16 + bits) % (1 << 62))
            mask = learn_mask(weight, scale, bits, inputs, forward, generator)
        return _Entry((clip, mask), apply_mask(weight.detach(), scale, mask, bits))

    def step(self) -> torch.Tensor:
        n = grid_max(int(self.bits or 8), True)
        clip = self.clip.detach()
        return clip / n if n else clip

    def _load_state(self, state: tuple[torch.Tensor, ...]) -> None:
        self.clip.copy_(state[0])
        if self.learned:
            self.rounding.copy_(state[1])

    def _stamped(self, weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (weight, self.clip, self.rounding) if self.learned else (weight, self.clip)

    def _needs_grad(self, weight: torch.Tensor) -> bool:
        return weight.requires_grad

    def _quantize_live(self, weight: torch.Tensor, bits: int) -> torch.Tensor:
        clip = self._clip_view(weight)
        n = grid_max(bits, True)
        if not self.learned or n == 0:
            return fake_quant_ste(weight, clip, bits, True)
        clamped = torch.clamp(weight, -clip, clip)
        rounded = apply_mask(weight.detach(), clip / n, self.rounding, bits)
        return clamped + (rounded - clamped.detach())

    def extra_repr(self) -> str:
        scope = "per_channel" if self.per_channel else "per_tensor"
        rounding = ", learned rounding" if self.learned else ""
        return f"bits={self.bits}, {scope}, clip={self.method}{rounding}"


class KMeansWeightQuantizer(WeightQuantizer):
    """2^b shared values per layer: ``labels`` (fixed) index trainable ``centroids``.

    The effective weight is ``centroids[labels]``, so shared weights stay shared after any
    optimizer step. Each centroid's gradient is the *mean* of its members' gradients: with SGD
    (momentum and weight decay included) a centroid then moves exactly as the official code's
    "step every weight, then reset it to its cluster mean" does, at the same learning rate.
    Deep Compression sums the gradients instead, which scales a centroid's step by its cluster
    size. The float weight is not used while quantized.
    """

    def __init__(self, weight: torch.Tensor, config: QuantConfig, seed: int) -> None:
        super().__init__()
        self.iters = config.kmeans_iters
        self.seed = seed
        labels = torch.zeros_like(weight, dtype=torch.uint8)
        self.register_buffer("labels", labels)
        self.centroids = nn.Parameter(
            torch.zeros(1 << MAX_BITS, dtype=weight.dtype, device=weight.device))
        self._counts: tuple[Stamp, torch.Tensor] | None = None  # cluster sizes, for the grad

    def _derive(self, weight: torch.Tensor, bits: int) -> _Entry:
        generator = torch.Generator().manual_seed((self.seed * 16 + bits) % (1 << 62))
        centroids, labels = kmeans_1d(weight, 1 << bits, self.iters, generator)
        centroids = centroids.to(self.centroids.dtype).to(weight.device)
        step = dyadic_step(centroids.abs().max())
        centroids = torch.round(centroids / step) * step  # on the layer's integer grid, exactly
        labels = labels.to(torch.uint8).to(weight.device)
        return _Entry((labels, centroids), centroids[labels.long()])

    def step(self) -> torch.Tensor:
        """A power of two per layer: ``centroids / step`` are integers of at most 12 bits."""
        used = self.centroids.detach()[: 1 << int(self.bits or 0)]
        return dyadic_step(used.abs().max()).reshape(1)

    def _load_state(self, state: tuple[torch.Tensor, ...]) -> None:
        labels, centroids = state
        self.labels.copy_(labels)
        self.centroids.zero_()
        self.centroids[: centroids.numel()].copy_(centroids)

    def _stamped(self, weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (self.centroids, self.labels)

    def _needs_grad(self, weight: torch.Tensor) -> bool:
        return self.centroids.requires_grad

    def _quantize_live(self, weight: torch.Tensor, bits: int) -> torch.Tensor:
        labels = self.labels.long()
        if not (torch.is_grad_enabled() and self.centroids.requires_grad):
            return self.centroids[labels]
        stamp = self._counts
        if stamp is None or not stamp[0].matches(self.labels):
            counts = torch.bincount(labels.reshape(-1), minlength=self.centroids.numel())
            stamp = self._counts = (Stamp(self.labels), counts.clamp_min(1))
        return _SharedGather.apply(self.centroids, labels, stamp[1])

    def extra_repr(self) -> str:
        return f"bits={self.bits}, kmeans, iters={self.iters}"


class _SharedGather(torch.autograd.Function):
    """``centroids[labels]`` whose backward averages (not sums) the gradient per centroid."""

    @staticmethod
    def forward(ctx: Any, centroids: torch.Tensor, labels: torch.Tensor,
                counts: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(labels, counts)
        return centroids[labels]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        labels, counts = ctx.saved_tensors
        total = torch.zeros(counts.shape, dtype=grad.dtype, device=grad.device)
        total.index_add_(0, labels.reshape(-1), grad.reshape(-1))
        return total / counts, None, None


def make_weight_quantizer(weight: torch.Tensor, config: QuantConfig,
                          seed: int) -> WeightQuantizer:
    """The weight quantizer ``config.weight_method`` asks for."""
    if config.weight_method == "kmeans":
        return KMeansWeightQuantizer(weight, config, seed)
    return LinearWeightQuantizer(weight, config, seed)
