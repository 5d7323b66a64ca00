"""The verbs: apply_policy_, prepare_, calibrate_, set_policy_ (with its cache), strip_."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from haq.errors import ConfigError, DatasetError, PolicyError, UnsupportedModelError
from haq.policy import LayerBits, Policy
from haq.quantize import (
    QuantConfig,
    QuantModule,
    _stats,
    _weight,
    apply_policy_,
    calibrate_,
    prepare_,
    quantized_layers,
    set_policy_,
    sqnr_db,
    strip_,
)
from haq.specs import extract_specs

LAYERS = ["stem", "dw", "row", "head"]  # TinyNet in conftest.py


def _uniform(w: int | None, a: int | None) -> Policy:
    return Policy({name: LayerBits(w, a) for name in LAYERS})


def _out(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def test_apply_wraps_named_layers_and_reapplying_only_changes_bits(net, batches) -> None:
    x = batches[0]
    reference = _out(net, x)
    keys = set(net.state_dict())
    model = apply_policy_(net, Policy({"stem": LayerBits(8, 8), "head": LayerBits(4, None)}),
                          batches)
    assert model is net and set(quantized_layers(net)) == {"stem", "head"}
    assert type(net.dw) is nn.Conv2d
    assert keys <= set(net.state_dict())
    wrapper = net.stem
    apply_policy_(net, Policy({"stem": LayerBits(3, 2)}))
    assert net.stem is wrapper and (wrapper.w_bits, wrapper.a_bits) == (3, 2)
    assert sqnr_db(reference, _out(net, x)) < 30
    assert torch.equal(_out(strip_(net), x), reference)
    assert set(net.state_dict()) == keys and not quantized_layers(net)


def test_output_sqnr_grows_with_bits(net, batches) -> None:
    x = batches[1]
    reference = _out(net, x)
    sqnr = {}
    for bits in (2, 4, 8):
        apply_policy_(net, _uniform(bits, bits), batches)
        sqnr[bits] = sqnr_db(reference, _out(net, x))
    assert sqnr[8] > 30 and sqnr[4] > 12 and sqnr[2] < sqnr[4] < sqnr[8]
    apply_policy_(net, _uniform(None, None))
    assert torch.equal(_out(net, x), reference)


def test_signedness_is_detected_per_layer(net, batches) -> None:
    apply_policy_(net, _uniform(8, 8), batches)
    signed = {name: bool(m.act_quant.signed) for name, m in quantized_layers(net).items()}
    # stem reads the signed image, dw and row read ReLU outputs, head reads a linear conv.
    assert signed == {"stem": True, "dw": False, "row": False, "head": True}


def test_calibrate_uses_x_of_batches_and_stops_at_max_batches(net, batches) -> None:
    prepare_(net, LAYERS)
    labelled = [(x, torch.zeros(len(x), dtype=torch.long)) for x in batches]
    calibrate_(net, labelled, max_batches=2)
    assert quantized_layers(net)["stem"].act_quant.stats.count == 2 * batches[0].numel()
    with pytest.raises(DatasetError, match="no batch"):
        calibrate_(net, [])
    with pytest.raises(DatasetError, match="tensors"):
        calibrate_(net, [{"x": batches[0]}])
    assert quantized_layers(net)["stem"].act_quant.stats.count == 2 * batches[0].numel()


def test_set_policy_caches_per_layer_and_bits(net, batches, monkeypatch) -> None:
    calls = {"weight": 0, "act": 0}
    weight_clip, act_clip = _weight.LinearWeightQuantizer._clip, _stats.ActStats.clip

    def counting_weight_clip(self, *args, **kwargs):
        calls["weight"] += 1
        return weight_clip(self, *args, **kwargs)

    def counting_act_clip(self, *args, **kwargs):
        calls["act"] += 1
        return act_clip(self, *args, **kwargs)

    monkeypatch.setattr(_weight.LinearWeightQuantizer, "_clip", counting_weight_clip)
    monkeypatch.setattr(_stats.ActStats, "clip", counting_act_clip)
    apply_policy_(net, _uniform(4, 4), batches)
    assert calls == {"weight": 4, "act": 4}
    with torch.no_grad():  # with autograd on, the weight is re-quantized for its gradient
        first = {n: m.effective_weight() for n, m in quantized_layers(net).items()}
    set_policy_(net, _uniform(6, 6))
    set_policy_(net, _uniform(4, 4))
    assert calls == {"weight": 8, "act": 8}  # the way back to 4 bits was all cache hits
    with torch.no_grad():
        for name, m in quantized_layers(net).items():
            assert m.effective_weight() is first[name]
    # Restoring the same values (as a search does between episodes) keeps the cache.
    net.load_state_dict(net.state_dict())
    set_policy_(net, _uniform(6, 6))
    assert calls["weight"] == 8


def test_cache_is_invalidated_when_the_weight_changes(net, batches) -> None:
    apply_policy_(net, _uniform(4, None), batches)
    stem = quantized_layers(net)["stem"]
    before = stem.effective_weight().clone()
    with torch.no_grad():
        stem.weight.mul_(-2.0)  # an optimizer step would do the same kind of in-place update
    with torch.no_grad():
        stale_clip_result = stem.effective_weight()
    # The clip stays until bits are set again, but the quantized weight follows the new values.
    assert not torch.equal(stale_clip_result, before)
    set_policy_(net, _uniform(4, None))
    torch.testing.assert_close(stem.effective_weight(), -2.0 * before)  # clip re-derived


def test_train_mode_never_uses_the_cache(net, batches) -> None:
    apply_policy_(net, _uniform(4, 4), batches)
    net.train()
    x = batches[0]
    first = net(x)
    with torch.no_grad():
        net.stem.weight.add_(0.5)
        net.stem.weight.sub_(0.5)
        net.stem.weight.mul_(0.0)  # stem now outputs its bias only
    second = net(x)
    assert not torch.allclose(first, second)
    assert net.stem.effective_weight().abs().sum() == 0


def test_checkpoint_round_trip_after_training(net_factory, batches) -> None:
    net = net_factory()
    policy = Policy({"stem": LayerBits(4, 4), "dw": LayerBits(3, 5), "row": LayerBits(2, 8),
                     "head": LayerBits(8, 3)})
    apply_policy_(net, policy, batches)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    net.train()
    net(batches[0]).square().mean().backward()
    optimizer.step()
    net.eval()
    state = net.state_dict()
    expected = _out(net, batches[2])
    fresh = apply_policy_(net_factory(5), policy)  # no calibration data: loaded from state
    fresh.load_state_dict(state)
    torch.testing.assert_close(_out(fresh, batches[2]), expected)


def test_uncalibrated_activation_quantization_is_refused(net, batches) -> None:
    apply_policy_(net, _uniform(8, None))
    _out(net, batches[0])  # weights only: fine
    set_policy_(net, {"dw": (8, 4)})
    with pytest.raises(ConfigError, match="'dw'.*calibration_data"):
        _out(net, batches[0])


def test_errors_name_the_problem(net, batches) -> None:
    with pytest.raises(PolicyError, match="no module 'conv9'.*stem"):
        apply_policy_(net, Policy({"conv9": LayerBits(8, 8)}))
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    with pytest.raises(UnsupportedModelError, match="BatchNorm2d"):
        prepare_(model, ["1"])
    with pytest.raises(PolicyError, match="not quantized"):
        set_policy_(net, _uniform(8, 8))
    apply_policy_(net, _uniform(8, 8), batches)
    with pytest.raises(ConfigError, match="strip_"):
        apply_policy_(net, _uniform(8, 8), config=QuantConfig(weight_clip="max"))

    class Custom(nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * 2

    with pytest.raises(UnsupportedModelError, match="own forward"):
        prepare_(nn.Sequential(Custom(2, 2)), ["0"])
    with pytest.raises(UnsupportedModelError, match="container"):
        prepare_(nn.Linear(2, 2), [""])


def test_shared_modules_are_replaced_everywhere() -> None:
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    prepare_(model, ["0"])
    assert model[0] is model[2] and isinstance(model[0], QuantModule)


def test_specs_of_a_wrapped_model_match_the_float_model(net, batches) -> None:
    float_specs = extract_specs(net, batches[0][:1])
    apply_policy_(net, _uniform(4, 4), batches)
    assert extract_specs(net, batches[0][:1]) == float_specs


@pytest.mark.parametrize("config", [QuantConfig(weight_method="kmeans"), QuantConfig.paper()])
def test_same_seed_same_model(net_factory, batches, config: QuantConfig) -> None:
    outputs = []
    for _ in range(2):
        net = apply_policy_(net_factory(), _uniform(3, 4), batches, config)
        outputs.append(_out(net, batches[2]))
    assert torch.equal(outputs[0], outputs[1])


def test_inference_mode_and_clear_cache_after_data_edits(net, batches) -> None:
    apply_policy_(net, _uniform(4, 4), batches)
    x = batches[0]
    with torch.inference_mode():
        first, again = net(x), net(x)
    assert torch.equal(first, again) and torch.equal(first, _out(net, x))
    net.head.weight.data.mul_(3.0)  # .data edits bypass the version counter ...
    assert torch.equal(_out(net, x), first)  # ... so the stale cache is still used
    net.head.weight_quant.clear_cache()
    assert not torch.equal(_out(net, x), first)


def test_prepare_keeps_the_config_of_a_wrapped_model(net, batches) -> None:
    config = QuantConfig(weight_granularity="per_tensor")
    prepare_(net, ["stem"], config)
    prepare_(net, ["stem", "dw"])  # no config: the model's own
    assert net.dw.quant_config == config


def test_a_dataset_calibrates_like_its_batches(net_factory, batches) -> None:
    """A torch Dataset of samples is batched for calibration (128 per batch, in order)."""
    x = torch.cat(batches)
    samples = torch.utils.data.TensorDataset(x, torch.zeros(len(x), dtype=torch.int64))
    from_dataset = apply_policy_(net_factory(0), _uniform(4, 4), samples)
    from_batches = apply_policy_(net_factory(0), _uniform(4, 4), [x])
    probe = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(_out(from_dataset, probe), _out(from_batches, probe))
