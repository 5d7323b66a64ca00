"""`haq apply` / `haq finetune --result FILE`: the accuracies land in a JSON file."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from haq.cli import _policy
from haq.cli.__main__ import _register, app
from haq.data import synthetic
from haq.finetune import evaluate
from haq.policy import Policy
from haq.quantize import QuantConfig, apply_policy_
from haq.specs import extract_specs

_register()
runner = CliRunner()


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """The commands' model/data loading routed to a tiny model on synthetic data."""
    data = synthetic()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                            nn.Linear(4 * 64, 4))
    specs = extract_specs(net, data.train[0][0][None])
    policy = Policy.uniform(specs, 4, 8)
    path = tmp_path / "policy.json"
    policy.save(path)
    calibration = [data.train[:64][0]]
    quantized = apply_policy_(copy.deepcopy(net), policy, calibration, QuantConfig())

    def fake(model, policy_path, data_dir, calib_batches, per_tensor, rounding="nearest",
             user_data=None):
        return net, copy.deepcopy(quantized), specs, data

    monkeypatch.setattr(_policy, "_quantized", fake)
    return net, quantized, data, path


def test_apply_writes_the_post_training_test_accuracy(tiny, tmp_path) -> None:
    net, quantized, data, path = tiny
    out = tmp_path / "out" / "result.json"
    result = runner.invoke(app, ["apply", "tiny", str(path), "--result", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["test_accuracy"] == evaluate(quantized, data.test)
    assert record["float_test_accuracy"] == evaluate(net, data.test)
    assert (record["command"], record["split"], record["finetune_epochs"]) == ("apply", "test", 0)
    held = runner.invoke(app, ["apply", "tiny", str(path), "--split", "heldout",
                               "--result", str(out)])
    assert held.exit_code == 0, held.output
    record = json.loads(out.read_text())
    assert record["heldout_accuracy"] == evaluate(quantized, data.heldout)
    assert "test_accuracy" not in record


def test_finetune_writes_before_and_after(tiny, tmp_path) -> None:
    _, quantized, data, path = tiny
    out = tmp_path / "ft.json"
    result = runner.invoke(app, ["finetune", "tiny", str(path), "--epochs", "1",
                                 "--result", str(out), "--out", str(tmp_path / "ft.pt")])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["post_training_test_accuracy"] == evaluate(quantized, data.test)
    assert 0.0 <= record["test_accuracy"] <= 100.0 and record["finetune_epochs"] == 1
    saved = torch.load(tmp_path / "ft.pt", weights_only=False)
    assert saved["result"] == record
