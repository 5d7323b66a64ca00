"""Calibration statistics: exact streaming histogram, and every activation clip rule from it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from haq.errors import DatasetError
from haq.quantize._grid import fake_quant
from haq.quantize._stats import BINS, ActStats


def _gauss(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed))


def _mse(x: torch.Tensor, clip: float, bits: int, signed: bool) -> float:
    return float((fake_quant(x, clip, bits, signed) - x).pow(2).mean())


def test_streaming_histogram_equals_one_pass_histogram() -> None:
    parts = [_gauss(20_000, 0) * 0.5, _gauss(20_000, 1) * 3.0, torch.zeros(500)]
    stats = ActStats()
    for part in parts:
        stats.update(part)
    x = torch.cat(parts)
    assert stats.count == x.numel() and stats.zeros == 500
    assert stats.min == float(x.min()) and stats.max == float(x.max())
    assert stats.range >= x.abs().max()  # range only doubles: merging keeps old edges
    reference = torch.histc(x[x > 0], BINS, 0, stats.range).double()
    assert stats.positive.sum() == (x > 0).sum()
    assert (stats.positive - reference).abs().sum() <= 0.001 * x.numel()
    negative = torch.histc(-x[x < 0], BINS, 0, stats.range).double()
    assert (stats.negative - negative).abs().sum() <= 0.001 * x.numel()


def test_signedness_is_detected_from_the_minimum() -> None:
    relu = ActStats()
    relu.update(torch.relu(_gauss(1000, 0)))
    assert not relu.has_negative
    relu.update(torch.tensor([-1e-3]))
    assert relu.has_negative


def test_percentile_matches_numpy_within_a_bin() -> None:
    x = _gauss(50_000, 2).abs()
    stats = ActStats()
    stats.update(x)
    width = stats.range / BINS
    for pct in (50.0, 99.0, 99.9):
        expected = float(np.percentile(x.numpy(), pct))
        assert stats.clip("percentile", 8, False, pct) == pytest.approx(expected, abs=2 * width)


@pytest.mark.parametrize("signed", [False, True])
def test_clip_ordering_and_mse_optimality(signed: bool) -> None:
    x = _gauss(100_000, 3)
    x = x if signed else torch.relu(x)
    stats = ActStats()
    stats.update(x)
    amax = float(x.abs().max())
    for bits in (2, 3, 4):
        clip_max = stats.clip("max", bits, signed)
        clip_pct = stats.clip("percentile", bits, signed, 99.9)
        clip_mse = stats.clip("mse", bits, signed)
        clip_kl = stats.clip("kl", bits, signed)
        assert clip_max == pytest.approx(amax)
        assert 0 < clip_pct <= clip_max and 0 < clip_kl <= clip_max and 0 < clip_mse < clip_max
        # MSE clip against a brute-force oracle on the raw data.
        oracle = min(_mse(x, c, bits, signed) for c in np.linspace(0.05, 1, 400) * amax)
        assert _mse(x, clip_mse, bits, signed) <= 1.03 * oracle
        assert _mse(x, clip_mse, bits, signed) < 0.7 * _mse(x, clip_max, bits, signed)
        # KL is not MSE-optimal but must beat the max clip on a Gaussian at low bits.
        assert _mse(x, clip_kl, bits, signed) < _mse(x, clip_max, bits, signed)


def test_kl_below_bits_switches_to_max() -> None:
    stats = ActStats()
    stats.update(_gauss(20_000, 4))
    assert stats.clip("kl", 4, True, kl_below_bits=5) < stats.clip("max", 4, True)
    assert stats.clip("kl", 5, True, kl_below_bits=5) == stats.clip("max", 5, True)


def test_binary_grid_uses_the_mean_magnitude() -> None:
    x = _gauss(100_000, 5)
    stats = ActStats()
    stats.update(x)
    for method in ("max", "mse", "kl", "percentile"):
        assert stats.clip(method, 1, True) == pytest.approx(float(x.abs().mean()), rel=0.01)


def test_unsigned_grid_on_signed_data_ignores_the_negatives() -> None:
    x = torch.cat([torch.rand(1000) * 2, -torch.rand(1000) * 50])
    stats = ActStats()
    stats.update(x)
    assert stats.clip("max", 8, False) == pytest.approx(float(x.max()))
    assert stats.clip("max", 8, True) == pytest.approx(float(x.abs().max()))


def test_degenerate_inputs() -> None:
    zeros = ActStats()
    zeros.update(torch.zeros(100))
    assert zeros.clip("mse", 4, False) == 1.0  # anything represents zeros exactly
    with pytest.raises(DatasetError, match="non-finite"):
        ActStats().update(torch.tensor([1.0, float("nan")]))
    with pytest.raises(DatasetError, match="no calibration data"):
        ActStats().clip("max", 8, False)
