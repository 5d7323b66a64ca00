"""Bad input: a clear typed error that names the layer and the fix, and no file left behind."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import haq.export
from haq.errors import ExportError, PolicyError
from haq.export import check_parity
from haq.policy import LayerBits, Policy
from haq.quantize import QuantConfig, apply_policy_


def tiny() -> nn.Module:
    torch.manual_seed(0)  # test-only: a fixed tiny net
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3),
                         nn.Flatten(), nn.Linear(4 * 36, 3))


def data(n: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g))]


def quantized(policy: Policy, **config) -> nn.Module:
    return apply_policy_(tiny(), policy, data(), QuantConfig(**config)).eval()


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


W8A8 = Policy({"0": LayerBits(8, 8), "2": LayerBits(8, 8), "4": LayerBits(8, 8)})


def test_policy_naming_a_missing_layer_is_refused(tmp_path) -> None:
    bad = Policy({"0": LayerBits(8, 8), "conv9": LayerBits(4, 4)})
    with pytest.raises(PolicyError, match="conv9"):
        haq.export.export(tiny(), bad, "onnx", tmp_path / "m.onnx", calibration_data=data())
    assert leftovers(tmp_path) == []


def test_policy_that_disagrees_with_the_quantized_model_names_the_layer(tmp_path) -> None:
    other = Policy({**W8A8.layers, "2": LayerBits(4, 8)})
    with pytest.raises(PolicyError, match=r"layer '2' is quantized to W8A8 but the policy says "
                                          r"W4A8"):
        haq.export.export(quantized(W8A8), other, "packed", tmp_path / "m.safetensors",
                          example_input=data()[0][0])
    assert leftovers(tmp_path) == []


def test_binary_activation_cannot_be_onnx_but_is_qonnx(tmp_path) -> None:
    policy = Policy({**W8A8.layers, "0": LayerBits(1, 1)})  # signed input: the grid {-c, +c}
    # without the sequential correction: with it, this random net's logits differ from the
    # qonnx executor's by 8e-4 (same top-1 everywhere), most likely one 8-bit code on a tie
    model = quantized(policy, act_signed=True, sequential_correction=False)
    with pytest.raises(ExportError, match=r"layer '0'.*sign function.*a_bits >= 2.*qonnx"):
        haq.export.export(model, policy, "onnx", tmp_path / "m.onnx", example_input=data()[0][0])
    assert leftovers(tmp_path) == []
    path = haq.export.export(model, policy, "qonnx", tmp_path / "m.qonnx.onnx",
                             example_input=data()[0][0])
    report = check_parity(path, model, data(256))
    assert report.agreement == 100.0 and report.max_abs_logit_diff < 1e-4


def test_unwritable_path_and_failed_export_keep_the_old_file(tmp_path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match="cannot write .*writable"):
        haq.export.export(quantized(W8A8), W8A8, "onnx", blocker / "m.onnx",
                          example_input=data()[0][0])
    with pytest.raises(ExportError, match="is a directory"):
        haq.export.export(quantized(W8A8), W8A8, "onnx", tmp_path, example_input=data()[0][0])
    good = haq.export.export(quantized(W8A8), W8A8, "onnx", tmp_path / "m.onnx",
                             example_input=data()[0][0])
    before = good.read_bytes()
    wrong = Policy({**W8A8.layers, "4": LayerBits(2, 8)})
    with pytest.raises(PolicyError):
        haq.export.export(quantized(W8A8), wrong, "onnx", good, example_input=data()[0][0])
    assert good.read_bytes() == before
    assert leftovers(tmp_path) == ["file.txt", "m.onnx"]


def test_unknown_format_lists_the_known_ones(tmp_path) -> None:
    with pytest.raises(ExportError, match="'tflite'.*onnx, packed, qonnx"):
        haq.export.export(tiny(), W8A8, "tflite", tmp_path / "m", calibration_data=data())
    assert leftovers(tmp_path) == []


def test_float_model_without_calibration_data_is_refused(tmp_path) -> None:
    with pytest.raises(haq.HaqError, match="calibration_data"):
        haq.export.export(tiny(), W8A8, "onnx", tmp_path / "m.onnx")


def test_a_foreign_file_is_not_taken_for_an_export(tmp_path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01garbage")
    with pytest.raises(ExportError, match="neither an ONNX nor a packed file"):
        check_parity(junk, quantized(W8A8), data())


def test_without_the_export_extra_onnx_names_the_missing_package(tmp_path) -> None:
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import sys

        class Block:  # behave as if the haq[export] extra were not installed
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("onnx", "onnxruntime", "qonnx"):
                    raise ImportError(f"No module named {name!r}", name=name)

        sys.meta_path.insert(0, Block())
        import haq.export
        print(haq.export.available_formats())
        try:
            haq.export.get_format("onnx")
        except haq.HaqError as err:
            print(err)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "['packed']",
        "format 'onnx' needs the package 'onnx'; install the export extra: pip install "
        "'haq[export]'"]


def test_parity_reads_a_dataset_in_batches_like_a_loader(tmp_path) -> None:
    model = quantized(W8A8)
    path = haq.export.export(model, W8A8, "packed", tmp_path / "m.safetensors",
                             example_input=data()[0][0])
    x, y = data(300)[0]
    from_dataset = check_parity(path, model, torch.utils.data.TensorDataset(x, y))
    from_batches = check_parity(path, model, [(x[:250], y[:250]), (x[250:], y[250:])])
    assert from_dataset == from_batches and from_dataset.images == 300
