"""Post-training quantization: bias correction, output-error clips, learned rounding, W8A8."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from haq.errors import ConfigError
from haq.models import create, example_input
from haq.policy import LayerBits, Policy
from haq.quantize import (
    QuantConfig,
    _rounding,
    apply_policy_,
    calibrate_,
    fake_quant,
    quantized_layers,
    set_policy_,
    strip_,
)
from haq.specs import extract_specs


def _stem_net() -> nn.Sequential:
    """A 3x3 stem on smooth (strongly correlated) images, then a 1x1 conv and a head."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(8, 6, 1, bias=False), nn.Flatten(),
                             nn.Linear(6 * 8 * 8, 4)).eval()


def _smooth_batches(count: int = 4, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    raw = [torch.randn(32, 1, 8, 8, generator=gen) for _ in range(count)]
    blur = torch.ones(1, 1, 3, 3) / 9
    return [torch.nn.functional.conv2d(x, blur, padding=1) * 3 + 0.5 for x in raw]


def _weights_only(bits: int) -> dict[str, LayerBits]:
    return {"0": LayerBits(bits, None), "2": LayerBits(bits, None), "4": LayerBits(bits, None)}


def _stem_outputs(model: nn.Module, batches: list[torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model[0](x) for x in batches])


def test_bias_correction_removes_the_mean_output_error_per_channel() -> None:
    batches = _smooth_batches()
    float_net = _stem_net()
    reference = _stem_outputs(float_net, batches)
    errors = {}
    for corrected in (False, True):
        config = QuantConfig(bias_correction=corrected, weight_clip="mse",
                             sequential_correction=False)  # the per-layer correction alone
        net = apply_policy_(copy.deepcopy(float_net), _weights_only(3), batches, config)
        mean_error = (_stem_outputs(net, batches) - reference).mean((0, 2, 3))
        errors[corrected] = mean_error.abs().max().item()
        stem = quantized_layers(net)["0"]
        expected = stem.bias - stem.bias_correction if corrected else stem.bias
        torch.testing.assert_close(stem.effective_bias(), expected)
    assert errors[False] > 1e-2  # 3-bit weights shift the channel means visibly
    assert errors[True] < 1e-5  # exact on the calibration data (a conv is linear in x)


def _layer_means(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean output per channel of the three layers of ``_stem_net`` on ``x``."""
    means = {}
    hooks = [model.get_submodule(name).register_forward_hook(
        lambda _m, _i, out, name=name: means.__setitem__(
            name, out.transpose(0, 1).reshape(out.shape[1], -1).mean(1)))
        for name in "024"]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return means


def test_sequential_correction_removes_the_shift_the_layers_before_leave(monkeypatch) -> None:
    batches = _smooth_batches()
    sample = torch.cat(batches)
    reference = _layer_means(_stem_net(), sample)
    policy = {"0": LayerBits(3, 4), "2": LayerBits(3, 3), "4": LayerBits(3, 3)}
    worst = {}
    for sequential in (False, True):
        config = QuantConfig(weight_clip="mse", sequential_correction=sequential)
        net = apply_policy_(_stem_net(), policy, batches, config)
        means = _layer_means(net, sample)
        worst[sequential] = max((means[k] - reference[k]).abs().max().item() for k in "24")
    assert worst[False] > 1e-2  # quantized inputs shift the later layers' means
    assert worst[True] < 1e-4  # removed on the calibration sample, layer after layer
    # one pass of the sample per policy; setting the same policy again reuses it
    passes = []
    original = nn.Sequential.forward
    monkeypatch.setattr(nn.Sequential, "forward",
                        lambda self, x: passes.append(len(x)) or original(self, x))
    set_policy_(net, policy)
    assert passes == []
    set_policy_(net, {"4": LayerBits(4, 3)})
    assert passes == [len(sample)]
    set_policy_(net, {"4": LayerBits(3, 3)})
    assert passes == [len(sample)] * 2
    torch.testing.assert_close(_layer_means(net, sample)["4"], reference["4"], atol=1e-4,
                               rtol=0)


def test_correction_images_bounds_the_sample_each_policy_runs(monkeypatch) -> None:
    batches = _smooth_batches()  # 4 x 32 inputs
    net = _stem_net()
    policy = {"0": LayerBits(3, 4), "2": LayerBits(3, 3), "4": LayerBits(3, 3)}
    apply_policy_(net, policy)
    calibrate_(net, batches, correction_images=40)  # a whole batch and 8 of the next
    passes = []
    original = nn.Sequential.forward
    monkeypatch.setattr(nn.Sequential, "forward",
                        lambda self, x: passes.append(len(x)) or original(self, x))
    set_policy_(net, {"4": LayerBits(4, 3)})
    assert passes == [40]
    monkeypatch.undo()
    # the 40 kept inputs are the first 40 seen, and the correction is exact on them
    reference = _layer_means(_stem_net(), torch.cat(batches)[:40])
    torch.testing.assert_close(_layer_means(net, torch.cat(batches)[:40])["4"], reference["4"],
                               atol=1e-4, rtol=0)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="correction_images"):
            calibrate_(net, batches, correction_images=bad)


def test_bias_correction_is_cached_per_bits_and_reset_in_float() -> None:
    batches = _smooth_batches()
    net = apply_policy_(_stem_net(), _weights_only(3), batches,
                        QuantConfig(sequential_correction=False))
    stem = quantized_layers(net)["0"]
    at3 = stem.bias_correction.clone()
    set_policy_(net, _weights_only(5))
    at5 = stem.bias_correction.clone()
    assert not torch.equal(at3, at5)
    set_policy_(net, _weights_only(3))
    assert torch.equal(stem.bias_correction, at3)
    set_policy_(net, {"0": LayerBits(None, None)})
    assert stem.effective_bias() is stem.bias and not stem.bias_correction.any()


def test_baked_layers_and_a_reloaded_state_compute_the_same() -> None:
    batches = _smooth_batches()
    net = apply_policy_(_stem_net(), _weights_only(3), batches)
    x = batches[0]
    with torch.no_grad():
        out = net(x)
        # the 1x1 conv has no bias of its own: the correction alone becomes its bias
        assert net[2].bias is None and net[2].effective_bias() is not None
        baked = strip_(copy.deepcopy(net), bake=True)
        torch.testing.assert_close(baked(x), out)
    state = net.state_dict()
    fresh = apply_policy_(_stem_net(), _weights_only(3), config=QuantConfig())
    fresh.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), out)
    # a state saved before bias correction existed loads, with no correction
    old = {k: v for k, v in state.items() if not k.endswith("bias_correction")}
    fresh.load_state_dict(old)
    assert not fresh[0].bias_correction.any()


def test_output_clip_beats_weight_mse_on_the_layer_output() -> None:
    batches = _smooth_batches()
    reference = _stem_outputs(_stem_net(), batches)
    errors = {}
    for clip in ("mse", "output"):
        net = apply_policy_(_stem_net(), _weights_only(3), batches, QuantConfig(weight_clip=clip))
        errors[clip] = (_stem_outputs(net, batches) - reference).pow(2).mean().item()
    assert errors["output"] < 0.8 * errors["mse"]


def test_learned_rounding_reconstructs_better_stays_on_the_grid_and_is_cached(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    learn = _rounding.learn_mask

    def counting(*args, **kwargs):
        calls.append(args[2])
        return learn(*args, **kwargs)

    monkeypatch.setattr("haq.quantize._weight.learn_mask", counting)
    batches = _smooth_batches()
    reference = _stem_outputs(_stem_net(), batches)
    errors = {}
    for rounding in ("nearest", "learned"):
        # weight-MSE clips, no bias correction: the rounding alone makes the difference
        config = QuantConfig(rounding=rounding, bias_correction=False, weight_clip="mse")
        net = apply_policy_(_stem_net(), _weights_only(3), batches, config)
        errors[rounding] = (_stem_outputs(net, batches) - reference).pow(2).mean().item()
    assert errors["learned"] < 0.7 * errors["nearest"]
    assert calls == [3, 3, 3]  # one per layer
    stem = quantized_layers(net)["0"]
    with torch.no_grad():
        codes = stem.effective_weight() / (stem.weight_quant.clip.reshape(-1, 1, 1, 1) / 3)
    torch.testing.assert_close(codes, codes.round(), rtol=0, atol=1e-4)
    assert codes.abs().max() <= 3
    set_policy_(net, _weights_only(4))
    set_policy_(net, _weights_only(3))
    assert calls == [3, 3, 3, 4, 4, 4]  # back to 3 bits: cached, no work
    # fine-tuning starts from the learned rounding (train mode quantizes the live weight)
    x = batches[0]
    with torch.no_grad():
        eval_out = net(x)
    net.train()
    torch.testing.assert_close(net(x).detach(), eval_out, rtol=1e-5, atol=1e-5)


def test_w8a8_ptq_of_a_zoo_model_matches_float() -> None:
    from haq import data as hdata

    try:
        splits = hdata.load("fashion-mnist")
    except Exception as err:  # noqa: BLE001 - the dataset is optional on a dev machine
        pytest.skip(f"Fashion-MNIST unavailable: {err}")
    name = "mobilenetv1-fmnist"
    net = create(name, pretrained=True).eval()
    specs = extract_specs(net, example_input(name))
    x_cal = splits.train.tensors[0][:256]
    x, y = splits.test.tensors[0][:400], splits.test.tensors[1][:400]
    quantized = apply_policy_(copy.deepcopy(net), Policy.uniform(specs, 8, 8), [x_cal[:128],
                                                                               x_cal[128:]])
    with torch.no_grad():
        reference, out = net(x), quantized(x)
    agree = (reference.argmax(1) == out.argmax(1)).float().mean().item()
    assert agree >= 0.99
    float_acc = (reference.argmax(1) == y).float().mean().item()
    assert abs((out.argmax(1) == y).float().mean().item() - float_acc) <= 0.005


def _output_error(layer: nn.Module, x: torch.Tensor, clip: float, signed: bool) -> float:
    """Squared error of the layer's output (float weight) when ``x`` is quantized to 3 bits."""
    with torch.no_grad():
        quantized = layer._compute(fake_quant(x, clip, 3, signed), layer.weight, None)
        return float((quantized - layer._compute(x, layer.weight, None)).double().pow(2).sum())


def test_best_act_clip_keeps_the_candidate_with_the_least_output_error() -> None:
    batches = _smooth_batches()
    policy = {"0": LayerBits(None, 3), "2": LayerBits(None, 3), "4": LayerBits(None, 3)}
    net = apply_policy_(_stem_net(), policy, batches, QuantConfig(act_clip="best"))
    for name, layer in quantized_layers(net).items():
        act = layer.act_quant
        signed = act.resolved_signed()
        candidates = [act.stats.clip(m, 3, signed) for m in ("max", "mse", "percentile")]
        sample = layer.inputs.sample()
        errors = [_output_error(layer, sample, c, signed) for c in candidates]
        assert act.clip.item() == pytest.approx(candidates[errors.index(min(errors))]), name
        assert act.scorer is not None and act.scorer(candidates[0], 3, signed) == \
            pytest.approx(errors[0], rel=1e-6)
