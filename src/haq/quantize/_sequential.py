"""Sequential bias correction: each layer's mean output shift measured with its inputs quantized.

The per-layer correction (``QuantModule.effective_bias``) removes the mean output error that a
layer's *own* weight quantization causes on float inputs, so it can be cached per (layer,
bits). A quantized network also shifts every layer's *inputs*: the errors of the layers
upstream (and of the activation grids) add up, and on a deep depthwise network at 3-4 bits
that accumulated shift costs more than any single layer's error. This step measures it: the
calibration pass records a sample of the model's inputs and every layer's mean float output
on them, per output channel; after a policy is set, one pass of the quantized model over the
same sample, in layer order, subtracts from each layer the remaining difference between its
mean output and the float one before the next layer sees it (empirical bias correction).

The result depends on every layer upstream, so it is computed per policy (one forward pass of
the sample) and only the last policy's corrections are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from haq.quantize._modules import QuantModule
from haq.quantize._stamp import Stamp

SAMPLE_IMAGES = 1024  # model inputs kept for the correction pass, at most (the default)
SAMPLE_ELEMENTS = 1 << 22  # ... and at most this many input numbers (16 MB of float32)

BitsKey = tuple[tuple[str, int | None, int | None], ...]


def channel_mean(layer: nn.Module, output: torch.Tensor) -> torch.Tensor:
    """Mean of ``output`` per output channel (a Linear's last axis, a conv's axis 1), float64."""
    if isinstance(layer, nn.Linear) or output.dim() < 3:
        return output.detach().reshape(-1, output.shape[-1]).double().mean(0)
    return output.detach().transpose(0, 1).reshape(output.shape[1], -1).double().mean(1)


class CorrectionSample:
    """What the correction pass needs: model inputs and each layer's float output mean on them."""

    def __init__(self, inputs: torch.Tensor, float_means: Mapping[str, torch.Tensor]) -> None:
        self.inputs = inputs
        self.float_means = dict(float_means)
        # the last policy's shifts, with the weights and biases they were measured with
        self.last: tuple[BitsKey, Stamp, dict[str, torch.Tensor]] | None = None


class SampleRecorder:
    """Keeps the first inputs of a calibration pass and the float output means on them."""

    def __init__(self, layers: Mapping[str, QuantModule], images: int = SAMPLE_IMAGES) -> None:
        self.layers = layers
        self.images = images
        self.inputs: list[torch.Tensor] = []
        self.kept = 0
        self.take = 0  # how many samples of the current batch are kept
        self.sums: dict[str, torch.Tensor] = {}
        self._seen: set[str] = set()  # layers already recorded in the current pass

    def offer(self, x: torch.Tensor) -> None:
        """The next calibration batch: keep its first samples while there is room."""
        per_sample = max(1, x[0].numel()) if x.dim() > 0 and len(x) else 1
        limit = min(self.images, max(1, SAMPLE_ELEMENTS // per_sample))
        self.take = max(0, min(len(x), limit - self.kept))
        if self.take:
            self.inputs.append(x[: self.take].detach().clone())
            self.kept += self.take

    def _hook(self, name: str) -> Callable[..., None]:
        def record(layer: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            if self.take and name not in self._seen:
                self._seen.add(name)
                total = channel_mean(layer, output[: self.take]) * self.take
                self.sums[name] = self.sums[name] + total if name in self.sums else total
        return record

    @contextmanager
    def recording(self) -> Iterator[None]:
        handles = [layer.register_forward_hook(self._hook(name))
                   for name, layer in self.layers.items()]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def run(self, model: nn.Module, x: torch.Tensor) -> None:
        """One calibration forward pass of ``x``, recording what it keeps."""
        self.offer(x)
        self._seen = set()
        model(x)

    def result(self) -> CorrectionSample | None:
        if not self.inputs or len(self.sums) != len(self.layers):
            return None
        means = {name: total / self.kept for name, total in self.sums.items()}
        return CorrectionSample(torch.cat(self.inputs), means)


def _bits_key(layers: Mapping[str, QuantModule]) -> BitsKey:
    return tuple((name, m.w_bits, m.a_bits) for name, m in layers.items())


@torch.no_grad()
def correct_sequentially_(model: nn.Module, sample: CorrectionSample,
                          layers: Mapping[str, QuantModule]) -> None:
    """Add to each layer's bias correction its mean output shift against float, in layer order.

    Layers whose config has ``sequential_correction`` off, or that compute in float, are left
    alone (their shift still reaches the layers after them, which correct it). Expects the
    per-layer corrections of the current bits to be loaded (``set_policy_`` does that).
    """
    active = {name: m for name, m in layers.items()
              if m.quant_config.sequential_correction and (m.w_bits or m.a_bits)}
    if not active:
        return
    key = _bits_key(layers)
    params = [t for m in layers.values() for t in (m.weight, m.bias) if t is not None]
    last = sample.last
    if last is None or last[0] != key or not last[1].matches(*params):
        last = sample.last = (key, Stamp(*params), _measure(model, sample, active))
    for name, shift in last[2].items():
        _add_correction(active[name], shift)


def _measure(model: nn.Module, sample: CorrectionSample,
             active: Mapping[str, QuantModule]) -> dict[str, torch.Tensor]:
    shifts: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Callable[..., torch.Tensor | None]:
        def correct(layer: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
            if name in shifts:  # a layer called twice per pass is corrected once
                return None
            shift = channel_mean(layer, output) - sample.float_means[name].to(output.device)
            shifts[name] = shift.to(output.dtype)
            axis = output.dim() - 1 if isinstance(layer, nn.Linear) else 1
            view = [1] * output.dim()
            view[axis] = -1
            return output - shifts[name].reshape(view)
        return correct

    handles = [layer.register_forward_hook(hook(name)) for name, layer in active.items()]
    was_training = model.training
    try:
        model.eval()
        device = next(iter(active.values())).weight.device
        model(sample.inputs.to(device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return shifts


def _add_correction(layer: QuantModule, shift: torch.Tensor) -> None:
    correction: torch.Tensor = layer.bias_correction  # type: ignore[assignment]
    correction += shift
    layer._corrected = bool(correction.any())
