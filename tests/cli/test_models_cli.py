"""`haq models`, `haq specs`, `haq train` through the real typer app."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from haq.cli.__main__ import _register, app
from haq.cli._common import console
from haq.cli._models import train_and_save
from haq.data import synthetic
from haq.finetune import TrainConfig, evaluate
from haq.models import create

_register()
runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Rich tables fit the terminal; a wide one keeps every column readable in the output."""
    monkeypatch.setattr(console, "width", 220)


def test_specs_table_lists_every_layer() -> None:
    result = runner.invoke(app, ["specs", "mobilenetv2-imagenet"])
    assert result.exit_code == 0, result.output
    assert "53 quantizable layers" in result.output
    assert "features.18.conv" in result.output and "classifier" in result.output
    assert "300,774,272 MACs" in result.output


@pytest.mark.slow
def test_models_lists_the_zoo() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    for name in ("mobilenetv1-fmnist", "mobilenetv2-fmnist", "resnet20-fmnist",
                 "resnet50-imagenet"):
        assert name in result.output
    assert "no weights" in result.output.replace("\n", " ")  # the footnote


def test_unknown_model_is_a_typed_error() -> None:
    from haq.errors import ConfigError

    result = runner.invoke(app, ["specs", "vgg16"])
    assert result.exit_code != 0 and isinstance(result.exception, ConfigError)


def test_train_and_save_writes_weights_and_sidecar(tmp_path) -> None:
    splits = synthetic(num_classes=10, input_shape=(1, 28, 28), sizes=(64, 32, 32), seed=0)
    out = tmp_path / "r20.pt"
    config = TrainConfig(epochs=1, max_batches=2, batch_size=16, lr=0.05)
    sidecar = train_and_save("resnet20-fmnist", splits, config, out, threads=1)
    state = torch.load(out, map_location="cpu", weights_only=True)
    model = create("resnet20-fmnist")
    model.load_state_dict(state)
    assert evaluate(model, splits.test) == pytest.approx(sidecar["test_accuracy"], abs=0.01)
    on_disk = json.loads(out.with_suffix(".json").read_text())
    assert on_disk == sidecar and on_disk["recipe"]["max_batches"] == 2
    assert on_disk["history"]["loss"] and on_disk["train_seconds"] > 0
    assert on_disk["torch"] == torch.__version__ and "date" in on_disk and "command" in on_disk
    assert on_disk["weights_bytes"] == out.stat().st_size
    assert out.stat().st_mode & 0o044  # shareable, unlike a bare temp file


def test_train_refuses_cost_only_models() -> None:
    from haq.errors import ConfigError

    result = runner.invoke(app, ["train", "resnet50-imagenet"])
    assert isinstance(result.exception, ConfigError) and "cost-only" in str(result.exception)


def test_specs_of_the_vit_show_tokens_and_token_macs() -> None:
    result = runner.invoke(app, ["specs", "vit-tiny-imagenet"])
    assert result.exit_code == 0, result.output
    assert "50 quantizable layers" in result.output
    assert "196 tokens" in result.output and "197 tokens" in result.output
    assert f"{196 * 768 * 192:,}" in result.output  # the patch embedding's MACs
    assert "1,074,851,328 MACs per image" in result.output


def test_cost_table_of_the_vit_on_bitfusion(tmp_path, monkeypatch) -> None:
    from haq.cost import get
    from haq.models import example_input
    from haq.policy import Policy
    from haq.specs import extract_specs

    monkeypatch.setenv("HAQ_CACHE_DIR", str(tmp_path))
    out = tmp_path / "vit.json"
    result = runner.invoke(app, ["cost", "table", "vit-tiny-imagenet", "--hardware",
                                 "bitfusion-edge", "--out", str(out)])
    assert result.exit_code == 0, result.output
    specs = extract_specs(create("vit-tiny-imagenet"), example_input("vit-tiny-imagenet"))
    table = get("bitfusion-edge").table(specs)  # from the cache the command filled
    latency = table.evaluate(Policy.uniform(specs, 8, 8))["latency"]
    assert latency > 0 and f"{latency:.4g}" in result.output
    assert out.is_file() and "1.000" in result.output
