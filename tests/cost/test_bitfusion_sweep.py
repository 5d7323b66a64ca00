"""BitFusion re-implementation vs the simulator's published sweep CSV (exact, all 5 configs).

The CSV has no layer shapes or precisions; they are rebuilt here from the benchmark network
definitions of the BitFusion repository (SAME padding, batch 16; a layer's a_bits is the
precision of the tensor it reads). The CSV may not be copied into this project, so the test
reads it from the shared reference folder and skips when that is absent.
"""

import csv
from pathlib import Path

import pytest

from haq.cost.bitfusion import BitFusionConfig, simulate_layer

SWEEP = Path("/work/shared/hwsim_ref/bitfusion_eyeriss_sim_sweep.csv")


def _resnet18_wrpn() -> dict[str, tuple]:
    """The sweep's RESNET-18 rows are the 2x-wide (WRPN) variant: 128..1024 channels."""
    layers = {"conv1_a/Convolution": (7, 112, 2, 3, 128, 8, 8, True)}
    width = {2: 128, 3: 256, 4: 512, 5: 1024}
    size = {2: 56, 3: 28, 4: 14, 5: 7}
    for mod in (2, 3, 4, 5):
        for i in (1, 2):
            first = i == 1 and mod > 2
            ic = width[mod - 1] if first else width[mod]
            layers[f"module{mod}/conv{mod}_{i}_a/Convolution"] = (
                1, size[mod], 2 if first else 1, ic, width[mod], 4, 4, False)
            layers[f"module{mod}/conv{mod}_{i}_b/Convolution"] = (
                3, size[mod], 1, width[mod], width[mod], 4, 4, False)
    return layers


def _pairs(prefix: str, names: tuple[str, ...], shape: tuple) -> dict[str, tuple]:
    return {f"{prefix}_{n}/Convolution": shape for n in names}


# network -> layer -> (K, O, S, IC, OC, a_bits, w_bits, im2col)
NETWORKS: dict[str, dict[str, tuple]] = {
    "SVHN": {
        "conv0/Convolution": (3, 32, 1, 3, 64, 8, 1, True),
        "conv1/Convolution": (3, 32, 1, 64, 64, 1, 1, False),
        "conv2/Convolution": (3, 16, 1, 64, 128, 1, 1, False),
        "conv3/Convolution": (3, 16, 1, 128, 128, 1, 1, False),
        "conv4/Convolution": (3, 8, 1, 128, 256, 1, 1, False),
        "conv5/Convolution": (3, 8, 1, 256, 256, 1, 1, False),
        "fc6/MatMul": (1, 1, 1, 4096, 1024, 1, 1, False),
        "fc7/MatMul": (1, 1, 1, 1024, 1024, 1, 1, False),
        "fc8/MatMul": (1, 1, 1, 1024, 10, 1, 1, False),
    },
    "CIFAR10": {
        "conv0/Convolution": (3, 32, 1, 3, 128, 8, 8, True),
        "conv1/Convolution": (3, 32, 1, 128, 128, 2, 2, False),
        "conv2/Convolution": (3, 16, 1, 128, 256, 2, 2, False),
        "conv3/Convolution": (3, 16, 1, 256, 256, 2, 2, False),
        "conv4/Convolution": (3, 8, 1, 256, 512, 2, 2, False),
        "conv5/Convolution": (3, 8, 1, 512, 512, 2, 2, False),
        "fc6/MatMul": (1, 1, 1, 8192, 1024, 2, 2, False),
        "fc7/MatMul": (1, 1, 1, 1024, 1024, 2, 2, False),
        "fc8/MatMul": (1, 1, 1, 1024, 10, 2, 2, False),
    },
    "LeNet-5": {
        "conv0/Convolution": (5, 32, 1, 1, 32, 2, 2, True),
        "conv1/Convolution": (5, 16, 1, 32, 64, 2, 2, False),
        "fc1/MatMul": (1, 1, 1, 4096, 512, 2, 2, False),
        "fc2/MatMul": (1, 1, 1, 512, 10, 2, 2, False),
    },
    "VGG-7": {
        **_pairs("conv1", ("a", "b"), (3, 32, 1, 3, 128, 2, 2, True)),
        **_pairs("conv2", ("a", "b"), (3, 16, 1, 128, 256, 2, 2, False)),
        **_pairs("conv3", ("a", "b"), (3, 8, 1, 256, 512, 2, 2, False)),
        "fc1/MatMul": (1, 1, 1, 8192, 1024, 2, 2, False),
    },
    "AlexNet": {  # the WRPN 2x-wide variant, VALID 11x11/4 stem on 227x227
        **_pairs("conv1", ("a", "b"), (11, 55, 4, 3, 96, 8, 8, True)),
        **_pairs("conv2", ("a", "b"), (5, 27, 1, 96, 256, 4, 4, False)),
        **_pairs("conv3", ("a", "b"), (3, 13, 1, 512, 384, 4, 4, False)),
        **_pairs("conv4", ("a", "b"), (3, 13, 1, 384, 384, 4, 4, False)),
        **_pairs("conv5", ("a", "b"), (3, 13, 1, 384, 256, 4, 4, False)),
        "fc1/MatMul": (1, 1, 1, 6 * 6 * 512, 8192, 4, 4, False),
        "fc2/MatMul": (1, 1, 1, 8192, 8192, 4, 4, False),
        "fc3/MatMul": (1, 1, 1, 8192, 1000, 8, 8, False),
    },
    "RESNET-18": _resnet18_wrpn(),
    "RNN": {"matmul/MatMul": (1, 1, 1, 4096, 4096, 4, 4, False)},
    "LSTM": {"matmul/MatMul": (1, 1, 1, 3600, 3600, 4, 4, False)},
}


def _rows() -> list[dict[str, str]]:
    if not SWEEP.is_file():
        return []
    with SWEEP.open() as handle:
        return list(csv.DictReader(handle))


ROWS = _rows()


@pytest.mark.skipif(not ROWS, reason=f"{SWEEP} not available")
def test_every_sweep_row_has_a_rebuilt_shape() -> None:
    assert len(ROWS) == 305
    assert all(r["Layer"] in NETWORKS[r["Network"]] for r in ROWS)


@pytest.mark.skipif(not ROWS, reason=f"{SWEEP} not available")
@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_sweep_rows_match_exactly(network: str) -> None:
    rows = [r for r in ROWS if r["Network"] == network]
    assert rows
    for r in rows:
        k, o, s, ic, oc, a, w, im2col = NETWORKS[network][r["Layer"]]
        # the CSV's "... Size (bits)" columns hold bytes
        cfg = BitFusionConfig(
            rows=int(r["N"]), cols=int(r["M"]), pmax=int(r["Max Precision (bits)"]),
            pmin=int(r["Min Precision (bits)"]), wbuf_bytes=int(r["WBUF Size (bits)"]),
            ibuf_bytes=int(r["IBUF Size (bits)"]), obuf_bytes=int(r["OBUF Size (bits)"]),
            dram_bits_per_cycle=int(r["Bandwidth (bits/cycle)"]))
        got = simulate_layer(k, o, s, ic, oc, a, w, batch=int(r["Batch size"]), im2col=im2col,
                             config=cfg)
        expected = {
            "cycles": int(r["Cycles"]), "stalls": int(r["Memory wait cycles"]),
            "dram_r": int(r["DRAM Read"]), "dram_w": int(r["DRAM Write"]),
            "wbuf": (int(r["WBUF Read"]), int(r["WBUF Write"])),
            "ibuf": (int(r["IBUF Read"]), int(r["IBUF Write"])),
            "obuf": (int(r["OBUF Read"]), int(r["OBUF Write"])),
        }
        actual = {
            "cycles": got["cycles"], "stalls": got["mem_stall_cycles"],
            "dram_r": got["reads"]["dram"], "dram_w": got["writes"]["dram"],
            "wbuf": (got["reads"]["wgt"], got["writes"]["wgt"]),
            "ibuf": (got["reads"]["act"], got["writes"]["act"]),
            "obuf": (got["reads"]["out"], got["writes"]["out"]),
        }
        assert actual == expected, (network, r["Layer"], r["M"], r["Bandwidth (bits/cycle)"])
