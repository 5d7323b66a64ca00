"""Weight clips per channel / per tensor, and the KL threshold search on a known histogram."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from haq.quantize._clip import kl_threshold_bins, weight_clip
from haq.quantize._grid import fake_quant, sqnr_db


def _weights(seed: int = 0) -> torch.Tensor:
    """Conv weights whose output channels differ in scale by up to 100x, as after BN folding."""
    gen = torch.Generator().manual_seed(seed)
    scales = torch.logspace(-2, 0, 16).reshape(16, 1, 1, 1)
    return torch.randn(16, 8, 3, 3, generator=gen) * scales


def _quantize(w: torch.Tensor, clip: torch.Tensor, bits: int) -> torch.Tensor:
    return fake_quant(w, clip.reshape(-1, 1, 1, 1), bits, True)


def _channel_mse(w: torch.Tensor, clip: torch.Tensor, bits: int) -> torch.Tensor:
    return (_quantize(w, clip, bits) - w).pow(2).flatten(1).mean(1)


def test_max_clip_is_the_channel_max_and_percentile_is_below() -> None:
    w = _weights()
    amax = w.abs().flatten(1).amax(1)
    torch.testing.assert_close(weight_clip(w, 8, "max", True, 99.99, None), amax)
    pct = weight_clip(w, 8, "percentile", True, 90.0, None)
    assert (pct <= amax).all() and (pct < amax).any()
    assert weight_clip(w, 8, "max", False, 99.99, None).shape == (1,)


@pytest.mark.parametrize(("bits", "gain"), [(2, 0.6), (3, 0.8), (4, 0.95)])
def test_mse_clip_beats_max_and_matches_a_brute_force_oracle(bits: int, gain: float) -> None:
    w = _weights(bits)
    amax = w.abs().flatten(1).amax(1)
    clip = weight_clip(w, bits, "mse", True, 99.99, None)
    mse = _channel_mse(w, clip, bits)
    assert (mse <= _channel_mse(w, amax, bits) + 1e-12).all()
    assert mse.sum() < gain * _channel_mse(w, amax, bits).sum()
    grid = torch.linspace(0.02, 1, 300)
    oracle = torch.stack([_channel_mse(w, amax * f, bits) for f in grid]).amin(0)
    assert (mse <= oracle * 1.02 + 1e-12).all()


def test_kl_clip_is_sane_and_turns_into_max_at_high_bits() -> None:
    w = torch.randn(64, 256, generator=torch.Generator().manual_seed(1))
    amax = w.abs().flatten(1).amax(1)
    kl3 = weight_clip(w, 3, "kl", True, 99.99, None)
    assert (kl3 > 0.2 * amax).all() and (kl3 < amax).all()
    assert sqnr_db(w, _quantize(w, kl3, 3)) > sqnr_db(w, _quantize(w, amax, 3))
    torch.testing.assert_close(weight_clip(w, 6, "kl", True, 99.99, 5), amax)


def test_per_channel_beats_per_tensor_when_channel_scales_differ() -> None:
    w = _weights()
    per_channel = _quantize(w, weight_clip(w, 4, "max", True, 99.99, None), 4)
    per_tensor = _quantize(w, weight_clip(w, 4, "max", False, 99.99, None), 4)
    assert sqnr_db(w, per_channel) > sqnr_db(w, per_tensor) + 3.0
    assert sqnr_db(w, per_channel) > 18.0


def test_binary_weights_take_the_mean_magnitude_and_zero_rows_stay_zero() -> None:
    w = _weights()
    torch.testing.assert_close(weight_clip(w, 1, "max", True, 99.99, None),
                               w.abs().flatten(1).mean(1))
    w[3] = 0
    clip = weight_clip(w, 4, "mse", True, 99.99, None)
    assert clip[3] == 1.0 and (_quantize(w, clip, 4)[3] == 0).all()


def test_kl_threshold_cuts_a_thin_far_tail() -> None:
    hist = np.zeros(2048)
    hist[:300] = np.round(1000 * np.exp(-(np.arange(300) / 80.0) ** 2))  # half-normal body
    body_end = int(np.flatnonzero(hist)[-1]) + 1
    hist[1999] = 1.0  # one far outlier
    for levels in (8, 16, 128):
        assert 100 <= kl_threshold_bins(hist, levels) <= body_end + 10
    assert kl_threshold_bins(hist[:10], levels=16) == 10  # fewer bins than levels: keep all
    assert kl_threshold_bins(np.zeros(64), levels=8) == 64
