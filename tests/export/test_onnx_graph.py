"""What the onnx and qonnx graphs hold: one quantizer per quantized edge, exact containers."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper
from torch import nn

import haq
import haq.export
from haq.models import example_input


def _export(quantized, tmp_path, name, kind, fmt="onnx"):
    model, policy, _ = quantized(name, kind)
    path = haq.export.export(model, policy, fmt, tmp_path / f"{fmt}.onnx",
                             example_input=example_input(name))
    return onnx.load(str(path)), policy, model


def test_w8a8_graph_computes_integer_codes_then_one_scale_and_the_bias(quantized,
                                                                       tmp_path) -> None:
    graph, policy, model = _export(quantized, tmp_path, "mobilenetv1-fmnist", "w8a8")
    ops = collections.Counter(n.op_type for n in graph.graph.node)
    layers = len(policy)
    # per layer: QuantizeLinear (+ Clip) + Cast of the input, DequantizeLinear of the weight
    assert ops["QuantizeLinear"] == ops["DequantizeLinear"] == layers
    assert ops["Mul"] == layers  # the combined scale after each Conv/Gemm
    # batch norm the quantizer did not fold stays a float op (folded, there is none)
    assert ops["BatchNormalization"] == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    inits = {t.name: t for t in graph.graph.initializer}
    name = "features.1.dw.conv"
    codes = inits[f"{name}.weight_quant.codes"]
    assert codes.data_type == TensorProto.INT8
    assert float(numpy_helper.to_array(inits[f"{name}.weight_quant.scale"])) == 1.0
    nodes = {n.name: n for n in graph.graph.node}
    conv = next(n for n in graph.graph.node if f"{name}.weight_quant.dq" in n.input)
    assert len(conv.input) == 2  # no bias inside: it is added after the scale
    mul, add = nodes[f"{name}/Mul"], nodes[f"{name}/Add"]
    assert mul.input[0] == conv.output[0] and add.input[0] == mul.output[0]
    view = model.get_submodule(name).integer_view()
    scale = numpy_helper.to_array(inits[f"{name}.output_scale"])
    out_channels = model.get_submodule(name).out_channels
    assert scale.shape == (out_channels, 1, 1)  # per output channel
    np.testing.assert_array_equal(scale.reshape(-1), view.scale.numpy())
    step = float(numpy_helper.to_array(inits[f"{name}.input_quant.scale"]))
    assert step == view.input_step and view.scale.numpy()[0] == np.float32(
        step * model.get_submodule(name).weight_quant.step()[0].item())
    assert f"{name}.weight" not in inits  # the float weight is gone
    props = {p.key: p.value for p in graph.metadata_props}
    assert props["haq.format"] == "onnx" and haq.Policy.from_json(props["haq.policy"]) == policy


def test_narrow_widths_are_clipped_and_small_weights_are_int4(quantized, tmp_path) -> None:
    graph, policy, _ = _export(quantized, tmp_path, "mobilenetv1-fmnist", "mixed")
    inits = {t.name: t for t in graph.graph.initializer}
    for name, bits in policy.layers.items():
        codes = inits[f"{name}.weight_quant.codes"]
        assert codes.data_type == (TensorProto.INT4 if bits.w_bits <= 4 else TensorProto.INT8)
        clip_low = f"{name}.input_quant.low"
        if bits.a_bits < 8:  # the Clip keeps the integer range at the layer's width
            low = int(numpy_helper.to_array(inits[clip_low]))
            high = int(numpy_helper.to_array(inits[f"{name}.input_quant.high"]))
            assert high - low + 1 in (2 ** bits.a_bits, 2 ** bits.a_bits - 1)
    assert np.isfinite(numpy_helper.to_array(inits["classifier.output_bias"])).all()


def test_shortcut_keeps_reading_the_float_tensor(quantized, tmp_path) -> None:
    graph, _, _ = _export(quantized, tmp_path, "resnet20-fmnist", "w8a8")
    adds = [n for n in graph.graph.node if n.op_type == "Add"
            and not any(name.endswith(".output_bias") for name in n.input)]  # layer biases
    assert len(adds) == 9
    for node in adds:
        assert not any(".input_quant." in name for name in node.input)


def test_kmeans_weights_are_a_codebook_lookup_with_float_input_scaling(quantized,
                                                                       tmp_path) -> None:
    graph, policy, _ = _export(quantized, tmp_path, "resnet20-fmnist", "kmeans")
    ops = collections.Counter(n.op_type for n in graph.graph.node)
    assert ops["Gather"] >= len(policy) and ops["DequantizeLinear"] == 0
    inits = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    for name, bits in policy.layers.items():
        codebook = inits[f"{name}.weight_quant.codebook"]
        assert codebook.shape == (2 ** bits.w_bits,)
        # the codebook on its integer grid: 12-bit integers, the step moves into the scale
        assert np.array_equal(codebook, np.round(codebook)) and np.abs(codebook).max() <= 2047
        assert inits[f"{name}.weight_quant.labels"].dtype == np.uint8


def test_qonnx_graph_uses_quant_with_the_policys_widths(quantized, tmp_path) -> None:
    graph, policy, _ = _export(quantized, tmp_path, "mobilenetv2-fmnist", "mixed", "qonnx")
    quants = [n for n in graph.graph.node if n.op_type == "Quant"]
    assert len(quants) == 2 * len(policy)
    assert {n.domain for n in quants} == {"qonnx.custom_op.general"}
    inits = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    for name, bits in policy.layers.items():
        assert int(inits[f"{name}.input_quant.bitwidth"]) == bits.a_bits
        assert int(inits[f"{name}.weight_quant.bitwidth"]) == bits.w_bits
        # unit scales: the Quant outputs are the integer codes; the steps are in Div and Mul
        assert float(inits[f"{name}.input_quant.scale"]) == 1.0
        assert float(inits[f"{name}.input_quant.step"]) > 0
    attrs = {a.name: a for a in quants[0].attribute}
    assert attrs["rounding_mode"].s == b"ROUND"
    assert sum(n.op_type == "Div" for n in graph.graph.node) >= len(policy)


def test_haq_export_is_callable_from_the_top_package(quantized, tmp_path) -> None:
    model, policy, _ = quantized("resnet20-fmnist", "w8a8")
    path = haq.export(model, policy, "packed", tmp_path / "m.safetensors",
                      example_input=example_input("resnet20-fmnist"))
    assert haq.export.detect_format(path) == "packed"


def _input_ops(graph) -> collections.Counter:
    return collections.Counter(n.op_type for n in graph.graph.node
                               if n.name.split("/")[0].endswith(".input_quant")
                               and n.op_type in ("DequantizeLinear", "Cast"))


def test_integer_kernels_write_standard_qdq_groups_with_the_bias_inside(tmp_path) -> None:
    import torch
    from torch import nn

    from haq.errors import ExportError
    from haq.export import check_parity
    from haq.policy import LayerBits, Policy
    from haq.quantize import QuantConfig, apply_policy_

    torch.manual_seed(0)  # test-only: a fixed tiny net with biased layers
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, bias=False),
                        nn.Flatten(), nn.Linear(64, 3))
    policy = Policy({"0": LayerBits(8, 8), "2": LayerBits(8, 8), "4": LayerBits(8, 8)})
    x = torch.randn(128, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    # without bias corrections layer 2 keeps no bias (with either, every layer has one)
    config = QuantConfig(bias_correction=False, sequential_correction=False)
    model = apply_policy_(net, policy, [x], config).eval()
    exact = haq.export.export(model, policy, "onnx", tmp_path / "a.onnx", example_input=x)
    # default: every input is Cast to float codes; the Conv/Gemm sees integers
    assert _input_ops(onnx.load(str(exact))) == {"Cast": 3}
    fast = haq.export.export(model, policy, "onnx", tmp_path / "b.onnx", example_input=x,
                             integer_kernels=True)
    graph = onnx.load(str(fast))
    assert _input_ops(graph) == {"DequantizeLinear": 3}
    biased = [n for n in graph.graph.node if n.op_type in ("Conv", "Gemm") and len(n.input) == 3]
    assert len(biased) == 2  # layers 0 and 4 keep their bias inside the node
    labels = model(x).argmax(1)
    report = check_parity(exact, model, [(x, labels)])
    assert report.max_abs_logit_diff == 0 and report.agreement == 100
    assert check_parity(fast, model, [(x, labels)]).agreement >= 99
    with pytest.raises(ExportError, match="onnx format only"):
        haq.export.export(model, policy, "packed", tmp_path / "c", example_input=x,
                          integer_kernels=True)
