"""Every format on every zoo model and policy computes what haq's quantized model computes."""

from __future__ import annotations

import pytest

import haq.export
from haq.export import check_parity
from haq.models import example_input

ZOO = ("mobilenetv1-fmnist", "mobilenetv2-fmnist", "resnet20-fmnist")
POLICIES = ("w8a8", "mixed", "kmeans")

SUFFIX = {"onnx": ".onnx", "qonnx": ".qonnx.onnx", "packed": ".safetensors"}


@pytest.mark.slow
@pytest.mark.parametrize("kind", POLICIES)
@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("fmt", ["onnx", "qonnx", "packed"])
def test_exported_model_agrees_with_haq(fmt, name, kind, quantized, test_batch, tmp_path) -> None:
    model, policy, _ = quantized(name, kind)
    path = haq.export.export(model, policy, fmt, tmp_path / f"m{SUFFIX[fmt]}",
                             example_input=example_input(name))
    report = check_parity(path, model, test_batch)
    images = len(test_batch[0][1])
    assert report.format == fmt and report.images == images == 200
    # Every format computes haq's integer arithmetic: integer codes times integer weights
    # summed in float32 (exact, so the summation order does not matter), then one scale and
    # the bias. packed runs haq's own code. In onnx and qonnx the one float sum left in
    # another order is the global average pool before the classifier: a pooled value on a
    # rounding boundary of the classifier's 8-bit input grid moves one code, a logit by about
    # s_x * s_w * |w| (at most 0.0056 over the full test split).
    assert report.agreement == 100.0
    assert report.exported_accuracy == report.reference_accuracy
    assert report.max_abs_logit_diff <= (0.0 if fmt == "packed" else 0.01)
