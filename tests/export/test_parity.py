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
    if fmt == "packed":  # loads back into the identical model: bit-exact
        assert report.max_abs_logit_diff == 0.0 and report.agreement == 100.0
        return
    # A runtime sums in another order than torch, so an activation sitting on a rounding
    # boundary can land one code apart; at 2-bit inputs one code is a third of the range.
    # haq's own two evaluation paths (fast no-grad and straight-through) agree on 99.8 % of
    # 1,000 test images for the mixed mobilenetv2 policy, so a few flips per 200 images are
    # the noise floor; the full-split numbers are in benchmarks/bench_export.py.
    flips = 1 if kind == "w8a8" else 3
    assert report.agreement >= 100 * (1 - flips / images)
    assert abs(report.exported_accuracy - report.reference_accuracy) <= 100 * flips / images
    assert report.max_abs_logit_diff < (0.1 if kind == "w8a8" else 2.0)
