"""On-host profiling and validation on a tiny model."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from haq.cost import CostTable
from haq.errors import CostModelError
from haq.hw import int8_layer, median_ms, profile, validate
from haq.policy import LayerBits, Policy
from haq.specs import extract_specs

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore::UserWarning")]


def _model() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(),
            nn.Conv2d(16, 32, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(32, 10)).eval()


def test_median_ms_measures_a_known_duration() -> None:
    ms = median_ms(lambda: time.sleep(0.004), repeats=5, warmup=1)
    assert 3.9 <= ms <= 12.0


def test_int8_layer_computes_the_same_function() -> None:
    conv = _model()[0]
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    q = int8_layer(conv)
    q.scale, q.zero_point = 0.02, 128
    qx = torch.quantize_per_tensor(x, float(x.abs().max()) / 127, 128, torch.quint8)
    got = q(qx).dequantize()
    want = conv(qx.dequantize())
    assert float((got - want).abs().max()) < 0.05 * float(want.abs().max())


def test_profile_table_layout_and_round_trip(tmp_path: Path) -> None:
    model = _model()
    x = torch.randn(1, 3, 16, 16)
    table = profile(model, x, repeats=15, warmup=2, threads=1)
    specs = extract_specs(model, x)
    assert table.layer_names == [s.name for s in specs]
    assert table.units == {"latency": "ms"}
    lat = table.full_array("latency")
    assert np.all(lat > 0) and np.all(np.isfinite(lat))
    # one int8 time for every integer pair, one fp32 time wherever an operand is float
    assert np.all(lat[:, :8, :8] == lat[:, :1, :1])
    assert np.all(lat[:, 8, :] == lat[:, 8:9, 8:9][:, 0])
    assert np.all(lat[:, :, 8] == lat[:, 8:9, 8])
    assert table.source["repeats"] == 15 and table.source["threads"] == 1
    path = tmp_path / "table.json"
    table.save(path)
    again = CostTable.load(path)
    assert np.allclose(again.full_array("latency"), lat)


def test_validate_reports_consistent_numbers() -> None:
    model = _model()
    x = torch.randn(1, 3, 16, 16)
    table = profile(model, x, repeats=15, warmup=2, threads=1)
    specs = extract_specs(model, x)
    report = validate(model, x, table, repeats=15, threads=1)
    assert report.int8_layers == [s.name for s in specs] and report.float_layers == []
    assert report.predicted_ms == pytest.approx(float(table.full_array("latency")[:, 7, 7].sum()))
    assert report.error == pytest.approx((report.predicted_ms - report.measured_ms)
                                         / report.measured_ms)
    assert report.within == (abs(report.error) <= report.tolerance)
    assert report.within or report.notes  # outside the target, the report says why
    layers = {s.name: ((None, None) if i == 0 else (8, 8)) for i, s in enumerate(specs)}
    policy = Policy({k: LayerBits(*v) for k, v in layers.items()})
    mixed_report = validate(model, x, table, policy, repeats=5, threads=1)
    assert mixed_report.float_layers == [specs[0].name]
    lat = table.full_array("latency")
    assert mixed_report.predicted_ms == pytest.approx(float(lat[0, 8, 8] + lat[1:, 7, 7].sum()))


def test_validate_refuses_a_table_of_another_model() -> None:
    model = _model()
    x = torch.randn(1, 3, 16, 16)
    other = CostTable(["a"], {"latency": np.ones((1, 9, 9))}, {"latency": "ms"})
    with pytest.raises(CostModelError, match="profile this model"):
        validate(model, x, other)
