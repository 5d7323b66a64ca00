"""HGQ fixed-point quantizer, widths and EBOPs against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from haq.search.hgq import FixedPointQuantizer, exact_weight_widths, fixed_quantize, weight_widths
from haq.search.hgq._layers import HgqLayer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_forward_lies_on_the_grid_and_rounds_half_up() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, generator=g) * 3
    for f in (-1.0, 0.0, 2.0, 5.0):
        xq = fixed_quantize(x, torch.tensor(f))
        mant = xq * 2**f
        assert torch.equal(mant, torch.round(mant))
        assert (xq - x).abs().max() <= 2 ** (-f - 1) + 1e-6
    # half-way values go up, as floor(x + 1/2)
    assert fixed_quantize(torch.tensor([0.25, -0.25]), torch.tensor(1.0)).tolist() == [0.5, 0.0]


def test_f_is_rounded_in_the_forward_pass() -> None:
    x = torch.tensor([0.3, 1.7, -2.2])
    assert torch.equal(fixed_quantize(x, torch.tensor(2.6)), fixed_quantize(x, torch.tensor(3.0)))


def test_surrogate_gradient_on_f_elementwise() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, generator=g)
    f = torch.full((50,), 3.2, requires_grad=True)
    xq = fixed_quantize(x, f)
    upstream = torch.randn(50, generator=g)
    (xq * upstream).sum().backward()
    expected = upstream * (-math.log(2.0)) * (xq.detach() - x)
    assert torch.allclose(f.grad, expected, atol=1e-6)


def test_surrogate_gradient_sums_over_shared_f_and_value_path_is_straight_through() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 3, generator=g, requires_grad=True)
    f = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)  # one f per column
    xq = fixed_quantize(x, f)
    xq.sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))
    per_col = (-math.log(2.0)) * (xq.detach() - x.detach()).sum(dim=0, keepdim=True)
    assert torch.allclose(f.grad, per_col, atol=1e-6)


def test_gradient_pushes_f_up_when_error_hurts() -> None:
    # loss = (x_q - x)^2 pulls f up (more bits): dL/df = 2 delta * (-ln2 delta) < 0
    x = torch.tensor([0.3, 0.71, -1.13])
    f = torch.tensor(1.0, requires_grad=True)
    ((fixed_quantize(x, f) - x) ** 2).sum().backward()
    assert f.grad < 0


def test_widths_by_hand() -> None:
    w = torch.tensor([0.375, 0.375, 0.0, 1.5, -0.125])
    f = torch.tensor([3.0, 4.0, 3.0, 1.0, 3.0])
    # 0.375 = 0b0.011: at f=3 mantissa 3 (2 bits); at f=4 mantissa 6 = 0b110, still 2 bits
    assert exact_weight_widths(w, f).tolist() == [2.0, 2.0, 0.0, 2.0, 1.0]
    # training widths run from the MSB down to 2^-f: floor(log2|w|) + 1 + f
    assert weight_widths(w, f).tolist() == [2.0, 3.0, 0.0, 2.0, 1.0]


def test_cost_gradient_is_normalised_by_sqrt_of_share() -> None:
    q = FixedPointQuantizer((16, 8), granularity="layer", init_f=3.0)
    q.f_for_cost().sum().backward()
    assert q.f.grad.item() == pytest.approx(1 / math.sqrt(128))


def _linear_layer(weight: torch.Tensor) -> HgqLayer:
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(weight)
    return HgqLayer(lin, (weight.shape[1],), "element", "element")


def test_linear_ebops_by_hand() -> None:
    w = torch.tensor([[0.5, -0.75, 0.0], [1.0, 0.25, 3.0]])
    layer = _linear_layer(w)
    with torch.no_grad():
        layer.weight_quant.f.fill_(2.0)
        layer.act_quant.f.copy_(torch.tensor([1.0, 2.0, 0.0]))
    layer.train()
    layer(torch.tensor([[1.5, -0.2, 3.0], [0.1, 0.3, 2.0]]))  # ranges: max|x| = 1.5, .3, 3
    # act widths k + i + f: k=(0,1,0); i = floor(log2 max)+1 = (1, -1, 2); f = (1, 2, 0)
    b_a = [0 + 1 + 1, 1 - 1 + 2, 0 + 2 + 0]
    # weight widths at f=2: 0.5->2, 0.75->2, 0->0, 1->3, 0.25->1, 3->4
    b_w = [[2, 2, 0], [3, 1, 4]]
    expected = sum(b_a[i] * b_w[o][i] for o in range(2) for i in range(3))
    assert layer.ebops().item() == pytest.approx(expected)
    # zeroing a weight removes exactly its b_a term
    with torch.no_grad():
        layer.weight[1, 2] = 0.0
    assert layer.ebops().item() == pytest.approx(expected - b_a[2] * 4)


def test_conv_ebops_equals_loop_over_every_multiplication() -> None:
    g = torch.Generator().manual_seed(3)
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
    layer = HgqLayer(conv, (2, 5, 5), "element", "element")
    layer.train()
    layer(torch.randn(4, 2, 5, 5, generator=g))
    with torch.no_grad():
        layer.act_quant.f.copy_(torch.randint(0, 4, (2, 5, 5), generator=g).float())
        layer.weight_quant.f.copy_(torch.randint(1, 5, (3, 2, 3, 3), generator=g).float())
    b_a = layer.act_width_map().detach()
    b_w = layer.weight_width_map().detach()
    total = 0.0
    for o in range(3):
        for oy in range(3):
            for ox in range(3):
                for c in range(2):
                    for ky in range(3):
                        for kx in range(3):
                            y, x = 2 * oy + ky - 1, 2 * ox + kx - 1
                            if 0 <= y < 5 and 0 <= x < 5:  # padding costs nothing
                                total += float(b_a[c, y, x] * b_w[o, c, ky, kx])
    assert layer.ebops().item() == pytest.approx(total)
    assert layer.macs() == 3 * 2 * sum(
        1 for oy in range(3) for ox in range(3) for ky in range(3) for kx in range(3)
        if 0 <= 2 * oy + ky - 1 < 5 and 0 <= 2 * ox + kx - 1 < 5)


def test_exact_ebops_never_exceed_training_ebops() -> None:
    g = torch.Generator().manual_seed(4)
    layer = _linear_layer(torch.randn(8, 6, generator=g))
    layer.train()
    layer(torch.randn(32, 6, generator=g).relu())
    assert layer.ebops(exact=True).item() <= layer.ebops().item() + 1e-6
