"""QuantConfig: how weights and activations are fake-quantized. Bit widths come from the Policy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Literal

from haq.errors import ConfigError

Granularity = Literal["per_channel", "per_tensor"]
WeightMethod = Literal["linear", "kmeans"]
ClipMethod = Literal["max", "mse", "kl", "percentile"]
ActClipMethod = Literal["max", "mse", "kl", "percentile", "best"]
WeightClipMethod = Literal["max", "mse", "kl", "percentile", "output"]
Rounding = Literal["nearest", "learned"]

GRANULARITIES = ("per_channel", "per_tensor")
WEIGHT_METHODS = ("linear", "kmeans")
CLIP_METHODS = ("max", "mse", "kl", "percentile")
WEIGHT_CLIP_METHODS = (*CLIP_METHODS, "output")
ACT_CLIP_METHODS = (*CLIP_METHODS, "best")
ROUNDINGS = ("nearest", "learned")
CONFIG_VERSION = 1


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"QuantConfig.{name}={value!r} is not supported; choose one of "
                          f"{', '.join(repr(a) for a in allowed)}")


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    bad_type = isinstance(value, bool) or not isinstance(value, int)
    if bad_type or value < low or (high is not None and value > high):
        upper = f" and <= {high}" if high is not None else ""
        raise ConfigError(f"QuantConfig.{name}={value!r} must be an integer >= {low}{upper}")


@dataclass(frozen=True)
class QuantConfig:
    """How ``apply_policy_`` fake-quantizes a layer. The bit widths themselves live in the Policy.

    Args:
        weight_granularity: ``"per_channel"`` (one symmetric scale per output channel, the
            default; it matters for depthwise layers) or ``"per_tensor"`` (one scale per layer,
            as in the HAQ paper and official code). Only used by ``weight_method="linear"``.
        weight_method: ``"linear"`` (uniform symmetric grid) or ``"kmeans"`` (Deep-Compression
            style, HAQ's model-size mode: 2^b shared centroids per layer, labels fixed after
            clustering, centroids trainable during fine-tuning).
        weight_clip: how the weight range is chosen: ``"output"`` (the default: least squared
            error of the layer's output on the calibration data, from the covariance of its
            input patches; weight MSE until calibrated), ``"max"`` (max |w|), ``"mse"``
            (minimum squared weight error), ``"kl"`` (minimum KL divergence of the magnitude
            histogram) or ``"percentile"``.
        act_clip: ``"max"``, ``"mse"``, ``"kl"`` or ``"percentile"`` for each layer's input
            activation, computed from the calibration histogram; ``"best"`` computes the max,
            MSE and percentile clips and keeps, per layer and bit width, the one with the least
            squared error of the layer's output on a sample of its calibration inputs.
        kl_below_bits: if set, ``"kl"`` is used only for bit widths below this value and
            ``"max"`` above it (the official code uses KL below 5 bits). ``None`` = KL always.
        percentile: the percentile (0-100] of |x| used by the ``"percentile"`` clip.
        act_signed: ``"auto"`` makes a layer's input grid signed when calibration saw a negative
            value, unsigned ([0, clip]) otherwise; ``True`` / ``False`` force it.
        learnable_clip: make the activation clip a trainable parameter (PACT) so fine-tuning
            moves it; otherwise it stays where calibration put it.
        kmeans_iters: Lloyd iterations of the k-means weight quantizer (official code: 3 during
            search, 50 for the final model).
        seed: seeds the k-means initialisation and the learned rounding (which calibration
            samples it keeps and the order it visits them in); the same seed, the same result.
        fold_bn: fold each BatchNorm into the Conv/Linear layer before it when the model is
            calibrated, so the folded weight is what gets quantized (what a runtime runs).
            BatchNorms that cannot be folded are left alone (``fold_batchnorm_`` lists them).
        bias_correction: subtract from each layer's bias the mean output error its weight
            quantization causes on the calibration data, per output channel
            (``QuantModule.effective_bias``). Cached per (layer, bits).
        sequential_correction: after each policy is set, run a sample of the calibration
            inputs (up to 1,024) through the quantized model once and remove, layer by layer
            in forward order, the mean output shift per channel that is left against the float
            model, with the layers before already quantized and corrected (empirical bias
            correction). One forward pass of the sample per policy.
        rounding: ``"nearest"`` rounds each weight to the nearest grid point; ``"learned"``
            chooses up or down per weight to reconstruct the layer's output on calibration
            data (AdaRound-style), cached per (layer, bits). Linear weights only.

    Example:
        >>> cfg = QuantConfig(weight_granularity="per_tensor", act_clip="percentile")
        >>> QuantConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    weight_granularity: Granularity = "per_channel"
    weight_method: WeightMethod = "linear"
    weight_clip: WeightClipMethod = "output"
    act_clip: ActClipMethod = "mse"
    kl_below_bits: int | None = None
    percentile: float = 99.99
    act_signed: bool | Literal["auto"] = "auto"
    learnable_clip: bool = True
    kmeans_iters: int = 20
    seed: int = 0
    fold_bn: bool = True
    bias_correction: bool = True
    sequential_correction: bool = True
    rounding: Rounding = "nearest"

    version: ClassVar[int] = CONFIG_VERSION

    def __post_init__(self) -> None:
        _check_choice("weight_granularity", self.weight_granularity, GRANULARITIES)
        _check_choice("weight_method", self.weight_method, WEIGHT_METHODS)
        _check_choice("weight_clip", self.weight_clip, WEIGHT_CLIP_METHODS)
        _check_choice("act_clip", self.act_clip, ACT_CLIP_METHODS)
        if self.kl_below_bits is not None:
            _check_int("kl_below_bits", self.kl_below_bits, 2, 9)
        pct = self.percentile
        if isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 < pct <= 100:
            raise ConfigError(f"QuantConfig.percentile={pct!r} must be a number in (0, 100], "
                              "e.g. 99.99")
        if not (self.act_signed == "auto" or isinstance(self.act_signed, bool)):
            raise ConfigError(f"QuantConfig.act_signed={self.act_signed!r} must be 'auto', "
                              "True or False")
        for name in ("learnable_clip", "fold_bn", "bias_correction", "sequential_correction"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"QuantConfig.{name}={getattr(self, name)!r} must be "
                                  "True or False")
        _check_choice("rounding", self.rounding, ROUNDINGS)
        if self.rounding == "learned" and self.weight_method != "linear":
            raise ConfigError("QuantConfig.rounding='learned' rounds a linear grid; use "
                              "weight_method='linear' or rounding='nearest' with k-means")
        _check_int("kmeans_iters", self.kmeans_iters, 1)
        _check_int("seed", self.seed, 0)

    # -- presets ----------------------------------------------------------------------------
    @classmethod
    def paper(cls) -> QuantConfig:
        """The official code's linear mode: per-tensor weights, KL clip below 5 bits, max above;
        batch norm unfolded, no bias correction."""
        return cls(weight_granularity="per_tensor", weight_method="linear", weight_clip="kl",
                   act_clip="kl", kl_below_bits=5, act_signed="auto", learnable_clip=True,
                   fold_bn=False, bias_correction=False, sequential_correction=False)

    @classmethod
    def paper_kmeans(cls) -> QuantConfig:
        """The official code's model-size mode: k-means weights (3 Lloyd iterations in search),
        batch norm unfolded, no bias correction."""
        return cls(weight_method="kmeans", kmeans_iters=3, fold_bn=False, bias_correction=False,
                   sequential_correction=False)

    @classmethod
    def preset(cls, name: str) -> QuantConfig:
        """A named configuration: ``"default"``, ``"paper"`` or ``"paper-kmeans"``."""
        presets = {"default": cls, "paper": cls.paper, "paper-kmeans": cls.paper_kmeans}
        if name not in presets:
            raise ConfigError(f"unknown quantization preset {name!r}; choose one of "
                              f"{', '.join(repr(p) for p in presets)}")
        return presets[name]()

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, with the format version."""
        return {"version": CONFIG_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuantConfig:
        """Inverse of ``to_dict``; unknown keys and other versions are refused.

        Fields a dict does not name take their defaults, so a dict written before a field
        existed still reads (``fold_bn``, ``bias_correction``, ``sequential_correction`` and
        ``rounding`` then mean what this haq does by default).
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"a QuantConfig must be read from a mapping, got {type(data)}")
        values = dict(data)
        version = values.pop("version", CONFIG_VERSION)
        if version != CONFIG_VERSION:
            raise ConfigError(f"QuantConfig version {version!r} is not supported; this haq "
                              f"reads version {CONFIG_VERSION}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown QuantConfig field(s) {unknown}; known fields are "
                              f"{sorted(known)}")
        return cls(**values)
