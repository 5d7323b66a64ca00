"""Bit packing, the integer view of a layer, and the packed file's size and exact reload."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import haq.cost
import haq.export
from haq.export import (
    load_packed,
    pack_bits,
    packed_bytes,
    read_layers,
    size_breakdown,
    unpack_bits,
)
from haq.models import create, example_input
from haq.specs import extract_specs


@pytest.mark.parametrize("bits", range(1, 9))
def test_bits_round_trip_densely(bits) -> None:
    rng = np.random.default_rng(bits)
    values = rng.integers(0, 1 << bits, size=1001)
    packed = pack_bits(values, bits)
    assert packed.dtype == np.uint8
    assert packed.size == packed_bytes(1001, bits) == -(-1001 * bits // 8)
    assert np.array_equal(unpack_bits(packed, bits, 1001), values)


def test_pack_bits_is_little_endian_bit_stream() -> None:
    # 3-bit codes 1, 2, 7 -> bits 100 010 111 (LSB first) -> bytes 0b11010001, 0b1
    assert pack_bits(np.array([1, 2, 7]), 3).tolist() == [0b11010001, 0b1]


@pytest.mark.parametrize("kind", ["w8a8", "mixed", "kmeans"])
def test_codes_reproduce_the_effective_weight_exactly(kind, quantized) -> None:
    model, policy, _ = quantized("mobilenetv1-fmnist", kind)
    layers = read_layers(model)
    assert list(layers) == list(policy.layers)
    for name, codes in layers.items():
        layer = model.get_submodule(name)
        weight = codes.weight
        assert weight is not None and weight.bits == policy[name].w_bits
        assert torch.equal(torch.from_numpy(weight.values()), layer.effective_weight().detach())
        if weight.kmeans:
            assert weight.codebook.size == 1 << weight.bits
        else:
            assert np.abs(weight.codes).max() <= weight.n
        assert codes.act.bits == policy[name].a_bits


# The safetensors index (a fixed handful of tensors) and the JSON header (format version,
# quantizer config and the policy: about 60 bytes per layer): 1.6-3.7 kB on the zoo models.
HEADER_BYTES = 4096
SLOW = pytest.mark.slow


@pytest.mark.parametrize("kind", ["w8a8", "mixed", "kmeans"])
@pytest.mark.parametrize("name", ["resnet20-fmnist", pytest.param("mobilenetv1-fmnist", marks=SLOW),
                                  pytest.param("mobilenetv2-fmnist", marks=SLOW)])
def test_packed_file_is_the_size_models_bytes_plus_a_header(name, kind, quantized,
                                                            tmp_path) -> None:
    model, policy, _ = quantized(name, kind)
    path = haq.export.export(model, policy, "packed", tmp_path / "m.safetensors",
                             example_input=example_input(name))
    specs = extract_specs(create(name), example_input(name))

    def size(**params) -> float:
        table = haq.cost.get("size", kmeans=kind == "kmeans", **params).table(specs)
        return table.evaluate(policy)["size"]

    file_bytes = path.stat().st_size
    assert file_bytes <= size(overhead=True) * 1.02 + HEADER_BYTES
    parts = size_breakdown(path)
    assert sum(parts.values()) == file_bytes and parts["other"] == 0  # batch norm all folded
    # the weights-only count (the paper's) is the codes, each layer rounded up to a byte
    assert 0 <= parts["weights"] - size() < len(specs)
    # with overhead the model counts every stored byte but the header, exactly
    assert parts["weights"] + parts["per_layer"] == size(overhead=True)
    assert parts["header"] <= HEADER_BYTES


def test_load_packed_keeps_learned_rounding_codes(tmp_path) -> None:
    from torch import nn

    from haq.policy import LayerBits, Policy
    from haq.quantize import QuantConfig, apply_policy_

    torch.manual_seed(0)  # test-only: a fixed tiny net
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3))
    policy = Policy({"0": LayerBits(3, 8), "3": LayerBits(2, 4)})
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    model = apply_policy_(net, policy, [x], QuantConfig(rounding="learned")).eval()
    path = haq.export.export(model, policy, "packed", tmp_path / "m.safetensors",
                             example_input=x)
    torch.manual_seed(1)
    fresh = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3))
    loaded = load_packed(path, fresh).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_load_packed_into_a_fresh_float_model_is_bit_exact(quantized, test_batch,
                                                           tmp_path) -> None:
    name = "mobilenetv2-fmnist"
    model, policy, _ = quantized(name, "kmeans")
    path = haq.export.export(model, policy, "packed", tmp_path / "m.safetensors",
                             example_input=example_input(name))
    fresh = load_packed(path, create(name)).eval()  # random init, no calibration
    x = test_batch[0][0][:50]
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
