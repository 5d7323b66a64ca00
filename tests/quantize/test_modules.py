"""Fake-quant wrappers: same Parameters and keys, level counts, straight-through gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from haq.quantize import QuantConfig, QuantConv1d, QuantConv2d, QuantLinear, QuantModule
from haq.quantize._stats import ActStats


def _layers() -> list[nn.Module]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return [nn.Conv2d(4, 6, 3, padding=1), nn.Conv2d(6, 6, 3, groups=6, bias=False),
                nn.Conv1d(4, 5, 3), nn.Linear(12, 7)]


def _input(layer: nn.Module, seed: int = 0) -> torch.Tensor:
    if isinstance(layer, nn.Linear):
        shape: tuple[int, ...] = (8, 12)
    elif isinstance(layer, nn.Conv1d):
        shape = (8, 4, 9)
    else:
        shape = (8, layer.in_channels, 6, 6)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 2


def _wrap(layer: nn.Module, config: QuantConfig | None = None) -> QuantModule:
    wrapper_type = {nn.Conv2d: QuantConv2d, nn.Conv1d: QuantConv1d, nn.Linear: QuantLinear}
    return wrapper_type[type(layer)].from_float(layer, config or QuantConfig(), "layer", seed=1)


def _calibrate(wrapper: QuantModule, x: torch.Tensor) -> None:
    wrapper.act_quant.stats = ActStats()
    wrapper.act_quant.stats.update(x)


@pytest.mark.parametrize("index", range(4))
def test_wrapper_shares_parameters_keys_and_float_passthrough(index: int) -> None:
    layer = _layers()[index]
    x = _input(layer)
    reference = layer(x)
    wrapper = _wrap(layer)
    assert isinstance(wrapper, type(layer)) and wrapper.weight is layer.weight
    assert wrapper.bias is layer.bias
    assert set(layer.state_dict()) <= set(wrapper.state_dict())
    assert wrapper.w_bits is None and wrapper.a_bits is None
    assert torch.equal(wrapper(x), reference)  # float passthrough is exact


@pytest.mark.parametrize("index", range(4))
@pytest.mark.parametrize("bits", [2, 3, 8])
def test_per_channel_weights_have_at_most_2b_values_per_channel(index: int, bits: int) -> None:
    layer = _layers()[index]
    wrapper = _wrap(layer)
    wrapper.w_bits = bits
    q = wrapper.effective_weight()
    assert all(row.unique().numel() <= 2**bits for row in q.flatten(1))
    assert q.unique().numel() > 2**bits or bits == 8  # scales really differ per channel


@pytest.mark.parametrize("method", ["linear", "kmeans"])
@pytest.mark.parametrize("bits", [1, 2, 4])
def test_per_tensor_and_kmeans_weights_have_at_most_2b_values(method: str, bits: int) -> None:
    config = QuantConfig(weight_granularity="per_tensor", weight_method=method)
    wrapper = _wrap(_layers()[0], config)
    wrapper.w_bits = bits
    assert wrapper.effective_weight().unique().numel() <= 2**bits


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("bits", [1, 2, 5])
def test_activations_have_at_most_2b_levels_and_fast_path_agrees(signed: bool,
                                                                 bits: int) -> None:
    layer = _layers()[0]
    wrapper = _wrap(layer, QuantConfig(act_signed=signed))
    x = _input(layer)
    _calibrate(wrapper, x)
    wrapper.set_bits(4, bits)
    with torch.no_grad():
        xq = wrapper.act_quant(x)
        fast = wrapper(x)  # scale folded into the weight
        slow = F.conv2d(xq, wrapper.effective_weight(), wrapper.bias, padding=1)
    assert xq.unique().numel() <= 2**bits
    assert (xq.min() < 0) == signed
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-4)


def test_ste_gradient_reaches_the_float_weight() -> None:
    layer = _layers()[0]
    wrapper = _wrap(layer, QuantConfig(weight_clip="max", learnable_clip=False))
    x = _input(layer)
    _calibrate(wrapper, x)
    wrapper.set_bits(3, 4)
    wrapper.train()
    wrapper(x).square().sum().backward()
    # With the max clip nothing is clipped, so the STE gradient is the gradient at Q(W).
    w_q = wrapper.effective_weight().detach().requires_grad_()
    F.conv2d(wrapper.act_quant(x).detach(), w_q, layer.bias, padding=1).square().sum().backward()
    # the layer computes with integer codes and one scale afterwards: the same gradient in
    # exact arithmetic, summed in another order in float
    torch.testing.assert_close(layer.weight.grad, w_q.grad, rtol=1e-4, atol=1e-4)


def test_pact_clip_is_trainable() -> None:
    layer = _layers()[3]
    wrapper = _wrap(layer)
    x = _input(layer)
    _calibrate(wrapper, x)
    wrapper.set_bits(None, 2)
    assert isinstance(wrapper.act_quant.clip, nn.Parameter)
    wrapper.train()
    wrapper(x * 3).sum().backward()  # inputs well beyond the calibrated clip
    assert wrapper.act_quant.clip.grad is not None and wrapper.act_quant.clip.grad != 0
    frozen = _wrap(_layers()[3], QuantConfig(learnable_clip=False))
    assert "clip" not in dict(frozen.act_quant.named_parameters())


def test_kmeans_centroids_stay_shared_after_an_optimizer_step() -> None:
    layer = _layers()[0]
    wrapper = _wrap(layer, QuantConfig(weight_method="kmeans"))
    x = _input(layer)
    wrapper.w_bits = 2
    labels = wrapper.weight_quant.labels.clone()
    float_weight = layer.weight.detach().clone()
    before = wrapper.effective_weight().detach().clone()
    optimizer = torch.optim.SGD(wrapper.parameters(), lr=0.1)
    wrapper.train()
    wrapper(x).square().mean().backward()
    optimizer.step()
    wrapper.eval()
    after = wrapper.effective_weight()
    assert not torch.equal(after, before)  # the centroids moved
    assert after.unique().numel() <= 4
    assert torch.equal(wrapper.weight_quant.labels, labels)
    for label in labels.unique():  # weights that shared a value still share one
        assert after[labels == label].unique().numel() == 1
    assert layer.weight.grad is None and torch.equal(layer.weight.detach(), float_weight)


def test_to_float_restores_or_bakes() -> None:
    layer = _layers()[0]
    wrapper = _wrap(layer)
    wrapper.w_bits = 3
    plain = wrapper.to_float()
    assert type(plain) is nn.Conv2d and plain.weight is layer.weight
    baked = wrapper.to_float(bake=True)
    assert torch.equal(baked.weight, wrapper.effective_weight())
    assert set(baked.state_dict()) == set(layer.state_dict())


def test_direct_construction_and_repr() -> None:
    wrapper = QuantLinear(3, 2, config=QuantConfig(weight_granularity="per_tensor"))
    wrapper.w_bits = 4
    assert "w_bits=4" in repr(wrapper) and "per_tensor" in repr(wrapper)
    assert wrapper.weight_quant.clip.shape == (1,)


def test_kmeans_centroid_step_equals_the_official_snap_to_cluster_mean() -> None:
    layer = _layers()[0]
    wrapper = _wrap(layer, QuantConfig(weight_method="kmeans"))
    x = _input(layer)
    wrapper.w_bits = 3
    labels = wrapper.weight_quant.labels.long()
    # Oracle: step every (shared) weight by plain SGD, then reset it to its cluster's mean.
    shared = wrapper.effective_weight().detach().clone().requires_grad_()
    torch.nn.functional.conv2d(x, shared, layer.bias, padding=1).square().mean().backward()
    stepped = shared.detach() - 0.1 * (shared.grad + 0.01 * shared.detach())
    used = labels.unique()
    expected = torch.stack([stepped[labels == k].mean() for k in used])
    wrapper.train()
    optimizer = torch.optim.SGD([wrapper.weight_quant.centroids], lr=0.1, weight_decay=0.01)
    wrapper(x).square().mean().backward()
    optimizer.step()
    torch.testing.assert_close(wrapper.weight_quant.centroids.detach()[used], expected)


@pytest.mark.parametrize("method", ["linear", "kmeans"])
def test_no_grad_and_straight_through_paths_compute_identical_bits(method: str) -> None:
    # Both paths compute conv(integer codes, integer weight) * scale + bias, so they agree
    # exactly even on 2-bit inputs, where one ulp at a rounding boundary is a whole code.
    layer = _layers()[0]
    wrapper = _wrap(layer, QuantConfig(weight_method=method))
    x = _input(layer)
    _calibrate(wrapper, x)
    wrapper.set_bits(3, 2)
    wrapper.eval()
    with torch.no_grad():
        fast = wrapper(x)
    slow = wrapper(x.clone().requires_grad_(True))
    assert torch.equal(fast, slow.detach())
    view = wrapper.integer_view()
    assert torch.equal(view.weight, torch.round(view.weight))  # integers
    if method == "kmeans":  # a power-of-two step: the codebook is exactly integers * step
        step = wrapper.weight_quant.step()
        assert torch.equal(torch.log2(step), torch.round(torch.log2(step)))
        assert view.weight.abs().max() <= 2047


def test_input_codes_divide_by_the_float32_step_and_round_half_even() -> None:
    from haq.quantize._grid import quant_codes  # the kernel under test

    x = torch.randn(100_000, generator=torch.Generator().manual_seed(0)) * 3
    clip = 2.7
    step = np.float32(clip / 255)
    expected = np.clip(np.round(x.numpy() / step), 0, 255)  # what ONNX QuantizeLinear does
    assert np.array_equal(quant_codes(x, clip, 8, False).numpy(), expected)
