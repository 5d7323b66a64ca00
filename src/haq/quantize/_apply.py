"""The quantize stage's verbs: prepare_, calibrate_, set_policy_, apply_policy_, strip_.

Names are module paths, as in ``LayerSpec.name``. All verbs work in place (trailing ``_``) and
return the model for chaining.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.data import Dataset

from haq.data import loader
from haq.errors import ConfigError, DatasetError, PolicyError, UnsupportedModelError
from haq.policy import LayerBits, Policy
from haq.quantize._config import QuantConfig
from haq.quantize._fold import FOLDED_MARK, fold_batchnorm_, is_folded, replace_module
from haq.quantize._modules import QuantConv1d, QuantConv2d, QuantLinear, QuantModule
from haq.quantize._sequential import (
    SAMPLE_IMAGES,
    CorrectionSample,
    SampleRecorder,
    correct_sequentially_,
)
from haq.quantize._weight import layer_seed

DEFAULT_CALIBRATION_BATCHES = 8
SAMPLE_ATTRIBUTE = "haq_correction_sample"  # where calibrate_ leaves the sequential sample
_WRAPPER_OF: dict[type[nn.Module], type[QuantModule]] = {
    nn.Conv1d: QuantConv1d, nn.Conv2d: QuantConv2d, nn.Linear: QuantLinear,
}

PolicyLike = Policy | Mapping[str, LayerBits | tuple[int | None, int | None]]


def quantized_layers(model: nn.Module) -> dict[str, QuantModule]:
    """Every fake-quant wrapper in ``model``, by module path, in registration order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, QuantModule)}


def prepare_(model: nn.Module, names: Iterable[str],
             config: QuantConfig | None = None) -> nn.Module:
    """Wrap the named Conv1d/Conv2d/Linear layers in place, all bits float (passthrough).

    Already wrapped layers are left alone if they use the same config. ``config=None`` means
    the config the model is already wrapped with, or ``QuantConfig()`` for a float model.

    Raises:
        PolicyError: a name is not a module of ``model``.
        UnsupportedModelError: a named module is not a plain Conv1d/Conv2d/Linear.
        ConfigError: a named layer is already wrapped with a different config.
    """
    config = _resolve_config(model, config)
    for name in names:
        module = _lookup(model, name)
        if isinstance(module, QuantModule):
            if module.quant_config != config:
                raise ConfigError(
                    f"layer {name!r} is already quantized with {module.quant_config}; call "
                    "strip_(model) before applying a different QuantConfig, or pass the same one")
            continue
        wrapper_type = _wrapper_type(name, module)
        wrapper = wrapper_type.from_float(module, config, name, layer_seed(config.seed, name))
        if is_folded(module):
            setattr(wrapper, FOLDED_MARK, True)
        replace_module(model, module, wrapper)
    return model


CALIBRATION_BATCH = 128


def calibrate_(model: nn.Module, data: Iterable[Any],
               max_batches: int | None = DEFAULT_CALIBRATION_BATCHES, *,
               correction_images: int = SAMPLE_IMAGES) -> nn.Module:
    """Record every wrapped layer's input statistics once, running the model in float.

    The statistics (min, max, zero count, magnitude histograms, the mean input for bias
    correction, and a bounded input sample if learned rounding needs one) serve every bit
    width and clip method later, so ``set_policy_`` never re-runs data. All layers compute in
    float during calibration, so the statistics do not depend on the policy.

    If the layers' ``QuantConfig.fold_bn`` is set (the default), every foldable BatchNorm is
    first folded into the layer before it, in place (``fold_batchnorm_``, traced on the first
    batch): the folded weight is what gets quantized. Folding an already folded model does
    nothing.

    Args:
        model: a model with wrapped layers (``prepare_``); run in eval mode under no_grad and
            returned in the train/eval mode it had.
        data: an iterable of input tensors or of ``(x, y, ...)`` batches (only ``x`` is used),
            a DataLoader, or a torch Dataset (read in batches of ``CALIBRATION_BATCH``, in
            order).
        max_batches: stop after this many batches; ``None`` uses them all.
        correction_images: calibration inputs kept for the sequential bias correction, which
            runs them through the model once per policy. Fewer make every ``set_policy_``
            cheaper (a search sets thousands of policies) at some cost in the correction's
            accuracy; the cap of 16 MB of inputs still applies.

    Raises:
        DatasetError: ``data`` yielded no batch, or a batch is not a tensor / tuple of tensors.
        UnsupportedModelError: no layer is wrapped, or a wrapped layer never ran.
    """
    layers = quantized_layers(model)
    if not layers:
        raise UnsupportedModelError("the model has no quantized layers to calibrate; call "
                                    "prepare_(model, names) or apply_policy_ first")
    if max_batches is not None and (isinstance(max_batches, bool)
                                    or not isinstance(max_batches, int) or max_batches < 1):
        raise ConfigError(f"max_batches={max_batches!r} must be a positive integer or None")
    if isinstance(correction_images, bool) or not isinstance(correction_images, int) \
            or correction_images < 1:
        raise ConfigError(f"correction_images={correction_images!r} must be a positive integer")
    device = next(iter(layers.values())).weight.device
    if isinstance(data, Dataset):  # samples, not batches: batch them
        data = loader(data, CALIBRATION_BATCH)
    batches = iter(data)
    first = next(batches, None)
    if first is not None and any(m.quant_config.fold_bn for m in layers.values()):
        fold_batchnorm_(model, _batch_input(first).to(device, non_blocking=True))
    for layer in layers.values():
        layer.begin_observe()
    recorder = SampleRecorder(layers, correction_images)
    was_training, seen, ok = model.training, 0, False
    try:
        model.eval()
        with torch.no_grad(), recorder.recording():
            for batch in itertools.chain([] if first is None else [first], batches):
                if max_batches is not None and seen >= max_batches:
                    break
                recorder.run(model, _batch_input(batch).to(device, non_blocking=True))
                seen += 1
        _check_calibrated(layers, seen)
        ok = True
    finally:
        for layer in layers.values():
            layer.end_observe(keep=ok)
        model.train(was_training)
    if any(m.quant_config.sequential_correction for m in layers.values()):
        setattr(model, SAMPLE_ATTRIBUTE, recorder.result())
    return model


def set_policy_(model: nn.Module, policy: PolicyLike) -> nn.Module:
    """Set the bits of the wrapped layers named in ``policy``; others keep theirs.

    Cheap enough to call once per search episode: activation clips come from the stored
    calibration statistics and quantized weights from a per-(layer, bits) cache. Clips (and
    k-means centroids) are reset to their calibrated values, so load a fine-tuned state_dict
    *after* setting the policy.

    Raises:
        PolicyError: the policy names a layer that is not wrapped.
    """
    layers = quantized_layers(model)
    entries = policy.layers if isinstance(policy, Policy) else policy
    unknown = [name for name in entries if name not in layers]
    if unknown:
        raise PolicyError(f"policy names layer(s) {unknown[:5]} that are not quantized in this "
                          f"model (quantized: {list(layers)[:8]}); use apply_policy_, which "
                          "wraps them first")
    for name, bits in entries.items():
        bits = bits if isinstance(bits, LayerBits) else LayerBits(*bits)
        layers[name].set_bits(bits.w_bits, bits.a_bits)
    sample = getattr(model, SAMPLE_ATTRIBUTE, None)
    if isinstance(sample, CorrectionSample):
        correct_sequentially_(model, sample, layers)
    return model


def apply_policy_(model: nn.Module, policy: PolicyLike,
                  calibration_data: Iterable[Any] | None = None,
                  config: QuantConfig | None = None) -> nn.Module:
    """Fake-quantize ``model`` in place as ``policy`` says, and return it.

    Wraps every layer the policy names (module paths as in ``LayerSpec.name``), calibrates
    activation ranges from ``calibration_data`` if given, and sets the bits. On a model that is
    already wrapped it only changes bits (and recalibrates if data is given).

    Args:
        model: float or already-wrapped model.
        policy: a ``Policy`` or a mapping ``name -> LayerBits | (w_bits, a_bits)``.
        calibration_data: input tensors, ``(x, y)`` batches, a DataLoader or a Dataset; the first
            ``DEFAULT_CALIBRATION_BATCHES`` are used. Needed before any layer quantizes its
            input, unless a calibrated state_dict is loaded afterwards.
        config: how to quantize; defaults to the config the model is already wrapped with, or
            ``QuantConfig()``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from haq.policy import LayerBits, Policy
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> policy = Policy({"0": LayerBits(8, 8), "2": LayerBits(4, 6)})
        >>> model = apply_policy_(model, policy, calibration_data=[torch.randn(16, 4)])
        >>> quantized_layers(model)["2"].w_bits
        4
    """
    entries = policy.layers if isinstance(policy, Policy) else policy
    prepare_(model, list(entries), config)
    if calibration_data is not None:
        calibrate_(model, calibration_data)
    return set_policy_(model, policy)


def strip_(model: nn.Module, bake: bool = False) -> nn.Module:
    """Replace every wrapper by the plain float layer it wraps (same Parameters).

    Args:
        bake: give the plain layers copies of the effective quantized weights instead of the
            float (latent) weights; activations are float either way.
    """
    for wrapper in quantized_layers(model).values():
        replace_module(model, wrapper, wrapper.to_float(bake=bake))
    if hasattr(model, SAMPLE_ATTRIBUTE):
        delattr(model, SAMPLE_ATTRIBUTE)
    return model


# -- helpers --------------------------------------------------------------------------------
def _resolve_config(model: nn.Module, config: QuantConfig | None) -> QuantConfig:
    if config is not None:
        return config
    configs = {m.quant_config for m in quantized_layers(model).values()}
    return configs.pop() if len(configs) == 1 else QuantConfig()


def _lookup(model: nn.Module, name: str) -> nn.Module:
    if name == "":
        raise UnsupportedModelError("the model itself is a single layer; wrap it in a container "
                                    "(e.g. nn.Sequential(layer)) so it can be replaced in place")
    try:
        return model.get_submodule(name)
    except AttributeError as err:
        known = [n for n, m in model.named_modules() if isinstance(m, tuple(_WRAPPER_OF))]
        more = " ..." if len(known) > 8 else ""
        raise PolicyError(f"the model has no module {name!r}; its quantizable layers are "
                          f"{known[:8]}{more} (`haq specs MODEL` lists them)") from err


def _wrapper_type(name: str, module: nn.Module) -> type[QuantModule]:
    base = next((b for b in _WRAPPER_OF if isinstance(module, b)), None)
    if base is None:
        raise UnsupportedModelError(f"layer {name!r} is a {type(module).__name__}; haq "
                                    "quantizes nn.Conv1d, nn.Conv2d and nn.Linear layers only")
    if parametrize.is_parametrized(module):
        raise UnsupportedModelError(f"layer {name!r} has a parametrized weight; remove the "
                                    "parametrization (parametrize.remove_parametrizations) first")
    if type(module).forward is not base.forward:
        raise UnsupportedModelError(
            f"layer {name!r} is a {type(module).__name__} with its own forward(), which a "
            f"fake-quant {base.__name__} would bypass; quantize the plain layers inside it")
    return _WRAPPER_OF[base]


def _batch_input(batch: Any) -> torch.Tensor:
    x = batch[0] if isinstance(batch, Sequence) and not isinstance(batch, str) else batch
    if not isinstance(x, torch.Tensor):
        raise DatasetError(f"calibration data must yield tensors or (x, y) tuples of tensors, "
                           f"got {type(batch).__name__}")
    return x


def _check_calibrated(layers: Mapping[str, QuantModule], seen: int) -> None:
    if seen == 0:
        raise DatasetError("calibration_data yielded no batch; pass a non-empty iterable of "
                           "input tensors or (x, y) batches")
    silent = [name for name, m in layers.items()
              if m.act_quant.stats is None or m.act_quant.stats.count == 0]
    if silent:
        raise UnsupportedModelError(f"layer(s) {silent[:5]} never ran during calibration, so "
                                    "their input range is unknown; check the model's forward")
