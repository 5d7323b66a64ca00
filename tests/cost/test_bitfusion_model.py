import numpy as np
import pytest
import torch
from torch import nn

from haq.cost import get
from haq.cost.bitfusion import PRESETS, BitFusionConfig, simulate_layer
from haq.errors import CostModelError
from haq.specs import extract_specs


def _compute(r: dict) -> int:
    return r["cycles"] - r["mem_stall_cycles"]


def test_precision_snaps_for_compute_but_not_for_traffic() -> None:
    # 3x3 conv 256->256 at 14x14: reduction wide enough that every fusion mode pays off
    runs = {b: simulate_layer(3, 14, 1, 256, 256, b, b) for b in range(1, 9)}
    cfg = PRESETS["bf_e"]
    assert [cfg.fusion(b, 8) for b in range(1, 9)] == [4, 4, 2, 2, 1, 1, 1, 1]
    assert cfg.fusion(2, 2) == 16 and cfg.fusion(3, 5) == 2
    # the chosen tiling may differ with the footprints, but 5-8 bits share one compute mode
    assert len({_compute(runs[b]) for b in (5, 6, 7, 8)}) == 1
    assert _compute(runs[2]) < _compute(runs[4]) < _compute(runs[8])
    dram = {b: runs[b]["reads"]["dram"] for b in runs}
    assert dram[5] < dram[8]  # 5-bit moves fewer weight/activation bits than 8-bit


def test_known_non_monotone_point_from_the_reference_notes() -> None:
    # MobileNet-V2 1x1 expansion 64->384 at 14x14 (bf_e, batch 1): a2w2 costs more than a4w4
    assert simulate_layer(1, 14, 1, 64, 384, 2, 2)["cycles"] == 26243
    assert simulate_layer(1, 14, 1, 64, 384, 4, 4)["cycles"] == 25862


def test_rectangular_layers_are_symmetric_under_transpose() -> None:
    row = simulate_layer((1, 5), (1, 60), (1, 2), 32, 64, 4, 4)
    col = simulate_layer((5, 1), (60, 1), (2, 1), 32, 64, 4, 4)
    assert row == col
    assert simulate_layer((3, 3), (14, 14), (1, 1), 64, 64, 8, 8) == simulate_layer(
        3, 14, 1, 64, 64, 8, 8)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"a_bits": 9}, "a_bits 1-8"),
    ({"w_bits": 0}, "w_bits 1-8"),
    ({"IC": 0}, "IC must be >= 1"),
    ({"O": (0, 3)}, "O must be"),
    ({"config": "bf_x"}, "unknown BitFusion config 'bf_x'"),
])
def test_bad_inputs_raise(kwargs, message) -> None:
    args = {"K": 3, "O": 8, "S": 1, "IC": 16, "OC": 16, "a_bits": 4, "w_bits": 4, **kwargs}
    with pytest.raises(CostModelError, match=message):
        simulate_layer(**args)


def test_no_tiling_fits_tiny_buffers() -> None:
    cfg = BitFusionConfig(wbuf_bytes=16, ibuf_bytes=16, obuf_bytes=16)
    with pytest.raises(CostModelError, match="no BitFusion tiling"):
        simulate_layer(3, 8, 1, 16, 16, 8, 8, config=cfg)


def test_table_entries_come_from_the_simulator(tiny_specs) -> None:
    table = get("bitfusion-edge", cache_dir=None, depthwise="groups").table(tiny_specs)
    assert table.units == {"cycles": "cycles", "latency": "ms", "energy": "nJ", "dram": "bits"}
    stem = simulate_layer(3, 8, 2, 3, 8, a_bits=6, w_bits=3, im2col=True)  # index 0: im2col
    assert table.array("cycles")[0, 2, 5] == stem["cycles"]
    assert table.array("energy")[0, 2, 5] == pytest.approx(stem["energy_nJ"], rel=1e-12)
    assert table.array("dram")[0, 2, 5] == stem["reads"]["dram"] + stem["writes"]["dram"]
    assert table.array("latency")[0, 2, 5] == pytest.approx(stem["cycles"] / 500e3)
    one_channel = simulate_layer(3, 8, 1, 1, 1, a_bits=4, w_bits=4)  # depthwise: 8 groups
    assert table.array("cycles")[1, 3, 3] == 8 * one_channel["cycles"]
    pw = simulate_layer(1, 8, 1, 8, 16, a_bits=8, w_bits=2)
    assert table.array("cycles")[2, 1, 7] == pw["cycles"]
    fc = simulate_layer(1, 1, 1, 16, 10, a_bits=1, w_bits=8)
    assert table.array("cycles")[3, 7, 0] == fc["cycles"]
    assert np.isnan(table.full_array("energy")[:, 8, :]).all()
    assert np.isnan(table.full_array("energy")[:, :, 8]).all()


def test_depthwise_lowerings(tiny_specs) -> None:
    tables = {m: get("bitfusion-edge", cache_dir=None, depthwise=m).table(tiny_specs)
              for m in ("groups", "dense", "best")}
    dense = simulate_layer(3, 8, 1, 8, 8, a_bits=2, w_bits=2)
    assert tables["dense"].array("cycles")[1, 1, 1] == dense["cycles"]
    best = tables["best"].array("cycles")[1]
    assert (best == np.minimum(tables["groups"].array("cycles")[1],
                               tables["dense"].array("cycles")[1])).all()
    for t in tables.values():  # only the grouped layer depends on the lowering
        assert (t.array("energy")[[0, 2, 3]] == tables["best"].array("energy")[[0, 2, 3]]).all()


def test_fc_equals_1x1_conv_on_a_1x1_map() -> None:
    fc = extract_specs(nn.Sequential(nn.Linear(64, 40)), torch.zeros(1, 64))
    conv = extract_specs(nn.Sequential(nn.Conv2d(64, 40, 1)), torch.zeros(1, 64, 1, 1))
    for name in ("bitfusion-edge", "bismo-edge", "bismo-cloud"):
        a = get(name, cache_dir=None, batch=4).table(fc)
        b = get(name, cache_dir=None, batch=4).table(conv)
        for m in a.metrics:
            np.testing.assert_array_equal(a.full_array(m), b.full_array(m))


def test_cloud_preset_is_bf_s_at_batch_16(tiny_specs) -> None:
    table = get("bitfusion-cloud", cache_dir=None).table(tiny_specs)
    ref = simulate_layer(1, 8, 1, 8, 16, a_bits=5, w_bits=5, batch=16, config=PRESETS["bf_s"])
    assert table.array("cycles")[2, 4, 4] == ref["cycles"]
    assert table.array("latency")[2, 4, 4] == pytest.approx(ref["cycles"] / 980e3)
