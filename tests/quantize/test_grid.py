"""The uniform grid: at most 2^b levels, straight-through gradients, fast path == reference."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from haq.quantize._grid import fake_quant, fake_quant_ste, grid_max, quant_codes, sqnr_db


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(1, 8), signed=st.booleans(), seed=st.integers(0, 2**31 - 1),
       clip=st.floats(0.01, 10.0))
def test_at_most_two_to_the_bits_levels_within_the_clip(bits: int, signed: bool, seed: int,
                                                        clip: float) -> None:
    x = torch.randn(4096, generator=torch.Generator().manual_seed(seed)) * 3
    q = fake_quant(x, clip, bits, signed)
    assert q.unique().numel() <= 2**bits
    assert q.abs().max() <= clip * (1 + 1e-6)
    if not signed:
        assert q.min() >= 0


def test_grid_shapes() -> None:
    assert [grid_max(b, False) for b in (1, 2, 8)] == [1, 3, 255]
    assert [grid_max(b, True) for b in (1, 2, 8)] == [0, 1, 127]
    x = torch.linspace(-2, 2, 1001)
    assert set(fake_quant(x, 1.0, 1, True).unique().tolist()) == {-1.0, 1.0}
    assert set(fake_quant(x, 1.0, 1, False).unique().tolist()) == {0.0, 1.0}
    assert fake_quant(x, 1.0, 8, True).unique().numel() == 255  # symmetric: -128 unused


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("signed", [False, True])
def test_fast_codes_match_the_reference(bits: int, signed: bool) -> None:
    x = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(bits)) * 2
    n = grid_max(bits, signed)
    scale = 1.5 / n if n else 1.5
    torch.testing.assert_close(quant_codes(x, 1.5, bits, signed) * scale,
                               fake_quant(x, 1.5, bits, signed), rtol=0, atol=1e-6)


def test_ste_gradient_is_identity_inside_the_clip_and_zero_outside() -> None:
    x = torch.tensor([-3.0, -0.4, 0.0, 0.3, 0.9, 2.5], requires_grad=True)
    clip = torch.tensor(1.0)
    y = fake_quant_ste(x, clip, 4, signed=True)
    torch.testing.assert_close(y.detach(), fake_quant(x.detach(), 1.0, 4, True))
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_pact_gradient_reaches_the_clip() -> None:
    x = torch.tensor([-2.0, 0.5, 1.5, 3.0])
    clip = torch.tensor(1.0, requires_grad=True)
    fake_quant_ste(x, clip, 3, signed=False).sum().backward()
    assert clip.grad.item() == pytest.approx(2.0)  # two inputs above the clip
    clip.grad = None
    fake_quant_ste(x, clip, 3, signed=True).sum().backward()
    assert clip.grad.item() == pytest.approx(2.0 - 1.0)  # +1 per x > c, -1 per x < -c


def test_sqnr_grows_about_6db_per_bit() -> None:
    x = torch.rand(100_000, generator=torch.Generator().manual_seed(0)) * 2 - 1
    sqnr = [sqnr_db(x, fake_quant(x, 1.0, b, True)) for b in (4, 6, 8)]
    assert sqnr[1] - sqnr[0] == pytest.approx(12.0, abs=1.0)
    assert sqnr[2] - sqnr[1] == pytest.approx(12.0, abs=1.0)
    assert sqnr_db(x, x) == float("inf")
