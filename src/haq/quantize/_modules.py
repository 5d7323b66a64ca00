"""Fake-quant wrappers of nn.Conv1d, nn.Conv2d and nn.Linear.

A wrapper *is* the layer it replaces (``QuantConv2d`` subclasses ``nn.Conv2d``) and holds the
very same weight and bias ``Parameter`` objects, so ``state_dict`` keys such as
``features.0.weight`` stay where they were, optimizers built earlier keep working, and
``extract_specs`` on a wrapped model sees the same layers. Quantizer state lives in two child
modules, ``weight_quant`` and ``act_quant`` (keys ``<layer>.weight_quant.*`` and
``<layer>.act_quant.*``), plus the buffer ``<layer>.bias_correction``: the bias correction of the
current weight bits, subtracted from the bias (zero when off or in float).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F  # noqa: N812 - the universal spelling
from torch import nn

from haq.quantize._act import ActQuantizer
from haq.quantize._config import QuantConfig
from haq.quantize._grid import fake_quant, grid_step, integer_ste, to_float32
from haq.quantize._inputs import InputRecord
from haq.quantize._integer import IntegerView, combined_scale
from haq.quantize._recon import PatchMoments
from haq.quantize._stamp import Stamp
from haq.quantize._weight import LinearWeightQuantizer, WeightQuantizer, make_weight_quantizer


class QuantModule(nn.Module):
    """Behaviour shared by the wrappers; ``isinstance(m, QuantModule)`` finds them.

    Attributes:
        weight_quant: quantizer of ``weight`` (linear grid or k-means).
        act_quant: quantizer of the layer's input activation.
        quant_config: the ``QuantConfig`` the layer was wrapped with.
        layer_name: module path of the layer in its model (as in ``LayerSpec.name``).
    """

    float_type: ClassVar[type[nn.Module]]
    weight: nn.Parameter
    bias: nn.Parameter | None
    weight_quant: WeightQuantizer
    act_quant: ActQuantizer

    def __init__(self, *args: Any, config: QuantConfig | None = None, layer_name: str = "",
                 seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_quant(config or QuantConfig(), layer_name, seed)

    def _init_quant(self, config: QuantConfig, layer_name: str, seed: int) -> None:
        self.quant_config = config
        self.layer_name = layer_name
        self.weight_quant = make_weight_quantizer(self.weight, config, seed)
        self.act_quant = ActQuantizer(config, layer_name, device=self.weight.device,
                                      dtype=self.weight.dtype)
        self.register_buffer("bias_correction", torch.zeros(
            self.weight.shape[0], dtype=self.weight.dtype, device=self.weight.device))
        self._corrected = False  # bias_correction holds a non-zero value
        self.inputs: InputRecord | None = None  # what calibration kept of the float inputs
        self._previous_inputs: InputRecord | None = None
        # (stamp of the quantized weight, input step, integer weight, combined scale)
        self._fold: tuple[Stamp, float | None, torch.Tensor, torch.Tensor | None] | None = None

    # -- bits -------------------------------------------------------------------------------
    @property
    def w_bits(self) -> int | None:
        """Weight bit width; ``None`` = float weights."""
        return self.weight_quant.bits

    @w_bits.setter
    def w_bits(self, bits: int | None) -> None:
        self.weight_quant.set_bits(bits, self.weight)
        self._set_correction()

    @property
    def a_bits(self) -> int | None:
        """Bit width of this layer's input activation; ``None`` = float input."""
        return self.act_quant.bits

    @a_bits.setter
    def a_bits(self, bits: int | None) -> None:
        self.act_quant.set_bits(bits)

    def set_bits(self, w_bits: int | None, a_bits: int | None) -> None:
        """Set both bit widths; quantizer state is reset to its calibrated/derived values."""
        self.w_bits = w_bits
        self.act_quant.set_bits(a_bits)

    # -- calibration ------------------------------------------------------------------------
    def begin_observe(self) -> None:
        """Start a calibration pass: record input statistics, compute in float."""
        self.act_quant.begin_observe()
        self._previous_inputs = self.inputs
        keep_sample = getattr(self.weight_quant, "learned", False) or \
            self.quant_config.act_clip == "best"
        moments = PatchMoments(self) if self.quant_config.weight_clip == "output" else None
        self.inputs = InputRecord(keep_sample=keep_sample, linear=isinstance(self, nn.Linear),
                                  moments=moments)

    def end_observe(self, keep: bool = True) -> None:
        """End the pass; ``keep=False`` restores what was recorded before ``begin_observe``."""
        if not keep:
            self.inputs = self._previous_inputs
        self._previous_inputs = None
        self.weight_quant.drop_corrections()
        if keep and isinstance(self.weight_quant, LinearWeightQuantizer):
            self._hand_over_inputs(self.weight_quant)
        if keep and self.quant_config.act_clip == "best":
            self.act_quant.scorer = self._input_error
        self.act_quant.end_observe(keep)
        self.w_bits = self.w_bits

    def _hand_over_inputs(self, quantizer: LinearWeightQuantizer) -> None:
        """Give the weight quantizer what its clip criterion and rounding read of the inputs."""
        record = self.inputs
        if record is None:
            return
        stale = False
        metric = None if record.moments is None else \
            record.moments.metric(centred=self.quant_config.bias_correction)
        if metric is not None:
            quantizer.metric = metric
            stale = True
        if quantizer.learned:
            sample = record.sample()
            quantizer.reconstruction = None if sample is None else (sample, self._reconstruct)
            stale = True
        if stale:  # clips and roundings derived from the previous calibration
            quantizer.clear_cache()

    @torch.no_grad()
    def _input_error(self, clip: float, bits: int, signed: bool) -> float:
        """Squared error of the layer's output when its sampled inputs are quantized."""
        sample = self.inputs.sample() if self.inputs is not None else None
        if sample is None:
            return 0.0
        weight = self.weight.detach()
        error = fake_quant(sample, clip, bits, signed) - sample
        return float(self._reconstruct(error, weight).double().pow(2).sum())

    # -- bias correction --------------------------------------------------------------------
    @torch.no_grad()
    def _set_correction(self) -> None:
        """Load the bias correction of the current weight bits (cached with the weight)."""
        entry = self.weight_quant.current_entry()
        if entry is not None and entry.correction is None and self.quant_config.bias_correction:
            mean = self.inputs.mean() if self.inputs is not None else None
            if mean is not None:  # the mean input is read only when a correction is derived
                entry.correction = self._mean_output_error(entry.qweight, mean)
        if entry is None or entry.correction is None or not self.quant_config.bias_correction:
            self.bias_correction.zero_()
            self._corrected = False
            return
        self.bias_correction.copy_(entry.correction)
        self._corrected = True

    def _mean_output_error(self, qweight: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """E[(W_q - W) x] per output channel over the calibration inputs (and positions)."""
        error = qweight.double() - self.weight.detach().double()
        out = self._reconstruct(mean.unsqueeze(0), error)  # linear in x: mean in, mean out
        return out.reshape(out.shape[1], -1).mean(1).to(self.weight.dtype)

    def _reconstruct(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The layer's output without bias (what learned rounding reconstructs)."""
        return self._compute(x, weight, None)

    def effective_bias(self) -> torch.Tensor | None:
        """The bias the layer computes with: ``bias`` minus the bias correction of its bits."""
        if not self._corrected:
            return self.bias
        if self.bias is None:
            return -self.bias_correction
        return self.bias - self.bias_correction

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str,
                              local_metadata: Any, strict: bool, missing_keys: list[str],
                              unexpected_keys: list[str], error_msgs: list[str]) -> None:
        key = prefix + "bias_correction"
        absent = key not in state_dict
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        if absent:  # saved before bias correction existed: it had none
            self.bias_correction.zero_()
            if key in missing_keys:
                missing_keys.remove(key)
        self._corrected = bool(self.bias_correction.detach().any())

    # -- forward ----------------------------------------------------------------------------
    def effective_weight(self) -> torch.Tensor:
        """The weight the layer computes with: quantized, or the float weight if w_bits is None."""
        return self.weight_quant(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.act_quant
        if act.observing:  # calibration: record the float input, compute in float
            act.observe(x)
            if self.inputs is not None:
                self.inputs.update(x)
            return self._compute(x, self.weight, self.bias)
        bias = self.effective_bias()
        if act.bits is None and self.w_bits is None:
            return self._compute(x, self.weight, bias)
        if not self.training and not torch.is_grad_enabled():
            # Evaluation: one division, round and clamp of x; the integer weight and the
            # combined scale are cached.
            codes, step = act.codes(x) if act.bits is not None else (x, None)
            step = None if step is None else to_float32(step)
            weight, scale = self._cached_integer_weight(step)
            return self._rescale(self._compute(codes, weight, None), scale, bias, inplace=True)
        codes, step = self._input_ste(x)
        weight, w_step = self._weight_ste()
        scale = combined_scale(step, w_step, weight)
        return self._rescale(self._compute(codes, weight, None), scale, bias, inplace=False)

    # -- integer arithmetic -----------------------------------------------------------------
    # The layer computes conv(input codes, integer weight) * (s_x * s_w[c]) + bias: integer
    # products summed in float32 are exact while the sums stay below 2^24, so the result does
    # not depend on the summation order, and an exported graph doing the same operations
    # (``integer_view``) gets the same bits. Both paths below compute these values.
    def integer_view(self) -> IntegerView:
        """What the layer computes with, as integers and scales (for export)."""
        with torch.no_grad():
            step = None
            if self.a_bits is not None:
                step = grid_step(float(self.act_quant.clip), self.a_bits,
                                 bool(self.act_quant.signed))
            weight, scale = self._cached_integer_weight(step)
            return IntegerView(step, weight.detach(), scale, self.effective_bias())

    def _cached_integer_weight(self, step: float | None) -> tuple[torch.Tensor,
                                                                   torch.Tensor | None]:
        weight = self.effective_weight()
        cached = self._fold
        if cached is None or cached[1] != step or not cached[0].matches(weight):
            with torch.no_grad():
                integer, w_step = self._integer_weight(weight)
                cached = self._fold = (Stamp(weight), step, integer,
                                       combined_scale(step, w_step, weight))
        return cached[2], cached[3]

    def _integer_weight(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(integer-valued weight, step per output channel); the float weight if not quantized."""
        if self.w_bits is None:
            return weight, None
        step = self.weight_quant.step()
        step = torch.where(step > 0, step, torch.ones_like(step))  # an all-zero channel
        view = step.reshape((-1,) + (1,) * (weight.dim() - 1))
        return integer_ste(weight / view), step

    def _weight_ste(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self._integer_weight(self.effective_weight())

    def _input_ste(self, x: torch.Tensor) -> tuple[torch.Tensor, float | None]:
        act = self.act_quant
        if act.bits is None:
            return x, None
        quantized = act(x)  # fake-quant value with its straight-through (and PACT) gradient
        step = grid_step(float(act.clip.detach()), act.bits, bool(act.signed))
        return integer_ste(quantized / step), step

    def _rescale(self, out: torch.Tensor, scale: torch.Tensor | None, bias: torch.Tensor | None,
                 inplace: bool) -> torch.Tensor:
        """``out * scale[c] + bias[c]`` (two roundings, as the exported Mul and Add do)."""
        shape = (-1,) if isinstance(self, nn.Linear) else (-1,) + (1,) * (out.dim() - 2)
        if scale is not None:
            out = out.mul_(scale.reshape(shape)) if inplace else out * scale.reshape(shape)
        if bias is not None:
            out = out.add_(bias.reshape(shape)) if inplace else out + bias.reshape(shape)
        return out

    def _compute(self, x: torch.Tensor, weight: torch.Tensor,
                 bias: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    # -- conversion -------------------------------------------------------------------------
    @classmethod
    def _hyper(cls, module: nn.Module) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_float(cls, module: nn.Module, config: QuantConfig | None = None,
                   layer_name: str = "", seed: int = 0) -> QuantModule:
        """A wrapper sharing ``module``'s weight and bias Parameters; bits start as float."""
        wrapper = cls.__new__(cls)
        # Build the float layer on the meta device (no allocation), then adopt the Parameters.
        cls.float_type.__init__(wrapper, **cls._hyper(module), device="meta")
        wrapper.weight = module.weight
        wrapper.bias = module.bias
        wrapper._init_quant(config or QuantConfig(), layer_name, seed)
        wrapper.train(module.training)
        return wrapper

    def to_float(self, bake: bool = False) -> nn.Module:
        """A plain float layer sharing this layer's bias.

        ``bake=False`` shares the float (latent) weight; ``bake=True`` gives it a copy of the
        effective quantized weight and bias (bias correction included) instead, for deployment
        or export.
        """
        bias = self.effective_bias() if bake else self.bias
        plain = self.float_type(**{**self._hyper(self), "bias": bias is not None},
                                device="meta")
        if bake:
            with torch.no_grad():
                baked = self.effective_weight().detach().clone()
            plain.weight = nn.Parameter(baked, requires_grad=self.weight.requires_grad)
            if bias is not None and bias is not self.bias:
                bias = nn.Parameter(bias.detach().clone(), requires_grad=self.weight.requires_grad)
        else:
            plain.weight = self.weight
        plain.bias = bias
        plain.train(self.training)
        return plain

    def _quant_repr(self) -> str:
        return f"w_bits={self.w_bits}, a_bits={self.a_bits}"


def _conv_hyper(module: nn.Module) -> dict[str, Any]:
    return dict(in_channels=module.in_channels, out_channels=module.out_channels,
                kernel_size=module.kernel_size, stride=module.stride, padding=module.padding,
                dilation=module.dilation, groups=module.groups, bias=module.bias is not None,
                padding_mode=module.padding_mode, dtype=module.weight.dtype)


class _QuantConv(QuantModule):
    @classmethod
    def _hyper(cls, module: nn.Module) -> dict[str, Any]:
        return _conv_hyper(module)

    def _compute(self, x: torch.Tensor, weight: torch.Tensor,
                 bias: torch.Tensor | None) -> torch.Tensor:
        return self._conv_forward(x, weight, bias)  # type: ignore[attr-defined]


class QuantConv1d(_QuantConv, nn.Conv1d):
    """Fake-quantized ``nn.Conv1d``; build with ``QuantConv1d.from_float(conv, config)``."""

    float_type = nn.Conv1d

    def extra_repr(self) -> str:
        return f"{nn.Conv1d.extra_repr(self)}, {self._quant_repr()}"


class QuantConv2d(_QuantConv, nn.Conv2d):
    """Fake-quantized ``nn.Conv2d``; build with ``QuantConv2d.from_float(conv, config)``."""

    float_type = nn.Conv2d

    def extra_repr(self) -> str:
        return f"{nn.Conv2d.extra_repr(self)}, {self._quant_repr()}"


class QuantLinear(QuantModule, nn.Linear):
    """Fake-quantized ``nn.Linear``; build with ``QuantLinear.from_float(linear, config)``."""

    float_type = nn.Linear

    @classmethod
    def _hyper(cls, module: nn.Module) -> dict[str, Any]:
        return dict(in_features=module.in_features, out_features=module.out_features,
                    bias=module.bias is not None, dtype=module.weight.dtype)

    def _compute(self, x: torch.Tensor, weight: torch.Tensor,
                 bias: torch.Tensor | None) -> torch.Tensor:
        return F.linear(x, weight, bias)

    def extra_repr(self) -> str:
        return f"{nn.Linear.extra_repr(self)}, {self._quant_repr()}"


WRAPPERS: tuple[type[QuantModule], ...] = (QuantConv1d, QuantConv2d, QuantLinear)
