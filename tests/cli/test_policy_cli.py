"""`haq apply` / `haq finetune --result FILE` on a model file: the accuracies land in a JSON file,
and match what the library computes for the same model, policy and calibration batches."""

from __future__ import annotations

import json
from itertools import islice

import pytest
import torch
from typer.testing import CliRunner

import haq_user_net
from haq.cli.__main__ import _register, app
from haq.data import loader, synthetic
from haq.finetune import evaluate
from haq.policy import Policy
from haq.quantize import QuantConfig, apply_policy_
from haq.specs import extract_specs

_register()
runner = CliRunner()



@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """(float model, quantized as the commands do it, data, policy path, MODEL argument)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text(haq_user_net.SOURCE)
    net = haq_user_net.build().eval()
    data = synthetic()
    policy = Policy.uniform(extract_specs(net, data.train[0][0][None]), 4, 8)
    path = tmp_path / "policy.json"
    policy.save(path)
    batches = [x for x, _ in islice(loader(data.train, 128, shuffle=True, seed=0), 8)]
    quantized = apply_policy_(haq_user_net.build().eval(), policy, batches, QuantConfig())
    return net, quantized, data, path, "net.py:build"


def test_apply_writes_the_post_training_test_accuracy(tiny, tmp_path) -> None:
    net, quantized, data, path, model = tiny
    out = tmp_path / "out" / "result.json"
    result = runner.invoke(app, ["apply", model, str(path), "--dataset", "synthetic",
                                 "--result", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["test_accuracy"] == evaluate(quantized, data.test)
    assert record["float_test_accuracy"] == evaluate(net, data.test)
    assert (record["command"], record["split"], record["finetune_epochs"]) == ("apply", "test", 0)
    assert record["device"] == "cpu"
    held = runner.invoke(app, ["apply", model, str(path), "--split", "heldout", "--dataset",
                               "synthetic", "--device", "cpu", "--result", str(out)])
    assert held.exit_code == 0, held.output
    record = json.loads(out.read_text())
    assert record["heldout_accuracy"] == evaluate(quantized, data.heldout)
    assert "test_accuracy" not in record


def test_finetune_writes_before_and_after(tiny, tmp_path) -> None:
    _, quantized, data, path, model = tiny
    out = tmp_path / "ft.json"
    result = runner.invoke(app, ["finetune", model, str(path), "--epochs", "1", "--dataset",
                                 "synthetic", "--input-shape", "1,8,8",
                                 "--result", str(out), "--out", str(tmp_path / "ft.pt")])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["post_training_test_accuracy"] == evaluate(quantized, data.test)
    assert 0.0 <= record["test_accuracy"] <= 100.0 and record["finetune_epochs"] == 1
    saved = torch.load(tmp_path / "ft.pt", weights_only=False)
    assert saved["result"] == record


@pytest.mark.parametrize("command", ["apply", "finetune"])
def test_a_shape_mismatch_or_missing_cuda_is_refused_before_any_work(tiny, tmp_path,
                                                                      command) -> None:
    _, _, _, path, model = tiny
    out = tmp_path / "r.json"
    result = runner.invoke(app, [command, "net.py:pooled", str(path), "--dataset",
                                 "synthetic", "--input-shape", "1,28,28", "--result", str(out)])
    assert result.exit_code != 0 and not out.exists()
    assert "traced at --input-shape 1,28,28 (C,H,W) but synthetic samples are 1,8,8" in str(
        result.exception)
    if not torch.cuda.is_available():
        result = runner.invoke(app, [command, model, str(path), "--dataset", "synthetic",
                                     "--device", "cuda", "--result", str(out)])
        assert "no CUDA device" in str(result.exception) and not out.exists()
