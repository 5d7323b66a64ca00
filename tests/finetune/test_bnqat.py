"""Folded-BN QAT: batch statistics, then frozen, then folded back into the quantized layer."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from haq.finetune import TrainConfig, finetune
from haq.policy import LayerBits
from haq.quantize import QuantConfig, apply_policy_, is_folded, quantized_layers, strip_


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.Conv2d(6, 6, 3, padding=1, groups=6), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.Flatten(), nn.Linear(6 * 64, 3))


def _data(n: int = 64) -> TensorDataset:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 1, 8, 8, generator=gen)
    labels = (x[:, 0, :4].sum((1, 2)) > 0).long() + (x[:, 0, 4:].mean((1, 2)) > 0.2).long()
    return TensorDataset(x, labels)


def _quantized(config: QuantConfig) -> nn.Module:
    net = _net().train()
    x = _data().tensors[0]
    with torch.no_grad():  # non-trivial running statistics
        for _ in range(3):
            net(x * 2 + 0.5)
    policy = {"0": LayerBits(4, 8), "3": LayerBits(3, 8), "7": LayerBits(4, 8)}
    return apply_policy_(net.eval(), policy, [x], config)


def _codes(layer: nn.Module) -> torch.Tensor:
    """The integer weight codes of a linear per-channel layer: weight / (clip / n)."""
    n = (1 << (layer.w_bits - 1)) - 1
    clip = layer.weight_quant.clip.reshape(-1, *([1] * (layer.weight.dim() - 1)))
    return layer.effective_weight().detach() / (clip / n)


def test_folded_layers_train_a_batchnorm_and_fold_it_back_exactly(monkeypatch) -> None:
    model = _quantized(QuantConfig())
    layers = quantized_layers(model)
    assert is_folded(layers["0"]) and is_folded(layers["3"]) and not is_folded(layers["7"])
    seen: dict[str, list[bool]] = {"batch": []}
    original = torch.nn.functional.batch_norm

    def spy(*args, training=False, **kwargs):
        seen["batch"].append(training)
        return original(*args, training=training, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "batch_norm", spy)
    before = copy.deepcopy(model)
    config = TrainConfig(steps=8, batch_size=16, lr=0.05, bn_freeze=0.5)
    finetune(model, _data(), config)
    monkeypatch.undo()
    # two folded layers: batch statistics for steps 0-3, running statistics for steps 4-7
    assert seen["batch"] == [True] * 8 + [False] * 8
    # the norms are gone again: same modules and state_dict keys as before the fine-tune
    assert set(model.state_dict()) == set(before.state_dict())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    # the norm was folded in: the weights moved beyond what 8 SGD steps alone would explain
    # only in scale, and the folded weight is still exactly on the layer's grid
    for name in ("0", "3"):
        codes = _codes(quantized_layers(model)[name])
        assert torch.allclose(codes, codes.round(), atol=1e-4)
        assert codes.abs().max() <= (1 << (quantized_layers(model)[name].w_bits - 1)) - 1 + 1e-4
        assert not torch.equal(model.get_submodule(name).weight, before.get_submodule(name).weight)


def test_the_frozen_norm_and_its_folded_form_compute_the_same() -> None:
    model = _quantized(QuantConfig())
    x = _data().tensors[0]
    outputs = {}

    def capture(model: nn.Module) -> None:
        with torch.no_grad():
            outputs.setdefault("during", model.eval()(x))
        model.train()

    # after_step of the last step runs with the norm still attached (frozen from step 2 on)
    config = TrainConfig(steps=3, batch_size=16, lr=0.05, bn_freeze=0.3)
    calls = []

    def after_step(m: nn.Module) -> None:
        calls.append(1)
        if len(calls) == 3:
            capture(m)

    finetune(model, _data(), config, after_step=after_step)
    with torch.no_grad():
        folded = model.eval()(x)
    assert torch.allclose(folded, outputs["during"], rtol=1e-4, atol=1e-4)
    # and the baked plain model (what an exporter reads) computes the same as well
    with torch.no_grad():
        baked = strip_(copy.deepcopy(model), bake=True)
        for layer in quantized_layers(model).values():
            layer.a_bits = None  # compare weights only: activations stay float in the baked one
        assert torch.allclose(baked(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("config", [QuantConfig(weight_granularity="per_tensor"),
                                    QuantConfig(fold_bn=False)])
def test_per_tensor_grids_and_unfolded_models_train_without_an_added_norm(config) -> None:
    model = _quantized(config)
    calls = []
    original = torch.nn.functional.batch_norm

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    torch.nn.functional.batch_norm, saved = spy, original
    try:
        finetune(model, _data(), TrainConfig(steps=2, batch_size=16))
    finally:
        torch.nn.functional.batch_norm = saved
    expected = 0 if config.fold_bn else 2 * 2  # the model's own BatchNorms, if unfolded
    assert len(calls) == expected


def test_bn_qat_off_trains_the_folded_weights_directly() -> None:
    model = _quantized(QuantConfig())
    reference = _quantized(QuantConfig())
    finetune(model, _data(), TrainConfig(steps=3, batch_size=16, bn_qat=False))
    finetune(reference, _data(), TrainConfig(steps=3, batch_size=16))
    assert not torch.allclose(model.get_submodule("0").weight, reference.get_submodule("0").weight)
