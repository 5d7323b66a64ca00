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


@pytest.mark.parametrize("kind", ["w8a8", "mixed", "kmeans"])
def test_packed_weights_take_exactly_the_size_models_bytes(kind, quantized, tmp_path) -> None:
    name = "resnet20-fmnist"
    model, policy, _ = quantized(name, kind)
    path = haq.export.export(model, policy, "packed", tmp_path / "m.safetensors",
                             example_input=example_input(name))
    specs = extract_specs(create(name), example_input(name))
    predicted = haq.cost.get("size", kmeans=kind == "kmeans").table(specs).evaluate(policy)["size"]
    parts = size_breakdown(path)
    # Per layer the codes round up to whole bytes: at most one byte per layer over the model.
    assert 0 <= parts["weights"] - predicted < len(specs)
    assert sum(parts.values()) == path.stat().st_size
    # The rest is the model's other state (biases, batch norm, activation clips) plus one
    # float32 weight clip per output channel: not counted by the size model, stored as is.
    replaced = [k for layer in policy.layers for k in model.state_dict()
                if k == f"{layer}.weight" or k.startswith(f"{layer}.weight_quant.")]
    clips = sum(model.get_submodule(layer).weight_quant.clip.numel() * 4
                for layer in policy.layers) if kind != "kmeans" else 0
    kept = sum(t.numel() * t.element_size() for k, t in model.state_dict().items()
               if k not in replaced)
    assert parts["other"] == kept + clips


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
