"""`haq export` and `haq search --export` through the real typer app."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

import haq_user_net
from haq.cli.__main__ import _register, app
from haq.errors import ExportError
from haq.models import create, example_input
from haq.policy import Policy
from haq.specs import extract_specs

_register()
runner = CliRunner()



@pytest.fixture
def w8a8_policy(tmp_path):
    name = "resnet20-fmnist"
    path = tmp_path / "w8a8.json"
    Policy.uniform(extract_specs(create(name), example_input(name)), 8, 8).save(path)
    return path


@pytest.mark.slow
def test_export_writes_and_checks_a_zoo_model(w8a8_policy, tmp_path) -> None:
    out = tmp_path / "r20.safetensors"
    result = runner.invoke(app, ["export", "resnet20-fmnist", str(w8a8_policy), "--format",
                                 "packed", "--out", str(out), "--check", "--check-images",
                                 "250", "--calib-batches", "2"])
    assert result.exit_code == 0, result.output
    assert "PASS packed: same top-1 on 100.00% of 250 images" in " ".join(result.output.split())
    assert out.is_file()


def test_cli_refuses_an_unknown_format_before_loading(w8a8_policy, tmp_path) -> None:
    result = runner.invoke(app, ["export", "resnet20-fmnist", str(w8a8_policy), "--format",
                                 "tflite", "--out", str(tmp_path / "m")])
    assert isinstance(result.exception, ExportError)
    assert "available: onnx, packed, qonnx" in str(result.exception)


def test_user_mistake_is_one_line_and_exit_code_2(tmp_path) -> None:
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"format": "haq-policy", "version": 1, "provenance": {},
                                  "layers": {"conv9": {"w_bits": 8, "a_bits": 8}}}))
    done = subprocess.run([sys.executable, "-m", "haq.cli", "export", "resnet20-fmnist",
                           str(policy), "--out", str(tmp_path / "m.onnx")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert "conv9" in done.stdout
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_search_export_writes_the_best_model_into_the_run(tmp_path) -> None:
    (tmp_path / "net.py").write_text(haq_user_net.SOURCE)
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["search", f"{tmp_path / 'net.py'}:build", "--dataset",
                                 "synthetic", "--input-shape", "1,8,8", "--size", "0.5",
                                 "--strategy", "random", "--episodes", "2", "--eval-samples",
                                 "32", "--run", str(run_dir), "--export", "onnx"])
    assert result.exit_code == 0, result.output
    path = run_dir / "model.onnx"
    assert "exported" in result.output and path.is_file()
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    best = Policy.load(run_dir / "best_policy.json")
    assert Policy.from_json(props["haq.policy"]).layers == best.layers
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": np.zeros((3, 1, 8, 8), np.float32)})[0]
    assert logits.shape == (3, 4) and np.isfinite(logits).all()


def test_export_weights_exports_the_fine_tuned_state(tmp_path) -> None:
    import torch

    from haq.cli._export import quantized_model
    from haq.export import load_packed
    from haq.policy import LayerBits

    (tmp_path / "net.py").write_text(haq_user_net.SOURCE)
    policy = Policy({"0": LayerBits(4, 8), "3": LayerBits(8, 6)})
    policy.save(tmp_path / "p.json")
    spec = importlib.util.spec_from_file_location("net", tmp_path / "net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model, calibration, _ = quantized_model(module.build(), policy, "synthetic")
    with torch.no_grad():  # stands in for a fine-tune: weights and an activation clip move
        model.get_submodule("3").weight.mul_(1.5)
        model.get_submodule("3").act_quant.clip.mul_(0.8)
    torch.save(model.state_dict(), tmp_path / "final_model.pt")
    out = tmp_path / "m.safetensors"
    result = runner.invoke(app, ["export", f"{tmp_path / 'net.py'}:build", str(tmp_path / "p.json"),
                                 "--dataset", "synthetic", "--input-shape", "1,8,8", "--format",
                                 "packed", "--out", str(out), "--weights",
                                 str(tmp_path / "final_model.pt")])
    assert result.exit_code == 0, result.output
    loaded = load_packed(out, module.build()).eval()
    x = calibration[0][0]
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
